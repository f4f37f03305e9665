"""The heap figures a refactoring must not make worse (printed, and with --json written as one
object): heap per forwarded packet on the hotspot's path, with and without packet events; the
hotspot's free heap while forwarding (resident); the node role's heap held while running.
`bench/heap-baseline.json` holds the figures of the tree before the seams were cut (issue
"Seams"); this prints the change against it."""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

import hotspot  # noqa: E402
import node  # noqa: E402

SAMPLES = 8  # stats requests per live board, after its backhaul is up

BASELINE = ROOT / "bench" / "heap-baseline.json"
BLOCK = 16  # a heap block of the 64-bit unix port (8 on an ESP32)


def live_hotspot_free(backhaul: str, romfs: bool = True, heap_kb: int | None = None) -> int:
    """The least free heap a running virtual hotspot reports (stats, after a collection) with its
    backhaul up: Semtech UDP to `loraspot listen`, or MQTT to a real broker; the library in ROMFS (the
    virtual board's image) or loaded from littlefs (a stock image); at the profile's budget or heap_kb."""
    import tempfile

    sys.path.insert(0, str(ROOT))
    from loraspot import boards
    from loraspot.flash import image
    from loraspot.flash.mpy import compiled_firmware
    from loraspot.listen.server import Listener
    from loraspot.sim.medium import Medium

    from tests.broker import Broker
    from tests.e2e.conftest import BoardOptions, Harness
    from tests.e2e.hotspot_world import FREQ, SF, Events, wait

    with tempfile.TemporaryDirectory(prefix="heap-") as folder:
        tmp = Path(folder)
        broker = Broker(tmp) if backhaul == "mqtt" else None
        ls = Listener({}, port=0, udp=broker is None, mqtt=broker.url if broker else None)
        try:
            conf = {"backhaul": "mqtt", "mqtt_port": broker.port} if broker else {"server_port": ls.address[1]}
            profile = boards.get("virtual")
            if not romfs:
                del profile["flash"]["partitions"]["romfs"]
            cfg = {"role": "hotspot", "single_freq": FREQ, "single_sf": SF, "stats_interval": 5,
                   "gw_stat_interval": 10, **conf}
            files = image.app_files(profile, cfg, mpy_dir=compiled_firmware(ROOT / ".venv" / "mpy-cache"))
            image.create_flash_image(tmp / "hs.bin", profile, files)
            with Medium(speed=10) as medium:
                h = Harness(BoardOptions(flash=tmp / "hs.bin", speed=10, medium=medium.address, register=False,
                                         heap_kb=heap_kb))
                ev = Events(h.info["url"])
                try:
                    if not wait(lambda: ev.client.request("stats").get("backhaul") == "up", 30, 0.5):
                        raise RuntimeError(f"the {backhaul} backhaul did not come up")
                    return min(ev.client.request("stats")["heap_free"] for _ in range(SAMPLES))
                finally:
                    ev.close()
                    h.stop()
        finally:
            ls.close()
            if broker:
                broker.stop()


def live_hotspot_held(backhaul: str, romfs: bool = True, heap_kb: int = 112) -> int:
    """Bytes a running virtual hotspot holds: a fresh interpreter's free heap less its free heap."""
    from loraspot.sim import vboard

    return vboard.fresh_free(heap_kb) - live_hotspot_free(backhaul, romfs, heap_kb)


def figures() -> dict:
    fwd = hotspot.firmware("forward")
    ev = hotspot.firmware("forward-events")
    return {"hotspot_bytes_per_packet": round(fwd["bytes_per_packet"], 1),
            "hotspot_bytes_per_packet_events": round(ev["bytes_per_packet"], 1),
            "hotspot_free_heap_min": min(fwd["free_heap"]), "node_heap_used": node.node_heap(False),
            "hotspot_udp_running_free": live_hotspot_free("udp"),
            "hotspot_mqtt_running_free": live_hotspot_free("mqtt")}


def main() -> None:
    now = figures()
    if "--json" in sys.argv:
        print(json.dumps(now, sort_keys=True))
        return
    base = json.loads(BASELINE.read_text()) if BASELINE.exists() else {}
    for key, value in now.items():
        was = base.get(key)
        change = "" if was is None or value is None else f" (baseline {was}, change {value - was:+.1f})"
        print(f"{key}: {value}{change}")
    if base:
        per_packet_ok = all(now[k] - base[k] <= BLOCK for k in ("hotspot_bytes_per_packet",
                                                               "hotspot_bytes_per_packet_events"))
        resident_ok = (base["hotspot_free_heap_min"] - now["hotspot_free_heap_min"] <= 1024 and
                       (now["node_heap_used"] or 0) - (base["node_heap_used"] or 0) <= 1024)
        print(f"within one heap block per packet: {per_packet_ok}; within 1 KB resident: {resident_ok}")


if __name__ == "__main__":
    main()
