"""`loraspot monitor --raw`: a plain serial terminal. What the board sends goes to standard
output as it is; what is typed goes to the board; Ctrl-] quits. Opening does not reset the board."""

from __future__ import annotations

import contextlib
import os
import sys
import threading

import serial

from loraspot import transport

QUIT = 0x1D  # Ctrl-]


def run_raw(url: str, baud: int = transport.DEFAULT_BAUD, stdin_fd: int | None = None,
            stdout_fd: int | None = None) -> int:
    port = transport.open_port(url, baud, timeout=0.05)
    in_fd = sys.stdin.fileno() if stdin_fd is None else stdin_fd
    out_fd = sys.stdout.fileno() if stdout_fd is None else stdout_fd
    done = threading.Event()

    def reader() -> None:
        while not done.is_set():
            try:
                data = port.read(port.in_waiting or 1)
            except (serial.SerialException, OSError, TypeError):
                os.write(2, b"\r\n--- the port is gone ---\r\n")
                done.set()
                return
            if data:
                os.write(out_fd, data)

    t = threading.Thread(target=reader, daemon=True)
    t.start()
    saved = None
    if os.isatty(in_fd):
        import termios
        import tty

        saved = termios.tcgetattr(in_fd)
        tty.setraw(in_fd)
    os.write(2, f"--- {url} at {baud} baud; Ctrl-] quits ---\r\n".encode())
    try:
        import select

        while not done.is_set():
            ready, _, _ = select.select([in_fd], [], [], 0.1)
            if not ready:
                continue
            data = os.read(in_fd, 256)
            if not data:
                break
            cut = data.find(bytes([QUIT]))
            if cut >= 0:
                if cut:
                    port.write(data[:cut])
                break
            port.write(data)
    finally:
        done.set()
        if saved is not None:
            import termios

            termios.tcsetattr(in_fd, termios.TCSADRAIN, saved)
        t.join(1)
        with contextlib.suppress(Exception):
            port.close()
        os.write(2, b"\r\n--- bye ---\r\n")
    return 0
