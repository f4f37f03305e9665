"""LoRaWAN figures for `make bench`: AES blocks/s, time and heap per uplink build and downlink
parse in the firmware (MicroPython, 112K heap), and the same uplink in the CPython twin."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "host"))

from loraspot.flash.mpy import compiled_firmware  # noqa: E402
from loraspot.lorawan import frame  # noqa: E402


def main() -> None:
    fw = compiled_firmware(ROOT / ".venv" / "mpy-cache")
    env = dict(os.environ, MICROPYPATH=os.pathsep.join([str(fw), ".frozen"]))
    exe = Path(sys.executable).with_name("micropython")
    proc = subprocess.run([str(exe), "-X", "heapsize=112K", "bench_lorawan.py"], cwd=ROOT / "tests" / "firmware",
                          env=env, capture_output=True, text=True, timeout=300)
    if proc.returncode:
        print(proc.stdout + proc.stderr)
        return
    r = json.loads(proc.stdout.strip().splitlines()[-1])
    nwk, app = bytes(range(16)), bytes(range(16, 32))
    payload = bytes(range(r["payload"]))
    n = 2000
    t0 = time.perf_counter()
    for i in range(n):
        frame.build(nwk, app, b"\x01\x02\x03\x04", i, uplink=True, fport=2, payload=payload)
    host_us = (time.perf_counter() - t0) / n * 1e6
    print(f"LoRaWAN (unix port, 112K heap): {r['aes_blocks_per_s']} AES blocks/s; uplink of {r['payload']} B: "
          f"{r['uplink_us']:.0f} µs, {r['uplink_heap']:.0f} B heap; downlink parse: {r['downlink_us']:.0f} µs, "
          f"{r['downlink_heap']:.0f} B heap")
    print(f"CPython twin uplink build: {host_us:.0f} µs -> firmware/CPython time ratio {r['uplink_us'] / host_us:.1f}")


if __name__ == "__main__":
    main()
