"""The virtual board's supervisor reads the interpreter's side channel (sim/mp/_vside.py): a line
cut short, as when the interpreter is killed or runs out of heap in the middle of a message, is
reported and skipped; the supervisor goes on (it used to die, and the board with it)."""

from __future__ import annotations

import os

from loraspot.sim.vboard import BoardOptions, VirtualBoard


def test_a_line_cut_short_is_reported_and_the_messages_after_it_still_act(tmp_path):
    seen: list[dict] = []
    vb = VirtualBoard(BoardOptions(flash=tmp_path / "f.bin"), seen.append)
    r, w = os.pipe()
    os.write(w, b"scripts\nwdt rtc reset soft\nrtc 0a0b\nheapshort x\nreset soft\n")
    os.close(w)
    messages = vb._read_side(r)
    assert messages == [(b"reset", "soft")]  # why the interpreter stopped, still known
    assert vb._rtc == bytes.fromhex("0a0b")
    assert [s["line"] for s in seen if s["event"] == "side_garbled"] == ["wdt rtc reset soft\n", "heapshort x\n"]
