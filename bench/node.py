"""Node-role figures for `make bench`: bytes and time on air of a typical sensor uplink (BME280 +
GPS + battery as Cayenne LPP) against the theoretical minimum for the same content at the same
resolution, the duty-cycle budget a 5-minute interval uses per day at SF7 and SF12 (EU868, 1 %),
and the heap the whole node role holds on a virtual board (64-bit port)."""

from __future__ import annotations

import json
import math
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "host"))
sys.path.insert(0, str(ROOT))

import serial  # noqa: E402
from loraspot import boards  # noqa: E402
from loraspot.console.codec import decode as decode_frame  # noqa: E402
from loraspot.flash import image  # noqa: E402
from loraspot.flash.mpy import compiled_firmware  # noqa: E402
from loraspot.lorawan import lpp  # noqa: E402
from loraspot.lorawan.joinserver import JoinServer  # noqa: E402
from loraspot.sim import vboard  # noqa: E402
from loraspot.sim.medium import Medium, airtime_module  # noqa: E402
from loraspot.sim.vboard import BoardOptions, VirtualBoard  # noqa: E402

from tests.host.lorawan_gateway import Gateway  # noqa: E402

OVERHEAD = 13  # MHDR 1 + FHDR 7 (no FOpts) + FPort 1 + MIC 4
# the typical set at LPP resolution, with the number of distinct values each field needs over its
# physical range: temperature -40..85 °C in 0.1, humidity 0..100 % in 0.5, pressure 300..1100 hPa in
# 0.1, battery 2.50..4.50 V in 0.01, latitude ±90° and longitude ±180° in 0.0001°, altitude
# -500..9000 m in 0.01 m
FIELDS = {"temperature": 1250, "humidity": 201, "pressure": 8000, "battery": 201, "lat": 1800001,
          "lon": 3600001, "alt": 950001}
DAY_S = 86400
INTERVAL_S = 300


def typical_payload() -> bytes:
    return lpp.encode([(1, 103, 21.4), (2, 104, 48.5), (3, 115, 1009.8), (4, 136, {"lat": 52.5200, "lon": 13.4050,
                                                                                   "alt": 34.0}), (5, 2, 3.98)])


def node_heap(romfs: bool = True, heap_kb: int | None = None) -> int | None:
    """Bytes the running node holds (fresh interpreter's free heap less the node's free heap), with
    the library in the ROMFS (as the virtual board's image has it) or copied to littlefs (an
    image without ROMFS: bytecode loaded into the heap; given a larger heap so that it runs)."""
    heap_kb = heap_kb or 256  # room enough: what the node holds, not whether it fits
    js = JoinServer()
    eui, key = "70B3D57ED000BEEF", bytes(range(16))
    js.add_device(eui, key)
    with tempfile.TemporaryDirectory() as d:
        profile = boards.get("virtual")
        if not romfs:
            parts = profile["flash"]["partitions"]
            del parts["romfs"]
        cfg = {"role": "node", "dev_eui": eui, "sensors": "bme280,gps,battery", "uplink_interval": 30,
               "stats_interval": 5}
        files = image.app_files(profile, cfg, mpy_dir=compiled_firmware(ROOT / ".venv" / "mpy-cache"))
        files["secrets.json"] = json.dumps({"app_key": key.hex()}).encode()
        image.create_flash_image(Path(d) / "n.bin", profile, files)
        stats: list[dict] = []
        with Medium(speed=10) as medium:
            gw = Gateway(medium, js, 10)
            b = VirtualBoard(BoardOptions(flash=Path(d) / "n.bin", speed=10, medium=medium.address, register=False,
                                          pty=False, heap_kb=heap_kb,
                                          hardware={"bme280": {}, "gps": {}, "battery": {}}))
            try:
                b.start()
                with serial.serial_for_url(b.rfc.url, 115200, timeout=0.5) as port:
                    end = time.monotonic() + 30
                    while time.monotonic() < end and not (stats and sum("uplink" in e for e in gw.log) >= 1):
                        line = port.readline().strip()
                        if line.startswith(b"~"):
                            try:
                                msg = decode_frame(line)
                            except ValueError:
                                continue
                            if msg.get("ev") == "stats" and any("uplink" in e for e in gw.log):
                                stats.append(msg["data"])
            finally:
                b.stop()
                gw.close()
    if not stats:
        return None
    return vboard.fresh_free(heap_kb) - stats[-1]["heap_free"]


def main() -> None:
    at = airtime_module()
    payload = typical_payload()
    bits = sum(math.ceil(math.log2(n)) for n in FIELDS.values())
    minimum = math.ceil(bits / 8)
    print(f"node uplink (BME280 + GPS + battery, Cayenne LPP): {len(payload)} B application payload, "
          f"{len(payload) + OVERHEAD} B on air; minimum for the same content {minimum} B "
          f"({minimum + OVERHEAD} B on air): LPP/minimum {len(payload) / minimum:.2f} payload, "
          f"{(len(payload) + OVERHEAD) / (minimum + OVERHEAD):.2f} on air")
    for sf in (7, 12):
        t_lpp = at.time_on_air_us(len(payload) + OVERHEAD, sf, 125000) / 1000
        t_min = at.time_on_air_us(minimum + OVERHEAD, sf, 125000) / 1000
        per_day = DAY_S // INTERVAL_S * t_lpp / 1000
        budget = DAY_S * 0.01
        print(f"  SF{sf}/125 kHz: {t_lpp:.1f} ms on air (minimum {t_min:.1f} ms, ratio {t_lpp / t_min:.2f}); "
              f"every {INTERVAL_S // 60} min: {per_day:.1f} s/day = {100 * per_day / budget:.1f} % of the 1 % "
              f"duty-cycle budget ({budget:.0f} s/day)")
    for romfs, label in ((True, "library in ROMFS (run in place)"), (False, "library in littlefs (loaded to heap)")):
        used = node_heap(romfs)
        if used is None:
            print(f"node heap, {label}: no figure (the node did not report)")
        else:
            print(f"node role heap on the virtual board (64-bit port), {label}: {used / 1024:.1f} KB held while "
                  f"running (ESP32 budget {vboard.HEAP_KB} KB: ratio {used / 1024 / vboard.HEAP_KB:.2f})")


if __name__ == "__main__":
    main()
