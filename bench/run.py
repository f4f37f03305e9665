"""`make bench`: figures for the console over a virtual board's emulated UART.

Prints round trips per second and fs.put throughput at 115200 and 921600 baud as fractions of
the line rate (baud/10 bytes/s), and the free heap after boot under the 112K limit. No pass/fail.
"""

from __future__ import annotations

import random
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "host"))

from loraspot import device  # noqa: E402
from loraspot.console.files import put_file  # noqa: E402
from loraspot.sim.vboard import HEAP_KB, BoardOptions, VirtualBoard  # noqa: E402


def round_trips(client, seconds: float = 3.0) -> float:
    n, start = 0, time.monotonic()
    while time.monotonic() - start < seconds:
        client.request("config.get", {"key": "name"})
        n += 1
    return n / (time.monotonic() - start)


def put_throughput(client, size: int) -> float:
    data = random.Random(size).randbytes(size)
    start = time.monotonic()
    put_file(client, "/bench.bin", data)
    return size / (time.monotonic() - start)


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        board = VirtualBoard(BoardOptions(flash=Path(tmp) / "flash.bin", register=False))
        info = board.start()
        try:
            client, _ = device.connect(info["url"])
            with client:
                stats = client.request("stats")
            # the interpreter's heap is the board's plus the virtual board's boot allowance (held by
            # vboot's code and ballast), so the firmware's share is the board's size less what is free
            board_heap = HEAP_KB * 1024
            print(f"heap after boot ({HEAP_KB}K board): free {stats['heap_free']} B, "
                  f"firmware uses {board_heap - stats['heap_free']} B ({stats['heap_free'] / board_heap:.2f} free)")
            print(f"{'baud':>7} {'line B/s':>9} {'req/s':>7} {'put B/s':>9} {'put/line':>9} {'payload/line':>13}")
            for baud in (115200, 921600):
                client, _ = device.connect(info["url"], baud)
                with client:
                    rps = round_trips(client)
                    size = 32 * 1024 if baud == 115200 else 128 * 1024
                    bps = put_throughput(client, size)
                line = baud / 10
                # base64 carries 3 bytes in 4: the payload can reach at most 75% of the line rate
                print(f"{baud:>7} {line:>9.0f} {rps:>7.1f} {bps:>9.0f} {bps / line:>9.2f} {bps / (line * 0.75):>13.2f}")
            print(f"UART counters: {board.uart.counters}")
        finally:
            board.stop()


if __name__ == "__main__":
    main()
