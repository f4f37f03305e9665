"""The firmware on a virtual board gets the heap of the board it stands for: the interpreter holds
the virtual board's own boot code in an allowance on top, and main.py starts with what a fresh
interpreter of the board's heap size has free."""

from __future__ import annotations

import subprocess

import pytest

from tests.conftest import micropython
from tests.e2e.conftest import bytecode_image

pytestmark = pytest.mark.e2e

MAIN = b"""
import gc, json, time
gc.collect()
free = gc.mem_free()
while True:
    print("RESULT " + json.dumps({"free": free}))
    time.sleep(0.2)
"""


def _fresh_free(heap_kb: int) -> int:
    out = subprocess.run(
        [micropython(), "-X", f"heapsize={heap_kb}K", "-c", "import gc; gc.collect(); print(gc.mem_free())"],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    return int(out.stdout)


def test_main_starts_with_the_free_heap_of_the_board_size(tmp_path, make_board):
    h = make_board(bytecode_image(tmp_path / "b.bin", MAIN), register=False)
    free = h.read_result()["free"]
    assert h.board.heap_kb == 152  # the virtual profile's budget without Wi-Fi (no role: idle)
    fresh = _fresh_free(h.board.heap_kb)
    # a fresh interpreter of the board's size, less main.py itself and what vboot's own top-level
    # code needs to go on running (a few KB): never more, or the allowance would leak to the firmware
    assert fresh - 2048 < free <= fresh, (free, fresh)
    assert not [s for s in h.status if s["event"] == "heapshort"]
