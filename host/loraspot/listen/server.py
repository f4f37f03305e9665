"""`loraspot listen`: a Semtech UDP server (protocol v2) that acts as a small network server for
hotspots: PUSH_ACK/PULL_ACK, Join-Requests answered with Join-Accepts at RX1 through PULL_RESP,
data uplinks verified and decrypted with keys from the inventory or a keys file, Cayenne LPP
decoded, confirmed uplinks acknowledged, and frames heard by several hotspots de-duplicated (the
downlink goes through the one that heard the frame best).

One thread serves the socket; frames are handled when their de-duplication window closed. Every
handled frame is given to `on_frame` as one JSON-ready dict.
"""

from __future__ import annotations

import base64
import json
import socket
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from loraspot.errors import LoraspotError
from loraspot.listen import semtech
from loraspot.listen.gateways import KEEP_ERRORS, KEEP_FRAMES, KEEP_GATEWAYS, Gateway
from loraspot.lorawan import lpp
from loraspot.lorawan.joinserver import JoinError, JoinServer
from loraspot.resources import firmware_module

JOIN_DELAY1_US = 5_000_000


class ListenError(LoraspotError):
    exit_code = 2


@dataclass
class _Group:
    due: float
    phy: bytes
    heard: list = field(default_factory=list)  # (gateway eui, rxpk)


def load_keys(path: Path) -> dict[str, bytes]:
    """DevEUI -> AppKey from a JSON object {"DEVEUI": "hex"} or CSV lines "DEVEUI,APPKEY"."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ListenError(f"{path}: not a text file of keys (JSON or CSV)") from None
    out: dict[str, bytes] = {}
    try:
        data = json.loads(text)
        items = data.items() if isinstance(data, dict) else None
    except (ValueError, RecursionError):
        items = [tuple(x.strip() for x in line.split(",")[:2]) for line in text.splitlines()
                 if line.strip() and not line.startswith("#") and "," in line]
    if items is None:
        raise ListenError(f"{path}: expected a JSON object of DevEUI: AppKey or CSV lines DevEUI,AppKey")
    for eui, key in items:
        try:
            k = bytes.fromhex(str(key))
        except ValueError:
            k = b""
        eui = str(eui).replace(":", "").replace("-", "").upper()
        if len(k) != 16 or len(eui) != 16:
            if eui.startswith("DEV"):
                continue  # a CSV header
            raise ListenError(f"{path}: {eui!r} needs a 16-hex-digit DevEUI and a 32-hex-digit AppKey")
        out[eui] = k
    return out


def inventory_abp(path: Path | str | None = None) -> dict[str, tuple[str, bytes, bytes]]:
    """The inventory's ABP devices: DevAddr -> (DevEUI, NwkSKey, AppSKey)."""
    from loraspot.provision.inventory import Inventory, InventoryError

    out = {}
    with Inventory(path) as inv:
        for d in inv.devices():
            if not d.dev_addr:
                continue
            try:
                out[d.dev_addr] = (d.dev_eui, inv.secret(d.dev_eui, "nwk_s_key"), inv.secret(d.dev_eui, "app_s_key"))
            except InventoryError:
                continue
    return out


def inventory_keys(path: Path | str | None = None) -> dict[str, bytes]:
    from loraspot.provision.inventory import Inventory, InventoryError

    out = {}
    with Inventory(path) as inv:
        for d in inv.devices():
            try:
                out[d.dev_eui] = inv.secret(d.dev_eui, "app_key")
            except InventoryError:
                continue
    return out


class Listener:
    def __init__(self, keys: dict[str, bytes], host: str = "127.0.0.1", port: int = 1700, dedup_ms: float = 200,
                 on_frame: Callable[[dict], None] | None = None, rx1_delay: int = 1, power: int = 14,
                 ack_fport: int | None = None, join_server: JoinServer | None = None, mqtt: str | None = None,
                 mqtt_prefix: str = "eu868", udp: bool = True,
                 keys_source: Callable[[], dict[str, bytes]] | None = None, keys_every_s: float = 1.0,
                 region: str = "EU868", abp: dict[str, tuple[str, bytes, bytes]] | None = None,
                 abp_source: Callable[[], dict[str, tuple[str, bytes, bytes]]] | None = None):
        reg = firmware_module("spot/lorawan/region.py")
        try:
            self.region = reg.get(region)  # downlinks follow its RX1 and RX2 rules
        except reg.RegionError as e:
            raise ListenError(str(e)) from None
        # given: sessions outlive this server
        self.js = join_server or JoinServer(rx_delay=rx1_delay, rx2_dr=self.region.rx2[1])
        for eui, key in keys.items():
            self.js.add_device(eui, key)
        for addr, (eui, nwk, app) in (abp or {}).items():  # ABP devices: their sessions as given
            self.js.add_abp(eui, addr, nwk, app)
        self._abp_source = abp_source
        # read again when a Join-Request does not verify with the keys held (a device provisioned,
        # or provisioned again with new keys, after this server started), at most every keys_every_s
        self._keys_source = keys_source
        self._keys_every_s = keys_every_s
        self._keys_read = time.monotonic()
        self.dedup_s = dedup_ms / 1000
        self.power = power
        self.ack_fport = ack_fport
        self.on_frame = on_frame or (lambda _f: None)
        # the newest frames and errors: a long-running listen keeps a bounded window, the counts say the rest
        self.frames: deque[dict] = deque(maxlen=KEEP_FRAMES)
        self.gateways: dict[str, Gateway] = {}
        self.keep_gateways = KEEP_GATEWAYS
        self.errors: deque[str] = deque(maxlen=KEEP_ERRORS)  # malformed datagrams (what was wrong)
        self.counts = {"datagrams": 0, "malformed": 0, "rxpk": 0, "duplicates": 0, "crc_failed": 0, "frames": 0,
                       "pull_resp": 0, "internal_errors": 0, "empty": 0, "gateways_forgotten": 0}
        self._groups: dict[bytes, _Group] = {}
        self._tokens = 0
        self._stop = threading.Event()
        self.lock = threading.Lock()
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            self.sock.bind((host, port) if udp else ("127.0.0.1", 0))
        except OSError as e:
            self.sock.close()
            raise ListenError(f"cannot listen on {host}:{port}: {e.strerror or e}") from None
        self.sock.settimeout(0.002)
        self.address = self.sock.getsockname()
        self.mqtt = None
        self.prefix = mqtt_prefix
        if mqtt:
            from loraspot.extras import need

            need("chirpstack_api.gw", "chirpstack", "listen --mqtt (ChirpStack Gateway Bridge messages)")
            from loraspot.listen.mqtt import MqttSide

            try:
                self.mqtt = MqttSide(self, mqtt, mqtt_prefix)
            except BaseException:
                self.sock.close()
                raise
        self._thread = threading.Thread(target=self._serve, name="listen", daemon=True)
        self._thread.start()

    # ---- lifecycle ------------------------------------------------------------------------------
    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        if self.mqtt is not None:
            self.mqtt.close()
        self.sock.close()

    def __enter__(self) -> Listener:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- the socket -----------------------------------------------------------------------------
    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                data, addr = self.sock.recvfrom(65535)
            except TimeoutError:
                data, addr = None, None
            except OSError:
                if self._stop.is_set():
                    return
                continue
            with self.lock:
                if data is not None:
                    self.guarded(self._datagram, data, addr)
                self._flush(time.monotonic())

    def guarded(self, fn, *args) -> None:
        """A server never dies from one datagram or frame: an error in its handling is counted
        and logged, and the next one is served."""
        try:
            fn(*args)
        except Exception as e:
            self.counts["internal_errors"] += 1
            self.errors.append(f"internal error ({type(e).__name__}): {e}")

    def _datagram(self, data: bytes, addr: tuple) -> None:
        self.datagram()
        try:
            up = semtech.decode(data)
        except semtech.ProtocolError as e:
            self.malformed(str(e))
            return
        gw = self.gateway(up.eui)
        if up.ident == semtech.PULL_DATA:
            gw.pulls += 1
            gw.pull_addr = addr
            self.sock.sendto(semtech.ack(up), addr)
            return
        if up.ident == semtech.TX_ACK:
            err = (up.body or {}).get("txpk_ack", {}).get("error", "NONE")
            gw.tx_acks[err] = gw.tx_acks.get(err, 0) + 1
            return
        gw.pushes += 1
        gw.push_addr = addr
        self.sock.sendto(semtech.ack(up), addr)
        if up.stat is not None:
            gw.last_stat = up.stat
        for p in up.rxpk or ():
            self.heard(gw, base64.b64decode(p["data"]), p)

    # ---- what a backhaul side (Semtech UDP here, MQTT in listen/mqtt.py) tells the server -----
    def datagram(self) -> None:
        """One message arrived from a gateway (a datagram, an MQTT message)."""
        self.counts["datagrams"] += 1

    def malformed(self, what: str) -> None:
        """A message that could not be read; what was wrong with it."""
        self.counts["malformed"] += 1
        self.errors.append(what)

    def gateway(self, eui: str, transport: str = "udp") -> Gateway:
        """The gateway of this EUI, known from now on, reached over `transport`."""
        key = eui.upper()
        gw = self.gateways.pop(key, None)  # taken out and put back: the newest heard is last
        if gw is None:
            gw = Gateway(key, transport=transport)
            if len(self.gateways) >= self.keep_gateways:
                del self.gateways[next(iter(self.gateways))]
                self.counts["gateways_forgotten"] += 1
        self.gateways[key] = gw
        gw.transport = transport
        return gw

    def downlink_sent(self) -> None:
        self.counts["pull_resp"] += 1

    def heard(self, gw: Gateway, phy: bytes, p: dict) -> None:
        """A frame gateway gw received (p: its rxpk, or the same fields made from an MQTT uplink),
        counted; CRC-failed ones go no further."""
        gw.rxpk += 1
        self.counts["rxpk"] += 1
        if p["stat"] != 1:
            self.counts["crc_failed"] += 1
            return
        if not phy:  # a valid rxpk (forwarders send empty packets too), but no LoRaWAN frame
            self.counts["empty"] += 1
            return
        g = self._groups.get(phy)
        if g is None:
            self._groups[phy] = g = _Group(time.monotonic() + self.dedup_s, phy)
        else:
            self.counts["duplicates"] += 1
        g.heard.append((gw.eui, p))

    def _flush(self, now: float) -> None:
        for phy in [k for k, g in self._groups.items() if g.due <= now]:
            self.guarded(self._frame, self._groups.pop(phy))

    def _frame(self, g: _Group) -> None:
        frame = self._handle(g)
        self.counts["frames"] += 1
        self.frames.append(frame)
        try:
            self.on_frame(frame)
        except Exception as e:  # a display error must not stop the server
            self.errors.append(f"on_frame: {e}")

    # ---- frames ---------------------------------------------------------------------------------
    def _handle(self, g: _Group) -> dict:
        seen = {}
        for eui, p in g.heard:  # one entry per gateway (a gateway may have sent a frame twice)
            if eui not in seen or p["lsnr"] > seen[eui]["lsnr"]:
                seen[eui] = p
        best_eui, best = max(seen.items(), key=lambda kv: (kv[1]["lsnr"], kv[1]["rssi"]))
        frame: dict = {"phy": base64.b64encode(g.phy).decode(), "gateways": [
            {"eui": eui, "rssi": p["rssi"], "lsnr": p["lsnr"], "tmst": p["tmst"], "time": p.get("time"),
             "freq": p["freq"], "datr": p["datr"], "chan": p["chan"]} for eui, p in seen.items()],
            "best": best_eui, "heard": len(g.heard)}
        mtype = g.phy[0] >> 5
        try:
            if mtype == 0:
                try:
                    accept, session = self.js.join(g.phy)
                except JoinError:
                    if not self._refresh_keys():
                        raise
                    accept, session = self.js.join(g.phy)
                frame.update(type="join", dev_eui=session.dev_eui, devaddr=session.devaddr_hex)
                frame["downlink"] = self._send(best_eui, best, accept, JOIN_DELAY1_US)
            elif mtype in (2, 4):
                try:
                    session, f = self.js.uplink(g.phy)
                except JoinError:
                    if not self._refresh_keys():  # an ABP device provisioned after this started
                        raise
                    session, f = self.js.uplink(g.phy)
                frame.update(type="uplink", dev_eui=session.dev_eui, devaddr=session.devaddr_hex, fcnt=session.fcnt_up,
                             fport=f.fport, confirmed=mtype == 4, payload=(f.payload or b"").hex(), adr=f.adr)
                if f.fport and f.payload:
                    try:
                        frame["decoded"] = lpp.decode(f.payload)
                    except ValueError as e:
                        frame["decode_error"] = str(e)
                if mtype == 4:
                    down = self.js.downlink(session, ack=True, fport=self.ack_fport)
                    frame["downlink"] = self._send(best_eui, best, down, self.js.rx_delay * 1_000_000)
            else:
                frame.update(type="other", mtype=mtype)
        except (JoinError, ValueError) as e:
            frame.setdefault("type", "join" if mtype == 0 else "uplink")
            frame["error"] = str(e)
            if mtype in (2, 4) and len(g.phy) >= 8:  # whose frame was refused, as far as it tells
                frame.setdefault("devaddr", g.phy[1:5][::-1].hex().upper())
                frame["fcnt16"] = int.from_bytes(g.phy[6:8], "little")
                known = self.js.sessions.get(bytes(g.phy[1:5]))
                if known is not None:
                    frame.setdefault("dev_eui", known.dev_eui)
        return frame

    def _refresh_keys(self) -> bool:
        """Take keys added or changed at the source since it was last read; True if there were any."""
        now = time.monotonic()
        if self._keys_source is None or now - self._keys_read < self._keys_every_s:
            return False
        self._keys_read = now
        try:
            keys = self._keys_source()
        except (LoraspotError, OSError, sqlite3.Error) as e:
            self.errors.append(f"keys not read again: {e}")
            return False
        fresh = {eui: key for eui, key in keys.items() if self.js.keys.get(eui.upper()) != key}
        for eui, key in fresh.items():
            self.js.add_device(eui, key)
        added = False
        if self._abp_source is not None:
            try:
                sessions = self._abp_source()
            except (LoraspotError, OSError, sqlite3.Error) as e:
                self.errors.append(f"ABP sessions not read again: {e}")
                sessions = {}
            for addr, (eui, nwk, app) in sessions.items():
                added = self.js.add_abp(eui, addr, nwk, app) or added
        return bool(fresh) or added

    def _datr(self, dr: int) -> str:
        sf, bw = self.region.dr(dr)
        return f"SF{sf}BW{bw // 1000}"

    def rx1(self, rxpk: dict) -> tuple[int, str]:
        """(frequency Hz, datr) of RX1 after the uplink rxpk, by the region's rules (RX1DROffset 0)."""
        freq = round(rxpk["freq"] * 1e6)
        sf, bw = (int(x) for x in rxpk["datr"][2:].split("BW"))
        up = self.region.drs.index((sf, bw * 1000)) if (sf, bw * 1000) in self.region.drs else None
        if up is None:
            raise JoinError(f"{rxpk['datr']} is not a data rate of {self.region.name}")
        # a node in AS923 keeps the downlink dwell time on (RX1 at DR2 at least): nothing here lifts it
        dwell = self.region.family.startswith("AS923")
        return self.region.rx1_freq_of(freq), self._datr(self.region.rx1_dr(up, 0, dwell))

    def rx2(self) -> tuple[int, str]:
        freq, dr = self.region.rx2
        return freq, self._datr(dr)

    def _send(self, eui: str, rxpk: dict, phy: bytes, delay_us: int) -> dict:
        """A PULL_RESP to gateway eui: phy at RX1 (the region's RX1 frequency and data rate for the
        uplink's channel and data rate)."""
        gw = self.gateways.get(eui)
        if gw is None:
            return {"sent": False, "error": "the gateway was forgotten (more than KEEP_GATEWAYS heard since)"}
        try:
            freq, datr = self.rx1(rxpk)
        except JoinError as e:
            return {"sent": False, "error": str(e)}
        if gw.transport == "mqtt" and self.mqtt is not None:
            return self.mqtt.send(gw, rxpk, phy, delay_us)
        if gw.pull_addr is None:
            return {"sent": False, "error": "the gateway has not sent PULL_DATA (no downlink path)"}
        # no ncrc, as ChirpStack's downlinks through the Gateway Bridge: sent with a payload CRC
        txpk = {"imme": False, "tmst": (rxpk["tmst"] + delay_us) & 0xFFFFFFFF, "freq": freq / 1e6, "rfch": 0,
                "powe": self.power, "modu": "LORA", "datr": datr, "codr": rxpk["codr"], "ipol": True,
                "size": len(phy), "data": base64.b64encode(phy).decode()}
        self._tokens = (self._tokens + 1) & 0xFFFF
        self.sock.sendto(semtech.pull_resp(self._tokens, txpk), gw.pull_addr)
        self.downlink_sent()
        return {"sent": True, "gateway": eui, "token": self._tokens, "tmst": txpk["tmst"], "size": len(phy),
                "freq": freq, "datr": datr}

    def snapshot(self) -> dict:
        with self.lock:
            return {"counts": dict(self.counts), "gateways": {k: vars(v).copy() for k, v in self.gateways.items()}}
