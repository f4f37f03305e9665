"""Radio-layer figures for `make bench`: heap allocated per received packet in the drivers (under
MicroPython with the 112K heap, against the chip models) and the RF medium's routing rate with
50 virtual radios. Prints figures, no pass/fail."""

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
from loraspot.sim.medium import F_CRC, Cfg, Medium, MediumClient  # noqa: E402


def rx_heap() -> None:
    cache = ROOT / ".venv" / "mpy-cache"
    path = [compiled_firmware(cache, ROOT / "tests" / "firmware", "fwtests"), compiled_firmware(cache),
            ROOT / "host" / "loraspot" / "sim" / "mp"]
    env = dict(os.environ, MICROPYPATH=os.pathsep.join(map(str, path)) + os.pathsep + ".frozen")
    exe = Path(sys.executable).with_name("micropython")
    proc = subprocess.run([str(exe), "-X", "heapsize=112K", "bench_rx_heap.py"], cwd=ROOT / "tests" / "firmware",
                          env=env, capture_output=True, text=True, timeout=600)
    if proc.returncode:
        print(proc.stdout + proc.stderr)
        return
    head = ("driver", "packets", "IRQ B", "driver B", "B/packet", "B/packet incl. asyncio wake")
    print(f"{head[0]:>7} {head[1]:>8} {head[2]:>6} {head[3]:>9} {head[4]:>9} {head[5]:>28}")
    deadlines = []
    for line in proc.stdout.splitlines():
        r = json.loads(line)
        if "deadline_mean_us" in r:
            deadlines.append(r)
            continue
        print(f"{r['driver']:>7} {r['packets']:>8} {r['isr_bytes']:>6} {r['driver_bytes']:>9} {r['per_packet']:>9.1f} "
              f"{r['with_asyncio_per_packet']:>28.1f}")
    for r in deadlines:
        print(f"{r['driver']}: transmit_at starts the chip {r['deadline_mean_us']:.0f} µs after the deadline on "
              f"average, {r['deadline_worst_us']} µs at worst ({r['transmissions']} transmissions, unix port)")


def medium_rate(radios: int = 50, speed: int = 20, seconds: float = 5.0) -> None:
    """Half the radios send back to back, each on its own channel/SF (24 combinations, no
    collisions by design); the other half listen, one per combination. The medium runs `speed`
    times faster than real time to push the rate up. Prints frames and deliveries per second of
    wall time and the share of the expected deliveries that were routed."""
    combos = [(867_100_000 + 200_000 * ch, sf) for sf in (7, 8, 9) for ch in range(8)]
    with Medium(speed=speed) as medium:
        clients = [MediumClient(medium.address, f"r{i}", (i * 10.0, 0, 0), speed=speed) for i in range(radios)]
        senders, listeners = clients[: radios // 2], clients[radios // 2 :]
        try:
            for i, c in enumerate(listeners):
                f, sf = combos[i % len(combos)]
                c.listen(Cfg(f, sf, 125_000, 5, 8, F_CRC, 0x34, 14))
            expected, sent = 0, 0
            next_t = [medium.now() + 200_000 * speed] * len(combos)
            start = time.monotonic()
            cpu0 = time.process_time()
            while time.monotonic() - start < seconds:
                for i, s in enumerate(senders):
                    k = i % len(combos)
                    if i >= len(combos) or next_t[k] > medium.now() + 300_000 * speed:
                        continue
                    f, sf = combos[k]
                    cfg = Cfg(f, sf, 125_000, 5, 8, F_CRC, 0x34, 14)
                    s.transmit(b"x" * 10, cfg, next_t[k])
                    next_t[k] += medium._airtime.time_on_air_us(10, sf, 125_000) + 1000
                    sent += 1
                    expected += sum(1 for j in range(len(listeners)) if j % len(combos) == k)
                time.sleep(0.002)
            time.sleep(1.0)
            wall = time.monotonic() - start
            cpu = time.process_time() - cpu0
            for c in clients:  # drain so the sockets are not left full
                c.sock.setblocking(False)
                try:
                    while c.sock.recv(2048):
                        pass
                except OSError:
                    pass
            print(f"RF medium, {radios} radios at speed {speed}: {sent / wall:.0f} frames/s on air, "
                  f"{medium.routed / wall:.0f} deliveries/s routed, {medium.routed}/{expected} expected deliveries "
                  f"({medium.routed / max(1, expected):.2f}), host CPU {cpu / wall:.2f} cores, "
                  f"errors {len(medium.errors)}")
        finally:
            for c in clients:
                c.close()


if __name__ == "__main__":
    rx_heap()
    for speed in (1, 5, 10, 20):
        medium_rate(speed=speed, seconds=4.0)
