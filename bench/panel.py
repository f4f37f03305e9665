"""The heap the set-up access point, the status page and the display need on the virtual board
(issue "Set-up without a cable"): for each, the smallest heap in 4 KB steps in which it works,
with the library run from ROMFS (profile `virtual`) and loaded from littlefs (`virtual-ota`, a
stock image's layout):

- hotspot + status page + display: backhaul up, 200 page requests answered while frames arrive,
  every frame forwarded, the display drawn;
- hotspot + status page, hotspot + display: the same with one of them; each of the three also on
  the MQTT backhaul (with a broker);
- set-up: the access point on, its page and a refused form answered;
- node + display: the node with its sensors joins and sends two uplinks through a gateway and
  draws its display;
- hotspot + signed receipts (and + status page; and on the MQTT backhaul, with a broker): the same
  frames recorded, a signed beacon sent, the batch closed, signed with the identity key and taken by
  the ledger service (loraspot ledger serve), over HTTP a challenge answered by a second beacon,
  with a GPS receiver giving the hotspot its time.

Prints one JSON line per case with the figure and the table loraspot.budget.FEATURE_NEED_KB
keeps. Run by `make bench`; `--case NAME` runs one."""

from __future__ import annotations

import json
import sys
import tempfile
import threading
import urllib.request
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat, PublicFormat

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "host"))
sys.path.insert(0, str(ROOT))

from loraspot import boards  # noqa: E402
from loraspot.flash import image  # noqa: E402
from loraspot.flash.mpy import compiled_firmware  # noqa: E402
from loraspot.listen.server import Listener  # noqa: E402
from loraspot.proofs.service import LedgerService  # noqa: E402
from loraspot.provision.provision import eui64  # noqa: E402
from loraspot.sim.medium import F_CRC, Cfg, Medium, MediumClient  # noqa: E402
from loraspot.sim.vboard import BoardOptions, VirtualBoard  # noqa: E402

from tests.broker import Broker  # noqa: E402
from tests.e2e.hotspot_world import FREQ, SF, Events, wait  # noqa: E402

STEP = 4
RECEIPTS = {"receipts_interval": 2, "ledger_server": "127.0.0.1"}
CASES = {"status+display": {"http_port": 80, "display": True}, "status": {"http_port": 80},
         "display": {"display": True}, "setup": None, "receipts": RECEIPTS,
         "status+receipts": {"http_port": 80, **RECEIPTS}, "mqtt+receipts": {"backhaul": "mqtt", **RECEIPTS},
         "mqtt+status+display": {"backhaul": "mqtt", "http_port": 80, "display": True},
         "mqtt+status": {"backhaul": "mqtt", "http_port": 80}, "mqtt+display": {"backhaul": "mqtt", "display": True}}
# a node with its display on, run at NODE_SPEED (as its own figure is measured: test_budget_e2e)
NODE_CASES = {"node+display": {"display": True}, "node": {}}  # "node": the same check without it, for the ratio
NODE_SPEED = 10
# the cases measured with the library loaded from littlefs only: receipts are offered on the boards
# with PSRAM, whose images have no ROMFS
LITTLEFS_ONLY = ("receipts", "status+receipts", "mqtt+receipts")


def _image(path: Path, board: str, cfg: dict, secret: dict | None = None) -> Path:
    profile = boards.get(board)
    files = image.app_files(profile, cfg, mpy_dir=compiled_firmware(ROOT / ".venv" / "mpy-cache"))
    if secret:
        files["secrets.json"] = json.dumps({k: v.hex() for k, v in secret.items()}).encode()
    path.unlink(missing_ok=True)
    image.create_flash_image(path, profile, files)
    return path


def _get(port: int, path: str) -> int:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=20) as r:
        r.read()
        return r.status


def identity() -> tuple[bytes, bytes]:
    """An identity key pair (private seed, public key), as keys.identity keeps it on a board."""
    key = Ed25519PrivateKey.generate()
    return (key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption()),
            key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw))


def works(board: str, case: str, heap_kb: int, tmp: Path) -> bool:
    if case in NODE_CASES:
        return _node_works(board, case, heap_kb, tmp)
    extra = CASES[case]
    if extra is not None and extra.get("backhaul") == "mqtt":
        broker = Broker(tmp)
        try:
            return _works(board, case, heap_kb, tmp, broker)
        finally:
            broker.stop()
    return _works(board, case, heap_kb, tmp, None)


def _works(board: str, case: str, heap_kb: int, tmp: Path, broker: Broker | None) -> bool:
    extra = CASES[case]
    seed, pub = identity()
    (tmp / "ledger.sqlite").unlink(missing_ok=True)
    mqtt = broker.url if broker else None
    with Medium() as medium, Listener({}, port=0, udp=mqtt is None, mqtt=mqtt) as ls, \
            LedgerService(tmp / "ledger.sqlite", port=0, mqtt=mqtt).start() as led:
        cfg = {"role": "hotspot", "single_freq": FREQ, "single_sf": SF, "server_port": ls.address[1],
               "packet_events": False, **(extra or {})}
        if broker is not None:
            cfg["mqtt_port"] = broker.port
        secret = {"pairing_code": b"BENC-HCOD-E234"}
        if "receipts_interval" in cfg:
            cfg["ledger_server_port"] = led.address[1]
            secret |= {"identity_key": seed, "identity_pub": pub}
        if extra is not None:
            cfg["wifi_ssid"] = "HomeNet"
            secret["wifi_password"] = b"bench password"
        path = _image(tmp / f"{case}.bin", board, cfg, secret)
        # with receipts, a GPS receiver streaming (its time taken, as on a T-Beam): the larger need
        hardware = {"gps": {}} if "receipts_interval" in cfg else {}
        vb = VirtualBoard(BoardOptions(flash=path, board=board, medium=medium.address, register=False,
                                       heap_kb=heap_kb, wifi={"HomeNet": "bench password"}, hardware=hardware))
        vb.start()
        try:
            return _setup_works(vb) if extra is None else _hotspot_works(vb, extra, medium, (led, pub))
        except Exception:  # a board that crashed, did not answer, or dropped the connection: does not fit
            return False
        finally:
            vb.stop()


def _hotspot_works(vb: VirtualBoard, extra: dict, medium: Medium, ledger: tuple[LedgerService, bytes]) -> bool:
    ev = Events(vb.rfc.url if vb.rfc else "")
    node = MediumClient(medium.address, "n", (10, 0, 0))
    try:
        if not wait(lambda: ev.client.request("stats").get("backhaul") == "up", 30):
            return False
        if "receipts_interval" in extra:
            ledger[0].ledger.add_gateway(eui64(ev.hello["id"]), ledger[1].hex())
        fails = []
        if extra.get("http_port"):
            def ask():
                for i in range(200):
                    try:
                        if _get(vb.parts.http_port, "/status.json" if i % 2 else "/") != 200:
                            fails.append(i)
                    except OSError:
                        fails.append(i)
            t = threading.Thread(target=ask)
            t.start()
        sent = 0
        for i in range(40):
            frame = bytes([0x40, i, 0, 1, 0x26, 0, i, 0]) + bytes(8)
            node.transmit(frame, Cfg(FREQ, SF, 125_000, 5, 8, F_CRC, 0x34, 14))
            node.tx_done()
            sent += 1
        if extra.get("http_port"):
            t.join()
        ok = wait(lambda: ev.client.request("stats")["forwarded"] == sent, 20)
        if "receipts_interval" in extra:
            # a signed beacon sent; every frame in a batch the ledger took; over HTTP, a challenge
            # given with the answer to an upload, and the beacon that answers it sent while the
            # batches go on (a broker gives no answer: the MQTT backhaul takes no challenge)
            challenged = extra.get("backhaul") != "mqtt"
            if challenged:
                ledger[0].challenge(eui64(ev.hello["id"]))
            ok = ok and ev.client.request("receipts.beacon", timeout=30)["result"] == "NONE"

            def taken() -> int:
                return ledger[0].ledger.db.execute("SELECT count(*) FROM records").fetchone()[0]

            ok = ok and wait(lambda: taken() >= sent, 60)
            ok = ok and (not challenged or wait(lambda: ev.client.request("receipts")["beacons"] >= 2, 60))
            ok = ok and not ev.client.request("receipts")["last_error"]
        st = ev.client.request("stats")
        drawn = not extra.get("display") or vb.parts.screens > 0
        return ok and not fails and st["nomem"] == 0 and drawn and ev.client.request("hello")["boot"] is not None \
            and not any(e.kind == "fault" for e in ev.events)
    finally:
        node.close()
        ev.close()


def _node_works(board: str, case: str, heap_kb: int, tmp: Path) -> bool:
    """A node with the sensors its own figure (NEED_KB) was measured with and its display on: it
    joins and sends two uplinks through a gateway, draws its display, is never short of heap for
    its role or its console and does not reset."""
    from loraspot.lorawan.joinserver import JoinServer

    from tests.host.lorawan_gateway import Gateway

    eui, key = "70B3D57ED00000D1", bytes(range(16))
    js = JoinServer()
    js.add_device(eui, key)
    cfg = {"role": "node", "dev_eui": eui, "sensors": "bme280,gps,battery", "uplink_interval": 10,
           **NODE_CASES[case]}
    path = _image(tmp / f"{case}.bin", board, cfg, {"app_key": key})
    with Medium(speed=NODE_SPEED) as medium:
        gw = Gateway(medium, js, NODE_SPEED)
        vb = VirtualBoard(BoardOptions(flash=path, board=board, speed=NODE_SPEED, medium=medium.address,
                                       register=False, heap_kb=heap_kb,
                                       hardware={"bme280": {}, "gps": {}, "battery": {}}))
        vb.start()
        ev = None
        try:
            ev = Events(vb.rfc.url if vb.rfc else "")
            if not wait(lambda: sum("uplink" in e for e in gw.log) >= 2, 60):
                return False
            st = ev.client.request("stats")
            boots = {e.data.get("boot") for e in ev.events if e.kind == "boot"} - {ev.hello.get("boot")}
            drawn = vb.parts.screens > 0 or not cfg.get("display")
            return (st.get("role_no_memory", 0) == 0 and st["tx_no_memory"] == 0 and drawn
                    and not boots and not any(e.kind == "fault" for e in ev.events))
        except Exception:  # a board that crashed, did not answer, or dropped the connection: does not fit
            return False
        finally:
            if ev is not None:
                ev.close()
            vb.stop()
            gw.close()


def _setup_works(vb: VirtualBoard) -> bool:
    from loraspot.setup import Page, SetupError, apply

    if not wait(lambda: vb.parts.air is not None and vb.parts.air.ssid is not None, 30):
        return False
    page = Page(air=(vb.parts.air.port, vb.parts.air.ssid, "BENC-HCOD-E234"))
    for _ in range(20):
        if page.request("GET", "/setup.json")[0] != 200:
            return False
    try:
        apply(page, {"region": "XX868", "wifi_ssid": "HomeNet"})
    except SetupError as e:
        return "field region" in str(e)
    return False


def smallest(board: str, case: str, tmp: Path, lo: int = 80, hi: int = 260) -> int | None:
    """The smallest heap in STEP KB steps that works (and the step above it works too)."""
    if not works(board, case, hi, tmp):
        return None
    while hi - lo > STEP:
        mid = (lo + hi) // 2 // STEP * STEP
        if works(board, case, mid, tmp):
            hi = mid
        else:
            lo = mid
    return hi


def main() -> None:
    only = sys.argv[sys.argv.index("--case") + 1] if "--case" in sys.argv else None
    with tempfile.TemporaryDirectory() as d:
        for board, code in (("virtual", "romfs"), ("virtual-ota", "littlefs")):
            for case in [*CASES, *NODE_CASES]:
                if (only and case != only) or (code == "romfs" and case in LITTLEFS_ONLY):
                    continue
                need = smallest(board, case, Path(d))
                key = case.split("+")[0] if case.startswith(("mqtt+", "node+")) else \
                    "setup" if case == "setup" else "hotspot-udp"
                key = {"mqtt": "hotspot-mqtt"}.get(key, key)
                table = None if case == "node" else [key, code, case.removeprefix("mqtt+").removeprefix("node+")]
                print(json.dumps({"bench": "panel", "case": case, "code": code, "need_kb": need, "table": table}),
                      flush=True)


if __name__ == "__main__":
    main()
