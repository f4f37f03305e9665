"""The virtual board's UART: an emulated line (bytes/s = baud/10 each way) between the serial
endpoints a host tool opens (a pty, an RFC 2217 server) and the firmware process.

Board-like details it closes for the firmware: a receive FIFO of 260 bytes (bytes beyond it are
dropped while the firmware does not read), 0x03 turned into KeyboardInterrupt while the firmware
has keyboard interrupts enabled, and "\n" sent as "\r\n" as MicroPython's stdout does on a board.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import select
import socket
import struct
import termios
import threading
import time
import tty
from collections.abc import Callable

import serial.rfc2217

RX_FIFO = 260
CTRL_C = 0x03


class Pacer:
    """Holds data back until a line at `baud` would have carried it."""

    def __init__(self, baud: int):
        self.baud = baud
        self._cursor = 0.0

    def wait(self, nbytes: int) -> None:
        now = time.monotonic()
        self._cursor = max(self._cursor, now) + nbytes * 10.0 / self.baud
        delay = self._cursor - now
        if delay > 0:
            time.sleep(delay)

    def piece(self) -> int:
        """Bytes per step: about 2 ms of line time, so arrival stays smooth."""
        return max(1, self.baud // 5000)


class LineControl:
    """Serial settings and control lines as pyserial's RFC 2217 PortManager expects them."""

    def __init__(self, baud: int, on_lines: Callable[[bool, bool], None], on_baud: Callable[[int], None]):
        self._baud = baud
        self._on_lines = on_lines
        self._on_baud = on_baud
        self.bytesize, self.parity, self.stopbits = 8, "N", 1
        self.xonxoff = self.rtscts = self.break_condition = False
        self._dtr = self._rts = False
        self.cts = self.dsr = self.ri = self.cd = False

    @property
    def baudrate(self) -> int:
        return self._baud

    @baudrate.setter
    def baudrate(self, value: int) -> None:
        if value <= 0:
            raise ValueError("baud rate must be positive")
        self._baud = value
        self._on_baud(value)

    @property
    def dtr(self) -> bool:
        return self._dtr

    @dtr.setter
    def dtr(self, value: bool) -> None:
        self._set_lines(bool(value), self._rts)

    @property
    def rts(self) -> bool:
        return self._rts

    @rts.setter
    def rts(self, value: bool) -> None:
        self._set_lines(self._dtr, bool(value))

    def _set_lines(self, dtr: bool, rts: bool) -> None:
        self._dtr, self._rts = dtr, rts
        self._on_lines(dtr, rts)

    def reset_input_buffer(self) -> None:
        pass

    def reset_output_buffer(self) -> None:
        pass


def _fionread(fd: int) -> int:
    return struct.unpack("i", fcntl.ioctl(fd, termios.FIONREAD, b"\0\0\0\0"))[0]


def catches_sigint(pid: int) -> bool:
    """True while the interpreter has a SIGINT handler, i.e. keyboard interrupts are enabled."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("SigCgt:"):
                    return bool(int(line.split()[1], 16) & (1 << 1))
    except OSError:
        pass
    return False


class Uart:
    """Paced, buffered line between endpoints (host side) and one firmware process at a time."""

    def __init__(self, baud: int = 115200):
        self.rx_pacer = Pacer(baud)
        self.tx_pacer = Pacer(baud)
        self._rx: list[bytes] = []
        self._rx_cond = threading.Condition()
        self._sinks: list[Callable[[bytes], None]] = []
        self._stdin_fd: int | None = None
        self._pid: int | None = None
        self._scripts = False  # the firmware process has reached the board's scripts (Ctrl-C may interrupt)
        self._fifo = RX_FIFO
        self._lock = threading.Lock()
        self.counters = {"rx_bytes": 0, "rx_dropped": 0, "tx_bytes": 0, "interrupts": 0}
        self._closed = False
        self.max_baud = 0  # above it the line carries nothing (a USB-serial chip's limit)
        threading.Thread(target=self._rx_pump, name="uart-rx", daemon=True).start()

    # --- wiring ---------------------------------------------------------------------------------
    def set_baud(self, baud: int) -> None:
        self.rx_pacer.baud = self.tx_pacer.baud = baud

    @property
    def baud(self) -> int:
        return self.tx_pacer.baud

    def add_sink(self, sink: Callable[[bytes], None]) -> None:
        with self._lock:
            self._sinks.append(sink)

    def remove_sink(self, sink: Callable[[bytes], None]) -> None:
        with self._lock:
            if sink in self._sinks:
                self._sinks.remove(sink)

    def attach(self, pid: int | None, stdin_fd: int | None, fifo: int = 0) -> None:
        """Connect the line to a (new) firmware process (or the ROM loader, with a larger `fifo`);
        None while the chip is held in reset."""
        with self._lock:
            self._pid, self._stdin_fd = pid, stdin_fd
            self._fifo = fifo or RX_FIFO
            self._scripts = False

    def scripts_started(self) -> None:
        """The firmware process runs the board's scripts: from now on a 0x03 may interrupt them
        (before, it lands in boot code that stands for the ROM and C start-up: plain data)."""
        with self._lock:
            self._scripts = True

    def close(self) -> None:
        self._closed = True
        with self._rx_cond:
            self._rx_cond.notify_all()

    # --- host -> firmware -------------------------------------------------------------------------
    def from_host(self, data: bytes) -> None:
        if data:
            with self._rx_cond:
                self._rx.append(data)
                self._rx_cond.notify()

    def _rx_pump(self) -> None:
        while not self._closed:
            with self._rx_cond:
                while not self._rx and not self._closed:
                    self._rx_cond.wait()
                if self._closed:
                    return
                data = b"".join(self._rx)
                self._rx.clear()
            step = self.rx_pacer.piece()
            for i in range(0, len(data), step):
                piece = data[i : i + step]
                self.rx_pacer.wait(len(piece))
                self._deliver(piece)

    def _garbled(self) -> bool:
        return bool(self.max_baud) and self.rx_pacer.baud > self.max_baud

    def _deliver(self, piece: bytes) -> None:
        self.counters["rx_bytes"] += len(piece)
        if self._garbled():
            self.counters["rx_dropped"] += len(piece)
            return
        # The lock is held while the fd is used: once attach() has replaced it, the supervisor may
        # close it, and a reused fd number must never receive these bytes.
        with self._lock:
            fd, pid = self._stdin_fd, self._pid
            if fd is None:
                self.counters["rx_dropped"] += len(piece)
                return
            while piece:
                cut = piece.find(bytes([CTRL_C]))
                if cut < 0:
                    self._to_fifo(fd, piece)
                    return
                self._to_fifo(fd, piece[:cut])
                if pid is not None and self._scripts and catches_sigint(pid):
                    self.counters["interrupts"] += 1
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, 2)
                else:
                    self._to_fifo(fd, piece[cut : cut + 1])
                piece = piece[cut + 1 :]

    def _to_fifo(self, fd: int, data: bytes) -> None:
        if not data:
            return
        try:
            room = self._fifo - _fionread(fd)
        except OSError:
            self.counters["rx_dropped"] += len(data)
            return
        take = data[: max(0, room)]
        self.counters["rx_dropped"] += len(data) - len(take)
        if take:
            try:
                os.write(fd, take)  # never blocks: the pipe holds far more than the FIFO's 260 bytes
            except OSError:
                self.counters["rx_dropped"] += len(take)

    # --- firmware -> host -------------------------------------------------------------------------
    def pump_output(self, stdout_fd: int) -> None:
        """Carry a firmware process's output to the endpoints until it exits (run in a thread)."""
        while True:
            try:
                data = os.read(stdout_fd, 512)
            except OSError:
                return
            if not data:
                return
            self.emit(data.replace(b"\n", b"\r\n"))

    def emit(self, data: bytes) -> None:
        """Send bytes from the board (firmware or ROM) over the paced line."""
        step = self.tx_pacer.piece()
        for i in range(0, len(data), step):
            piece = data[i : i + step]
            self.tx_pacer.wait(len(piece))
            self.counters["tx_bytes"] += len(piece)
            if self._garbled():
                continue
            with self._lock:
                sinks = list(self._sinks)
            for sink in sinks:
                sink(piece)


class PtyEndpoint:
    """A pty whose slave path host tools open like a USB serial port (no control lines)."""

    _SPEEDS = {getattr(termios, f"B{b}"): b for b in (9600, 19200, 38400, 57600, 115200, 230400, 460800, 921600)
               if hasattr(termios, f"B{b}")}

    def __init__(self, uart: Uart):
        self.uart = uart
        self.master, self._slave = os.openpty()
        tty.setraw(self._slave)  # no echo or newline translation before a client configures it
        os.set_blocking(self.master, False)
        self.path = os.ttyname(self._slave)
        self._speed = self._set_speed(uart.baud)
        self._stop = False
        self._fd_lock = threading.Lock()
        uart.add_sink(self._write)
        self._thread = threading.Thread(target=self._reader, name="pty", daemon=True)
        self._thread.start()

    def _write(self, data: bytes) -> None:
        with self._fd_lock:
            if self._stop:
                return
            self._write_locked(data)

    def _write_locked(self, data: bytes) -> None:
        try:
            os.write(self.master, data)
        except BlockingIOError:
            pass  # nobody is reading: a UART with nothing attached loses what it sends
        except OSError:
            pass

    def _reader(self) -> None:
        while not self._stop:
            try:
                r, _, _ = select.select([self.master], [], [], 0.2)
            except (OSError, ValueError):
                return
            self._follow_baud()
            if not r:
                continue
            try:
                data = os.read(self.master, 4096)
            except BlockingIOError:
                continue
            except OSError as e:
                if e.errno == errno.EIO:
                    time.sleep(0.05)
                    continue
                return
            self.uart.from_host(data)

    def _set_speed(self, baud: int) -> int:
        attrs = termios.tcgetattr(self._slave)
        code = next((c for c, b in self._SPEEDS.items() if b == baud), attrs[5])
        attrs[4] = attrs[5] = code
        termios.tcsetattr(self._slave, termios.TCSANOW, attrs)
        return code

    def _follow_baud(self) -> None:
        # A client that sets the pty's speed sets the line's; other endpoints may set it too, so
        # only a change of the pty's own setting counts.
        try:
            speed = termios.tcgetattr(self._slave)[5]
        except termios.error:
            return
        if speed != self._speed:
            self._speed = speed
            baud = self._SPEEDS.get(speed)
            if baud:
                self.uart.set_baud(baud)

    def try_lock(self) -> bool:
        """Take the pty's exclusive lock, as pyserial does on open; False if a client holds it."""
        try:
            fcntl.flock(self._slave, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except OSError:
            return False

    def unlock(self) -> None:
        with contextlib.suppress(OSError):
            fcntl.flock(self._slave, fcntl.LOCK_UN)

    def close(self) -> None:
        """Idempotent. The reader thread is stopped before the fds are closed: a closed fd number
        is soon reused by another file, which the thread would otherwise read from."""
        with self._fd_lock:
            if self._stop:
                return
            self._stop = True
        self.uart.remove_sink(self._write)
        if threading.current_thread() is not self._thread:
            self._thread.join()
        for fd in (self.master, self._slave):
            with contextlib.suppress(OSError):
                os.close(fd)


class Rfc2217Endpoint:
    """An RFC 2217 server on loopback: baud rate and DTR/RTS reach the board; one client at a time."""

    def __init__(self, uart: Uart, control: LineControl, port: int = 0, host: str = "127.0.0.1",
                 pty: PtyEndpoint | None = None):
        self.uart = uart
        self.control = control
        self._pty = pty  # the same UART: only one of the two endpoints is in use at a time
        self._srv = socket.create_server((host, port))
        self.port = self._srv.getsockname()[1]
        self.url = f"rfc2217://{host}:{self.port}"
        self._client: socket.socket | None = None
        self._stop = False
        threading.Thread(target=self._accept, name="rfc2217", daemon=True).start()

    def _accept(self) -> None:
        while not self._stop:
            try:
                conn, _ = self._srv.accept()
            except OSError:
                return
            if self._client is not None or (self._pty is not None and not self._pty.try_lock()):
                conn.close()  # busy: like a serial port already opened exclusively
                continue
            self._client = conn
            threading.Thread(target=self._serve, args=(conn,), name="rfc2217-client", daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        send_lock = threading.Lock()

        class _Conn:
            def write(self, data: bytes) -> None:
                with send_lock:
                    conn.sendall(data)

        manager = serial.rfc2217.PortManager(self.control, _Conn())  # pyright: ignore[reportArgumentType] (duck-typed)

        def sink(data: bytes) -> None:
            try:
                with send_lock:
                    conn.sendall(b"".join(manager.escape(data)))
            except OSError:
                pass

        self.uart.add_sink(sink)
        try:
            while not self._stop:
                try:
                    data = conn.recv(4096)
                except OSError:
                    break
                if not data:
                    break
                self.uart.from_host(b"".join(manager.filter(data)))
        finally:
            self.uart.remove_sink(sink)
            with contextlib.suppress(OSError):
                conn.close()
            self._client = None
            if self._pty is not None:
                self._pty.unlock()

    def close(self) -> None:
        self._stop = True
        with contextlib.suppress(OSError):
            self._srv.shutdown(socket.SHUT_RDWR)  # wakes the thread blocked in accept()
        with contextlib.suppress(OSError):
            self._srv.close()
        if self._client is not None:
            with contextlib.suppress(OSError):
                self._client.shutdown(socket.SHUT_RDWR)
