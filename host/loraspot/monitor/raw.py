"""`loraspot monitor --raw`: a plain serial terminal. What the board sends goes to standard
output as it is; what is typed goes to the board; Ctrl-] quits. Opening does not reset the board.
A board left at the MicroPython prompt (a Ctrl-C typed here stops the app) is reset on quitting,
so that it runs its app again, unless `keep_repl`."""

from __future__ import annotations

import contextlib
import os
import sys
import threading

import serial

from loraspot import transport

QUIT = 0x1D  # Ctrl-]


PROMPT = b">>> "
RESET = b"\x03\r\nimport machine; machine.reset()\r\n"  # typed at the prompt: a reset, as the RESET button


def run_raw(url: str, baud: int = transport.DEFAULT_BAUD, stdin_fd: int | None = None,
            stdout_fd: int | None = None, keep_repl: bool = False) -> int:
    port = transport.open_port(url, baud, timeout=0.05)
    in_fd = sys.stdin.fileno() if stdin_fd is None else stdin_fd
    out_fd = sys.stdout.fileno() if stdout_fd is None else stdout_fd
    done = threading.Event()
    tail = bytearray()  # the end of what the board sent: is it waiting at the prompt?

    def reader() -> None:
        while not done.is_set():
            try:
                data = port.read(getattr(port, "in_waiting", 0) or 1)
            except (serial.SerialException, OSError, TypeError):
                os.write(2, b"\r\n--- the port is gone ---\r\n")
                done.set()
                return
            if data:
                # noted before it is shown: a quit typed right after the prompt appears must find it
                tail.extend(data)
                del tail[:-64]
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
        if bytes(tail).endswith(PROMPT) and not keep_repl and not done.is_set():
            port.write(RESET)
            port.flush()
            os.write(2, b"\r\n--- the board was at the MicroPython prompt: reset, its app runs again "
                        b"(--keep-repl leaves it there) ---")
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
