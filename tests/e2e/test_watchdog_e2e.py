"""The virtual board's task watchdog behaves as an ESP32's: a firmware that stops feeding it is
reset, and the next boot reports the watchdog as its reset cause."""

from __future__ import annotations

import pytest

from tests.e2e.conftest import bytecode_image

pytestmark = pytest.mark.e2e

MAIN = b"""
import json, time
import machine
from spot.board import Board
board = Board.load()
cause = board.reset_cause()
dog = board.watchdog(3000)
if cause != "watchdog":
    for _ in range(10):  # fed for a while: no reset
        dog.feed()
        time.sleep_ms(50)
    while True:  # then stuck, as a main loop that hangs
        pass
while True:
    dog.feed()
    print("RESULT " + json.dumps({"cause": cause}))
    time.sleep(0.2)
"""


def test_a_stuck_loop_is_reset_by_the_watchdog(tmp_path, make_board):
    h = make_board(bytecode_image(tmp_path / "wdt.bin", MAIN), register=False, speed=2)
    assert h.read_result(timeout=30) == {"cause": "watchdog"}
    dogs = [s for s in h.status if s["event"] == "watchdog"]
    boots = [s for s in h.status if s["event"] == "boot"]
    assert len(dogs) == 1 and dogs[0]["timeout_ms"] == 3000
    assert [b["cause"] for b in boots[:2]] == ["power_on", "watchdog"]
