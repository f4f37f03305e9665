"""Provisioning over the console: identities from the board's MAC (or a vendor's list of EUIs),
fresh keys per device kept in the inventory first, then config and secrets written to the
device, each key checked by its key check value, never read back.

One board at a time or several in parallel (a thread and an inventory connection per board).
"""

from __future__ import annotations

import csv
import secrets
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from loraspot import device
from loraspot.errors import DeviceError, DeviceTimeout, LoraspotError
from loraspot.lorawan.crypto import key_check_value
from loraspot.provision.inventory import Inventory, InventoryError, hex_id, pairing_code
from loraspot.resources import firmware_module

# the firmware's regions (its own table); SINGLE is one channel (single_freq, single_sf), for
# single-channel hotspots
REGIONS: tuple[str, ...] = tuple(firmware_module("spot/schema.py").SCHEMA["region"][2])
AES_KINDS = ("app_key", "nwk_key", "nwk_s_key", "app_s_key")


class ProvisionError(LoraspotError):
    exit_code = 7


def eui64(mac: str) -> str:
    """The EUI-64 of a MAC-48, by the firmware's own function (spot.eui64: FF FE in the middle)."""
    return firmware_module("spot/__init__.py").eui64(_hex(mac, 12, "MAC"))


def _hex(text: str, digits: int, what: str) -> str:
    return hex_id(text, digits, what, ProvisionError)


@dataclass
class VendorEuis:
    """DevEUIs a vendor assigned: a CSV with a dev_eui column and, optionally, a mac column.
    Rows with a MAC go to that board; the others are handed out in file order."""

    by_mac: dict[str, str] = field(default_factory=dict)
    pool: list[str] = field(default_factory=list)

    @classmethod
    def load(cls, path: Path) -> VendorEuis:
        out = cls()
        try:
            with open(path, newline="", encoding="utf-8") as f:
                rows = list(csv.DictReader(f))
        except OSError as e:
            raise ProvisionError(f"cannot read {path}: {e.strerror}") from None
        except (UnicodeDecodeError, csv.Error) as e:
            raise ProvisionError(f"{path}: not a CSV file of vendor EUIs ({e})") from None
        if not rows or "dev_eui" not in (rows[0].keys() if rows else ()):
            raise ProvisionError(f"{path}: needs a header with a dev_eui column (and optionally mac)")
        seen: set[str] = set()
        for n, row in enumerate(rows, 2):
            eui = _hex(row.get("dev_eui") or "", 16, f"{path} line {n}: dev_eui")
            if eui in seen:
                raise ProvisionError(f"{path} line {n}: DevEUI {eui} is listed twice")
            seen.add(eui)
            mac = (row.get("mac") or "").strip()
            if mac:
                out.by_mac[_hex(mac, 12, f"{path} line {n}: mac")] = eui
            else:
                out.pool.append(eui)
        return out

    def pick(self, inv: Inventory, mac: str) -> str:
        """This board's EUI: its own row, else the first pooled one no device has (call inside
        the inventory's write transaction, so parallel boards never pick the same one)."""
        if mac in self.by_mac:
            return self.by_mac[mac]
        used = {r[0] for r in inv.db.execute("SELECT dev_eui FROM devices")}
        for eui in self.pool:
            if eui not in used:
                return eui
        raise ProvisionError("the vendor EUI list is used up")


@dataclass
class Options:
    role: str = "node"
    # None: for a hotspot EU868; for a node the SINGLE plan on the channel of the inventory's
    # hotspots (plan()), or EU868 when the inventory has none (a multi-channel gateway's network)
    region: str | None = None
    freq: int | None = None  # the one channel: a hotspot's, or a SINGLE node's (Hz)
    sf: int | None = None
    single_region: str | None = None  # the region a SINGLE node's channel lies in (its RX1/RX2 rules)
    activation: str = "otaa"  # a node's: otaa (an AppKey; it joins) or abp (a DevAddr and session keys)
    lbt: bool = False  # a node's listen before talk (AS923 in Japan)
    repeater: bool = False  # a node's network uses repeater-compatible payload sizes
    multi_channel: bool = False  # a node on a full region although the inventory's hotspots are single-channel
    join_eui: str = "0000000000000000"
    name: str | None = None  # default: "{role}-" + the last 6 digits of the EUI
    wifi_ssid: str | None = None
    wifi_password: str | None = None
    server: str | None = None  # hotspot backhaul: udp://host[:port] or mqtt://[user[:password]@]host[:port]
    force: bool = False
    reboot: bool = True
    baud: int = 115200
    vendor: VendorEuis | None = None

    def check(self) -> None:
        if self.role not in ("node", "hotspot"):
            raise ProvisionError(f"role must be node or hotspot, got {self.role!r}")
        self.activation = (self.activation or "otaa").lower()
        if self.activation not in ("otaa", "abp"):
            raise ProvisionError(f"activation is otaa or abp, got {self.activation!r}")
        if self.activation == "abp" and self.role != "node":
            raise ProvisionError("--activation abp is for nodes (a hotspot does not join)")
        if self.region is not None and self.region not in REGIONS:
            raise ProvisionError(f"unknown region {self.region!r} ({', '.join(REGIONS)})")
        self.join_eui = _hex(self.join_eui, 16, "JoinEUI")
        if self.wifi_password is not None and not 8 <= len(self.wifi_password.encode()) <= 63:
            raise ProvisionError("a WPA2 Wi-Fi password has 8 to 63 characters")
        if self.server:
            self.backhaul()

    def backhaul(self) -> tuple[dict, dict[str, bytes]]:
        """Config values and secrets for the hotspot's network server address."""
        if not self.server:
            return {}, {}
        u = urlsplit(self.server if "://" in self.server else "udp://" + self.server)
        try:
            port = u.port
        except ValueError:
            port = -1
        if u.scheme not in ("udp", "mqtt", "mqtts") or not u.hostname or port == -1:
            raise ProvisionError(f"--server must be udp://host[:port] or mqtt://[user[:password]@]host[:port], "
                                 f"got {self.server!r}")
        if u.scheme == "udp":
            return {"backhaul": "udp", "server": u.hostname, "server_port": port or 1700}, {}
        default_port = 8883 if u.scheme == "mqtts" else 1883
        cfg = {"backhaul": "mqtt", "mqtt_host": u.hostname, "mqtt_port": port or default_port,
               "mqtt_tls": u.scheme == "mqtts", "mqtt_user": u.username or ""}
        if u.path.strip("/"):
            cfg["mqtt_prefix"] = u.path.strip("/")
        return cfg, ({"mqtt_password": u.password.encode()} if u.password else {})


def _mhz(freq: int | None) -> str:
    return f"{(freq or 0) / 1e6:g} MHz"


def region_of(reg, freq: int) -> str:
    """The region a channel lies in when no hotspot of the inventory says: the one whose band holds
    it; where bands overlap (US915 and AS923 at 915-928 MHz) the one with it as a default channel."""
    names = [n for n in REGIONS if n != "SINGLE"]
    inside = [n for n in names if reg.get(n).band[0] <= freq <= reg.get(n).band[1]]
    if len(inside) > 1:
        inside = [n for n in inside if freq in [c[0] for c in reg.get(n).channels]] or inside
    if len(inside) != 1:
        raise ProvisionError(f"{_mhz(freq)} lies in {' and '.join(inside) or 'no region'}: provision the hotspot "
                             "into this inventory first (its region settles it)")
    return inside[0]


def plan(opts: Options, inv: Inventory) -> str:
    """Settle opts.region, freq and sf before any board is touched, so that a node is put where
    a hotspot hears it: a single-channel hotspot hears one frequency at one SF, a node on a full
    region hops over channels and data rates and is rarely heard (docs/single-channel.md).
    Returns what was chosen and why, in words."""
    why = _plan(opts, inv)
    region = (opts.single_region if opts.region == "SINGLE" else opts.region) or ""
    if opts.lbt and not region.startswith("AS923"):
        raise ProvisionError("--lbt: listen before talk is defined for AS923 only (as Japan requires it)")
    return why


def _plan(opts: Options, inv: Inventory) -> str:
    reg = firmware_module("spot/lorawan/region.py")
    if opts.role == "hotspot":
        region = opts.region or "EU868"
        if region == "SINGLE":
            raise ProvisionError("a hotspot's --region is the region it stands in (EU868, US915, ...); its one "
                                 "channel is --freq and --sf")
        r = reg.get(region)
        freq, sf = opts.freq or r.channels[0][0], opts.sf or 7
        if not r.band[0] <= freq <= r.band[1]:
            raise ProvisionError(f"--freq {freq} is outside {region} ({r.band[0]}-{r.band[1]} Hz)")
        if (sf, 125_000) not in r.drs:
            raise ProvisionError(f"{region} has no 125 kHz data rate with SF{sf}")
        try:  # the channel its nodes will use: in a sub-band, at an SF that carries a payload
            reg.get("SINGLE", freq=freq, sf=sf, base=region)
        except reg.RegionError as e:
            raise ProvisionError(str(e)) from None
        opts.region, opts.freq, opts.sf = region, freq, sf
        return f"{region}, listening on {_mhz(freq)} SF{sf}"
    hotspots = [d for d in inv.devices() if d.role == "hotspot" and d.state in ("provisioned", "locked")
                and d.freq and d.sf]
    channels = sorted({(d.freq, d.sf) for d in hotspots})
    hotspot_region = {(d.freq, d.sf): d.region for d in hotspots if d.region}
    heard = ", ".join(f"{_mhz(f)} SF{s}" for f, s in channels)
    if opts.region not in (None, "SINGLE"):
        if channels and not opts.multi_channel:
            raise ProvisionError(
                f"the inventory's hotspots are single-channel ({heard}): a node on {opts.region} hops over channels "
                "and data rates they do not hear. Leave --region out (the SINGLE plan on their channel), or give "
                "--multi-channel if a multi-channel gateway serves this node")
        return f"{opts.region}"
    if opts.freq or opts.sf:
        if channels and not any((opts.freq or f, opts.sf or s) == (f, s) for f, s in channels):
            raise ProvisionError(f"no hotspot of the inventory listens on {_mhz(opts.freq) if opts.freq else ''}"
                                 f"{' SF' + str(opts.sf) if opts.sf else ''}: they listen on {heard}")
        match = [(f, s) for f, s in channels if (opts.freq or f, opts.sf or s) == (f, s)]
        if len(match) > 1:
            raise ProvisionError(f"the inventory's hotspots listen on {heard}: give both --freq and --sf")
        freq, sf = match[0] if match else (opts.freq, opts.sf)
        if freq is None or sf is None:
            raise ProvisionError("the SINGLE plan needs both --freq and --sf (the hotspot's channel)")
        why = "as asked"
    elif len(channels) == 1:
        (freq, sf), why = channels[0], "the channel of the inventory's hotspot"
    elif channels:
        raise ProvisionError(f"the inventory's hotspots listen on {len(channels)} channels ({heard}): give --freq "
                             "and --sf of the one this node should use")
    elif opts.region == "SINGLE":
        raise ProvisionError("the SINGLE plan needs the hotspot's channel: provision the hotspot into this "
                             "inventory first, or give --freq and --sf")
    else:
        opts.region = "EU868"
        return "EU868 (no single-channel hotspot in the inventory: the full region, for a multi-channel gateway)"
    base = hotspot_region.get((freq, sf)) or region_of(reg, freq or 0)
    try:
        reg.get("SINGLE", freq=freq, sf=sf, base=base)
    except reg.RegionError as e:
        raise ProvisionError(str(e)) from None
    opts.region, opts.freq, opts.sf, opts.single_region = "SINGLE", freq, sf, base
    return f"SINGLE on {_mhz(freq)} SF{sf} ({why})"


@dataclass
class Result:
    port: str
    ok: bool = False
    dev_eui: str | None = None
    mac: str | None = None
    role: str | None = None
    board: str | None = None
    kcv: str | None = None
    error: str | None = None
    seconds: float = 0.0

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def provision_one(port: str, opts: Options, inventory: Path | str | None = None) -> Result:
    """Provision the board on `port`; the result says what happened, errors included."""
    res = Result(port, role=opts.role)
    t0 = time.monotonic()
    try:
        client, hello = device.connect(port, opts.baud)
        with client, Inventory(inventory) as inv, inv.claim(str(hello.get("id", ""))):
            _provision(client, hello, inv, opts, res)
        res.ok = True
    except (LoraspotError, OSError) as e:
        res.error = str(e)
    res.seconds = time.monotonic() - t0
    return res


def _provision(client, hello: dict, inv: Inventory, opts: Options, res: Result) -> None:
    mac = _hex(str(hello.get("id", "")), 12, "the device's id (its MAC)")
    res.mac, res.board = mac, hello.get("board")
    known = inv.by_mac(mac)
    on_device = client.request("keys.list")["keys"]
    locked = bool(hello.get("locked"))
    # a run cut off (a station that died: the row stays in `provisioning`, its keys kept) is resumed
    # without --force: the keys the board may hold are the ones that run made here
    resuming = known is not None and known.state == "provisioning"
    done_before = (bool(on_device) and not resuming) or locked or \
        (known is not None and known.state in ("provisioned", "locked"))
    if done_before and not opts.force:
        what = "is locked" if locked else ("holds keys" if on_device else "is provisioned in the inventory")
        raise ProvisionError(f"{res.port}: the device {what}; give --force to provision it again "
                             "(new keys: the network server needs them too)")
    if locked or "admin_key" in on_device:
        # The device gives its admin key up only to its holder: find it among the inventory's
        # (a pending one is a new key a cut-off run may have written) with a signed unlock, which
        # also opens a locked board for the writes; it is locked again at the end.
        client.admin_key = _held_admin_key(client, inv, known, res.port)

    cfg, extra = opts.backhaul()
    # a role the board's heap cannot hold is refused before any key is made or written
    device.role_fits(hello.get("board"), opts.role, cfg.get("backhaul", "udp") if opts.role == "hotspot" else None)
    with inv.transaction():
        if known is not None:
            eui = known.dev_eui
        elif opts.vendor is not None:
            eui = opts.vendor.pick(inv, mac)
        else:
            eui = eui64(mac)
        gateway = eui64(mac) if opts.role == "hotspot" else None
        name = opts.name or f"{opts.role}-{eui[-6:].lower()}"
        single = opts.role == "hotspot" or opts.region == "SINGLE"
        abp = opts.role == "node" and opts.activation == "abp"
        known_addr = known.dev_addr if known is not None else None
        dev_addr = (known_addr or inv.new_dev_addr()) if abp else None
        inv.register(eui, mac, role=opts.role, board=hello.get("board"), region=opts.region, fw=hello.get("fw"),
                     join_eui=opts.join_eui, name=name, gateway_eui=gateway, state="provisioning",
                     freq=opts.freq if single else None, sf=opts.sf if single else None, dev_addr=dev_addr)
        keys: dict[str, bytes] = {}
        if abp:  # session keys instead of an AppKey, kept as it is
            keys["nwk_s_key"] = secrets.token_bytes(16)
            keys["app_s_key"] = secrets.token_bytes(16)
        elif opts.role == "node":
            keys["app_key"] = secrets.token_bytes(16)
        if opts.wifi_password:
            keys["wifi_password"] = opts.wifi_password.encode()
        keys.update(extra)
        # the set-up access point's passphrase: the one on the board's label when it has one
        keys["pairing_code"] = pairing_code(inv, eui).encode()
        admin = secrets.token_bytes(32)
        for kind, value in keys.items():
            inv.set_secret(eui, kind, value)  # kept before the device has them: never lost
        inv.set_secret(eui, "admin_key_pending", admin)  # the admin key in force stays until the device has this
    res.dev_eui = eui

    values = {"role": opts.role, "region": opts.region, "name": name, "join_eui": opts.join_eui,
              "dev_eui": eui if opts.role == "node" else ""}
    if single:
        values.update(single_freq=opts.freq, single_sf=opts.sf)
    if opts.region == "SINGLE" and opts.single_region:
        values["single_region"] = opts.single_region
    if opts.role == "node":
        values.update(activation=opts.activation, dev_addr=dev_addr or "", lbt=opts.lbt, repeater=opts.repeater)
    if opts.wifi_ssid is not None:
        values["wifi_ssid"] = opts.wifi_ssid
    values.update(cfg)
    device.config_set(client, values, check_fit=False)
    for kind, value in (*keys.items(), ("admin_key", admin)):  # the admin key last
        out = client.request("keys.set", {"kind": kind, "value": value.hex()})
        if kind in AES_KINDS:
            want = key_check_value(value)
            if out.get("kcv") != want:
                raise ProvisionError(f"{res.port}: the device answers key check value {out.get('kcv')} for its "
                                     f"{kind}, expected {want}: the key did not arrive intact")
            res.kcv = want
    if opts.role == "hotspot" or "gps" in str(values.get("sensors") or ""):
        _identity(client, inv, eui, res.port)
    inv.promote_admin_key(eui)
    client.admin_key = admin
    if locked:
        client.request("lock", {"production": bool(hello.get("production"))})
    if opts.reboot:
        # the new role starts: it is provisioned once its radio answers (a failed run leaves the
        # row in `provisioning`, the keys kept, and says why)
        device.reboot(client, greet=False)
        fault = _radio_fault(client)
        if fault:
            raise ProvisionError(f"{res.port}: keys and config are on the board, but its radio does not work after "
                                 f"the restart: {fault}. Fix the radio (module fitted, wiring, board profile) and "
                                 "run again with --force")
    inv.update(eui, state="locked" if locked else "provisioned", provisioned_at=time.time())


def _identity(client, inv: Inventory, eui: str, port: str) -> None:
    """The board's Ed25519 identity (a hotspot's, a tracking node's): made on the board from its own
    RNG and 32 bytes from here, or the one it has kept (its receipts' chain goes on); its public
    key kept in the inventory. The private key never leaves the board."""
    try:
        out = client.request("keys.identity", {"entropy": secrets.token_bytes(32).hex()})
    except DeviceError as e:
        raise ProvisionError(f"{port}: the board could not make its identity key: {e}") from None
    inv.update(eui, identity=str(out.get("public", "")))


RADIO_REPORT_S = 30.0  # a role reports its radio within this after its boot event (slow machines included)


def _radio_fault(client) -> str | None:
    """What the restarted role reports of its radio: None when it answers, else the fault."""
    try:
        ev = client.wait_event("radio", timeout=RADIO_REPORT_S)
    except DeviceTimeout:  # console events turned off: hello says it too
        state = str(client.hello().get("radio"))
        return None if state == "ok" else state.removeprefix("fault: ")
    return None if ev.data.get("ok") else str(ev.data.get("error") or "radio fault")


class EraseGuard:
    """What `flash` asks before it erases a board: one the inventory knows as provisioned (keys and
    config on it, the network server holding those keys) is refused unless forced, and a forced
    erase is written down (the row goes back to `registered`: known, without keys on the board)."""

    def __init__(self, inventory: Path | str | None, force: bool):
        from loraspot.provision.inventory import inventory_target

        self.path = inventory_target(inventory)
        self.force = force
        self.erased: dict[str, str] = {}  # MAC -> DevEUI of provisioned boards erased by force

    def __call__(self, mac: str) -> None:
        from loraspot.provision.inventory import peek_by_mac

        if isinstance(self.path, Path) and not self.path.exists():
            return  # no inventory: nothing known to lose
        known = peek_by_mac(self.path, mac)  # no master key needed to ask
        if known is None or known.state not in ("provisioning", "provisioned", "locked"):
            return
        if not self.force:
            raise ProvisionError(f"the board with MAC {mac} is {known.state} in the inventory as {known.name or ''} "
                                 f"{known.dev_eui}: flashing erases its keys and config; give --force to do it "
                                 "anyway (then provision it again)")
        self.erased[mac] = known.dev_eui

    def record(self, flashed_macs: list[str]) -> list[str]:
        """Mark the boards erased by force that were flashed; returns their DevEUIs."""
        done = [self.erased[m] for m in flashed_macs if m in self.erased]
        if done:
            with Inventory(self.path) as inv:
                for eui in done:
                    inv.update(eui, state="registered")
        return done


def _held_admin_key(client, inv: Inventory, known, port: str) -> bytes:
    keys = []
    if known is not None:
        for kind in ("admin_key", "admin_key_pending"):
            try:
                keys.append(inv.secret(known.dev_eui, kind))
            except InventoryError:
                pass
    for key in keys:
        client.admin_key = key
        try:
            client.request("unlock")
            return key
        except DeviceError as e:
            if e.code != "auth_failed":
                raise
    raise ProvisionError(f"{port}: the device has an admin key this inventory does not hold: it cannot be "
                         "provisioned again without it (factory-reset it, or erase and re-flash it)")


def provision_many(ports: list[str], opts: Options, inventory: Path | str | None = None) -> list[Result]:
    """Several boards at once; one failing does not stop the others. Results in port order."""
    opts.check()
    with Inventory(inventory) as inv:  # created (and its master key) once, before the threads
        plan(opts, inv)
    if len(ports) == 1:
        return [provision_one(ports[0], opts, inventory)]
    with ThreadPoolExecutor(max_workers=min(16, len(ports))) as pool:
        return list(pool.map(lambda p: provision_one(p, opts, inventory), ports))


def held_admin_key(hello: dict, port: str, inventory: Path | str | None = None) -> tuple[bytes, str]:
    """The admin key of the board that said `hello`, from the inventory that provisioned it, and
    its DevEUI; a ProvisionError saying what to do when the inventory does not hold it."""
    from loraspot.provision.inventory import inventory_target
    from loraspot.store import where

    path = inventory_target(inventory)
    mac = _hex(str(hello.get("id", "")), 12, "the device's id (its MAC)")
    if isinstance(path, Path) and not path.exists():
        raise ProvisionError(f"{port}: the board is locked; its admin key is in the inventory that provisioned it, "
                             f"and {path} does not exist: give --inventory")
    with Inventory(path) as inv:
        known = inv.by_mac(mac)
        if known is None:
            raise ProvisionError(f"{port}: the board is locked and the inventory {where(path)} does not know MAC "
                                 f"{mac}: give --inventory with the one that provisioned it")
        try:
            return inv.secret(known.dev_eui, "admin_key"), known.dev_eui
        except InventoryError:
            raise ProvisionError(f"{port}: no admin key for {known.dev_eui}: provision it first") from None


def _admin_client(port: str, inventory: Path | str | None, baud: int = 115200):
    client, hello = device.connect(port, baud)
    try:
        client.admin_key, eui = held_admin_key(hello, port, inventory)
        return client, hello, eui
    except BaseException:
        client.close()
        raise


def factory_reset(port: str, inventory: Path | str | None = None) -> None:
    """Erase the board's secrets, config and lock (signed with its admin key from the inventory
    when it is locked); its inventory row goes back to `registered`."""
    client, hello = device.connect(port)
    if hello.get("locked"):
        client.close()
        client, hello, _ = _admin_client(port, inventory)
    with client:
        client.request("factory_reset")
        client.wait_event("boot", timeout=10)
    with Inventory(inventory) as inv:
        known = inv.by_mac(str(hello.get("id", "")))
        if known is not None:
            inv.update(known.dev_eui, state="registered")


def set_lock(port: str, locked: bool, production: bool = False, inventory: Path | str | None = None) -> dict:
    """Lock (optionally in production mode: no REPL) or unlock the board with its admin key."""
    client, hello, eui = _admin_client(port, inventory)
    with client:
        try:
            out = client.request("lock" if locked else "unlock", {"production": production} if locked else {})
        except DeviceError as e:
            if e.code == "auth_failed":
                raise ProvisionError(f"{port}: the device refused the admin key of {eui} in the inventory "
                                     f"({e.message})") from None
            raise
    with Inventory(inventory) as inv:
        inv.update(eui, state="locked" if locked else "provisioned")
    if locked:
        out["security"] = hello.get("security")
        out["warnings"] = device.security_warnings(hello)
    return out
