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
    """mpremote's run; a hang guard of `timeout` s, which fails with what mpremote had printed
    (unbuffered, so that a process killed for hanging still shows how far it came)."""
    try:
        return subprocess.run([sys.executable, "-m", "mpremote", "connect", port, *args], capture_output=True,
                              text=True, timeout=timeout, env=dict(os.environ, PYTHONUNBUFFERED="1"))
    except subprocess.TimeoutExpired as e:
        said = [x.decode(errors="replace") if isinstance(x, bytes) else (x or "") for x in (e.stdout, e.stderr)]
        raise AssertionError(f"mpremote {' '.join(args)}: no end after {timeout:.0f} s; it printed {said}") from None


def test_mpremote_ls_cp_exec_and_reset(board, tmp_path):
    pty = board.info["pty"]
    board.wait_app()  # mpremote's Ctrl-C then interrupts the app (not lost in main.py's first instants)
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
    # restarts the chip (esp_restart: MicroPython's HARD_RESET), which runs main.py again.
    s = board.wait_status("boot", count=boots + 2)
    assert s["cause"] == "hard"


def test_ctrl_c_interrupts_main_and_the_repl_runs_code(make_board, tmp_path):
    """A main.py that never returns is interrupted by mpremote's Ctrl-C; the REPL then runs code,
    and the board's soft reset (Ctrl-D) brings the raw REPL back without running main.py."""
    from tests.e2e.conftest import bytecode_image

    flash = bytecode_image(tmp_path / "f.bin", b"import time\nn = 0\nwhile True:\n    n += 1\n"
                           b"    if n % 50 == 1:\n        print('RESULT {}')\n    time.sleep_ms(5)\n")
    h = make_board(flash)
    h.read_result()  # main.py runs: a Ctrl-C now interrupts it (one before boot.py is data, as on a board)
    p = mpremote(h.info["pty"], "resume", "exec", "print('busy', n > 0)")  # resume: no soft reset, main.py's globals
    assert p.returncode == 0, p.stdout + p.stderr
    assert p.stdout.split() == ["busy", "True"]
    assert h.board.uart.counters["interrupts"] >= 1
    p = mpremote(h.info["pty"], "exec", "print('n' in globals())")  # soft reset first: a fresh interpreter
    assert p.returncode == 0 and p.stdout.split() == ["False"], p.stdout + p.stderr


def test_mpremote_again_and_again_leaves_the_board_alone(board):
    """mpremote opens and closes the port once per run. Over RFC 2217 its open asserts DTR then
    RTS and its close releases RTS then DTR: through a real board's two-transistor auto-reset
    circuit neither resets the chip, so five runs in a row never reach download mode nor power
    the chip on again; each run's soft reset is what the board reports (SOFT_RESET)."""
    board.wait_app()
    boots = board.board.boots
    for via in ("url", "pty"):
        for i in range(5):
            p = mpremote(board.info[via], "exec", "import machine; print('cause', machine.reset_cause())",
                         "+", "fs", "ls")
            assert p.returncode == 0, f"{via} run {i + 1}: {p.stdout + p.stderr}"
            assert "cause 5" in p.stdout and "main.py" in p.stdout, p.stdout  # machine.SOFT_RESET is 5
    booted = [s for s in board.status if s["event"] == "boot"][boots:]
    assert booted and all(s["mode"] == "run" and s["cause"] == "soft" for s in booted), booted
    assert board.board.boots == boots + 10  # each run's raw-REPL soft reset, nothing else


def test_reset_circuit_over_rfc2217(board):
    """The DTR/RTS levels a client sets over RFC 2217 go through the two-transistor circuit: an
    open and close as mpremote makes them resets nothing, esptool's classic sequence (DTR off +
    RTS on, then DTR on + RTS off, a moment apart) boots into download mode, and an RTS pulse
    with DTR off (esptool's hard reset) boots the app with a power-on reset."""
    import serial

    board.wait_status("boot")
    url = board.info["url"]

    def boots() -> list[dict]:
        return [s for s in board.status if s["event"] == "boot"]

    before = len(boots())
    with serial.serial_for_url(url, 115200, timeout=0.2) as port:  # opens with DTR, then RTS, asserted
        port.rts = False  # mpremote's close: RTS released first
        port.dtr = False
    with serial.serial_for_url(url, 115200, timeout=0.2) as port:
        port.dtr = False  # EN low: held in reset
        port.rts = True
        port.dtr = True  # both asserted for an instant
        port.rts = False  # EN rises with IO0 low
        s = board.wait_status("boot", count=before + 1)
        assert s["mode"] == "download", boots()  # the first boot since: the open and close reset nothing
        port.dtr = False
        port.rts = True  # hard reset: EN pulsed with IO0 high
        port.rts = False
        s = board.wait_status("boot", count=before + 2)
        assert (s["mode"], s["cause"]) == ("run", "power_on"), boots()
    assert len(boots()) == before + 2, boots()  # the download and the app: no other reset
