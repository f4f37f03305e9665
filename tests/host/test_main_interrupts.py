"""firmware/main.py from the attacker's side: a Ctrl-C that lands while main.py handles the one
before it (Ctrl-C is on until the handler's first call turns it off, and an interrupt pending then
fires as that call returns) must still end in a reset on a production board, never at the REPL
prompt that a script's end leads to on an ESP32. Run under MicroPython, whose VM decides where a
pending interrupt can fire; the interrupts are made to fire at those calls."""

from __future__ import annotations

import json
import subprocess

import pytest

from tests.conftest import ROOT, micropython

# main.py run as the esp32 port's pyexec runs it, with a spot.app whose start is interrupted (the
# first Ctrl-C), a micropython module whose kbd_intr(-1) raises KeyboardInterrupt at the calls
# listed (a further Ctrl-C pending as the call returns), a lock file saying "production", and a
# spot.board whose reset_now says it was called
HARNESS = r"""
import sys, io
FIRE = set(%s)
calls = [0]

class MP:
    @staticmethod
    def kbd_intr(c):
        calls[0] += 1
        if c == -1 and calls[0] in FIRE:
            raise KeyboardInterrupt

class App:
    @staticmethod
    def main():
        raise KeyboardInterrupt

class Board:
    @staticmethod
    def reset_now():
        print("RESET")
        raise SystemExit

class Spot:
    app = App
    board = Board

sys.modules["micropython"] = MP
sys.modules["spot"] = Spot
sys.modules["spot.app"] = App
sys.modules["spot.board"] = Board

def fake_open(path, mode="r"):
    if path == "/lock":
        return io.BytesIO(b"P")
    raise OSError(2)

g = {"__name__": "__main__", "open": fake_open}
with open(%r) as f:
    code = compile(f.read(), "main.py", "exec")
try:
    exec(code, g)
    print("ENDED")
except SystemExit:
    pass
except BaseException as e:
    print("ESCAPED", repr(e))
"""


@pytest.mark.parametrize("fire", [[], [2]], ids=["one-ctrl-c", "a-second-in-the-handler"])
def test_interrupts_in_main_pys_handler_end_in_a_reset_on_a_production_board(fire):
    script = HARNESS % (json.dumps(fire), str(ROOT / "firmware" / "main.py"))
    proc = subprocess.run([micropython(), "-c", script], capture_output=True, text=True, timeout=60)
    assert proc.stdout.split() == ["RESET"], (proc.stdout, proc.stderr)
