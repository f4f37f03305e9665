"""Hotspot figures for `make bench` (printed, never asserted):

- heap allocated per forwarded packet in the firmware (goal: under 512 B) and the free heap over
  10,000 forwarded packets, under the 112K heap (tests/firmware/bench_hotspot.py);
- the firmware's own forwarding rate on this machine's unix port;
- TX start error of downlinks through the JIT queue and the SX127x driver against the chip model;
- a virtual hotspot with the channel saturated: back-to-back 23-byte SF7 frames (the physical
  limit, about 16 per second) for 20 s through the RF medium, forwarded to `loraspot listen`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "host"))
sys.path.insert(0, str(ROOT))

from loraspot.flash.mpy import compiled_firmware  # noqa: E402
from loraspot.listen.server import Listener  # noqa: E402
from loraspot.sim.medium import F_CRC, Cfg, Medium, MediumClient  # noqa: E402

from tests.e2e.conftest import Harness  # noqa: E402
from tests.e2e.hotspot_world import Events, hotspot_image  # noqa: E402


def firmware(mode: str, heap: str = "112K") -> dict:
    cache = ROOT / ".venv" / "mpy-cache"
    path = [compiled_firmware(cache, ROOT / "tests" / "firmware", "fwtests"), compiled_firmware(cache),
            ROOT / "host" / "loraspot" / "sim" / "mp"]
    env = dict(os.environ, MICROPYPATH=os.pathsep.join(map(str, path)) + os.pathsep + ".frozen")
    exe = Path(sys.executable).with_name("micropython")
    proc = subprocess.run([str(exe), "-X", f"heapsize={heap}", "bench_hotspot.py", mode],
                          cwd=ROOT / "tests" / "firmware", env=env, capture_output=True, text=True, timeout=600)
    if proc.returncode:
        raise SystemExit(proc.stdout + proc.stderr)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def saturated(seconds: float = 20.0) -> None:
    from loraspot.sim.vboard import BoardOptions

    with tempfile.TemporaryDirectory() as tmp, Medium(speed=1) as medium, \
            Listener({}, port=0, dedup_ms=50) as ls:
        flash = hotspot_image(Path(tmp) / "hs.bin", server_port=ls.address[1], packet_events=False)
        h = Harness(BoardOptions(flash=flash, medium=medium.address, register=False))
        ev = Events(h.info["url"])
        tx = MediumClient(medium.address, "sender", (30, 0, 0), 1)
        try:
            time.sleep(1.5)
            cfg = Cfg(868_100_000, 7, 125_000, 5, 8, F_CRC, 0x34, 14)
            air = medium._airtime.time_on_air_us(23, 7, 125_000)
            t = medium.now() + 200_000
            sent = 0
            end = time.monotonic() + seconds
            while time.monotonic() < end:
                while t < medium.now() + 300_000:  # keep the medium fed a little ahead
                    tx.transmit(bytes([0x40]) + sent.to_bytes(4, "big") + bytes(18), cfg, t)
                    t += air + 500  # back to back, 0.5 ms apart
                    sent += 1
                time.sleep(0.02)
            time.sleep(1.5)
            st = ev.client.request("stats")
        finally:
            ev.close()
            tx.close()
            h.stop()
    per_s = 1e6 / (air + 500)
    print(f"saturated SF7 channel, {seconds:.0f} s: {sent} frames sent ({per_s:.1f}/s, the physical limit for 23 B), "
          f"hotspot received {st['rx']}, forwarded {st['forwarded']}, dropped {st['dropped']}; "
          f"listen got {ls.counts['rxpk']} "
          f"({ls.counts['rxpk'] / max(1, sent):.1%} of those sent); heap free {st['heap_free']} B")


def main() -> None:
    fwd = firmware("forward")
    ev = firmware("forward-events")
    print(f"heap per forwarded packet: {fwd['bytes_per_packet']:.0f} B without packet events, "
          f"{ev['bytes_per_packet']:.0f} B with them (goal < 512 B; ratio {ev['bytes_per_packet'] / 512:.2f})")
    free = fwd["free_heap"]
    print(f"free heap over {fwd['packets']} forwarded packets (every 1000): {free[0]} .. {free[-1]} B "
          f"(change {free[-1] - free[0]} B)")
    r = firmware("rate")
    print(f"firmware forwarding path: {r['us_per_packet']:.0f} µs per packet on this machine "
          f"({r['packets_per_s']:.0f} packets/s, {r['packets_per_s'] / 16.2:.0f}x the SF7 channel's limit)")
    tx = firmware("tx", "200K")
    print(f"downlink TX start error (SX127x driver vs chip model, {tx['downlinks']} downlinks): median "
          f"{tx['median_us']} µs, p99 {tx['p99_us']} µs, max {tx['max_us']} µs; late >1 ms: {tx['late']}")
    saturated()


if __name__ == "__main__":
    main()
