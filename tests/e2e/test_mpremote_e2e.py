"""The unmodified mpremote against a virtual board in run mode: it interrupts the running main.py
with Ctrl-C, enters the raw REPL (and raw-paste mode), soft-resets, lists, copies files both ways,
runs code and hard-resets the board, as it does with a board on a USB port."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e


def mpremote(port: str, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    p = subprocess.run([sys.executable, "-m", "mpremote", "connect", port, *args], capture_output=True, text=True,
                       timeout=timeout)
    return p


def test_mpremote_ls_cp_exec_and_reset(board, tmp_path):
    pty = board.info["pty"]
    board.wait_status("boot")
    blob = os.urandom(3000)  # binary: every byte value goes through the REPL
    (tmp_path / "blob.bin").write_bytes(blob)

    p = mpremote(pty, "fs", "cp", str(tmp_path / "blob.bin"), ":blob.bin", "+", "fs", "cp", ":blob.bin",
                 str(tmp_path / "back.bin"), "+", "fs", "ls")
    assert p.returncode == 0, p.stdout + p.stderr
    assert (tmp_path / "back.bin").read_bytes() == blob
    listing = {line.split()[-1]: line.split()[0] for line in p.stdout.splitlines() if line.startswith(" ")}
    assert listing["blob.bin"] == "3000" and "board.json" in listing and "main.py" in listing

    # The file is on the board's flash: the littlefs partition of its image holds it.
    from loraspot.flash import image

    fs = image.read_vfs(Path(board.info["flash"]))
    with fs.open("blob.bin", "rb") as f:
        assert f.read() == blob

    p = mpremote(pty, "exec", "import hashlib, binascii\nh = hashlib.sha256(open('blob.bin', 'rb').read())\n"
                 "print(binascii.hexlify(h.digest()).decode())")
    assert p.returncode == 0, p.stdout + p.stderr
    assert p.stdout.split() == [hashlib.sha256(blob).hexdigest()]

    p = mpremote(pty, "exec", "raise ValueError('on the board')")  # the traceback comes back as an error
    assert p.returncode == 1 and "ValueError: on the board" in p.stdout + p.stderr

    p = mpremote(pty, "fs", "mkdir", ":d", "+", "fs", "cp", "-r", str(tmp_path / "blob.bin"), ":d/", "+", "fs", "ls",
                 ":d")
    assert p.returncode == 0 and "3000 blob.bin" in p.stdout, p.stdout + p.stderr

    boots = board.board.boots
    p = mpremote(pty, "reset")
    assert p.returncode == 0, p.stdout + p.stderr
    # mpremote soft-resets the interpreter when it takes the raw REPL, then machine.reset()
    # restarts the chip, which reports a software reset and runs main.py again.
    s = board.wait_status("boot", count=boots + 2)
    assert s["cause"] == "soft"


def test_ctrl_c_interrupts_main_and_the_repl_runs_code(make_board, tmp_path):
    """A main.py that never returns is interrupted by mpremote's Ctrl-C; the REPL then runs code,
    and the board's soft reset (Ctrl-D) brings the raw REPL back without running main.py."""
    from tests.e2e.conftest import bytecode_image

    flash = bytecode_image(tmp_path / "f.bin", b"import time\nn = 0\nwhile True:\n    n += 1\n    time.sleep_ms(5)\n")
    h = make_board(flash)
    h.wait_status("boot")
    p = mpremote(h.info["pty"], "resume", "exec", "print('busy', n > 0)")  # resume: no soft reset, main.py's globals
    assert p.returncode == 0, p.stdout + p.stderr
    assert p.stdout.split() == ["busy", "True"]
    assert h.board.uart.counters["interrupts"] >= 1
    p = mpremote(h.info["pty"], "exec", "print('n' in globals())")  # soft reset first: a fresh interpreter
    assert p.returncode == 0 and p.stdout.split() == ["False"], p.stdout + p.stderr
