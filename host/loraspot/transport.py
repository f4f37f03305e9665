"""Serial ports: opened by URL through pyserial (a device path, rfc2217://, socket://, a pty),
locked for exclusive use, listed with their USB ids and the board profiles that match."""

from __future__ import annotations

import errno
import os
import re
import sys
from dataclasses import dataclass, field

import serial
import serial.rfc2217
import serial.tools.list_ports

from loraspot import boards
from loraspot.errors import PortBusy, PortError, PortNotFound

DEFAULT_BAUD = 115200


def open_port(url: str, baud: int = DEFAULT_BAUD, timeout: float = 0.05) -> serial.SerialBase:
    """Open a port for the console without resetting the board.

    DTR and RTS are left in the state the OS gives them on open (both asserted), which the ESP32
    auto-reset circuit ignores: opening and closing never reset the board.
    """
    try:
        ser = serial.serial_for_url(url, baudrate=baud, timeout=timeout, do_not_open=True)
    except ValueError as e:
        raise PortError(f"{url}: {e}") from None
    except serial.SerialException as e:
        raise PortNotFound(f"{url}: {e}") from None
    if "://" not in url:
        ser.exclusive = True
        ser.write_timeout = 5  # a stuck line raises instead of hanging (RFC 2217 cannot do this)
    try:
        ser.open()
    except serial.SerialException as e:
        raise _classify(url, e) from None
    except (OSError, NotImplementedError) as e:
        raise _classify(url, e) from None
    ser.reset_input_buffer()  # stale output of a line nobody read
    return ser


_COM = re.compile(r"(?i)(?:\\\\\.\\)?(com\d+)")


def normalise_port(url: str, platform: str = sys.platform) -> str:
    """A port name as the user typed it, in the one form used everywhere after: URLs as they are;
    Windows' COMx upper-case (\\\\.\\COMx too); on macOS the call-out device /dev/cu.* for
    /dev/tty.* (opening tty.* waits for a carrier that USB-serial chips never raise)."""
    u = url.strip()
    if "://" in u:
        return u
    m = _COM.fullmatch(u)
    if m and platform == "win32":
        return m.group(1).upper()
    if platform == "darwin" and u.startswith("/dev/tty."):
        return "/dev/cu." + u[len("/dev/tty."):]
    return u


def check_port(url: str, platform: str = sys.platform) -> str:
    """The normalised port, or PortNotFound when a device path or COM port is not there."""
    u = normalise_port(url, platform)
    if not u:
        raise PortNotFound("the port name is empty")
    if "://" in u:
        return u
    if platform == "win32":
        if u not in {p.device.upper() for p in serial.tools.list_ports.comports()}:
            raise PortNotFound(f"{u}: no such serial port (unplugged? `loraspot ports` lists the ones attached)")
        return u
    if not os.path.exists(u):
        raise PortNotFound(f"{u}: no such serial port (unplugged? `loraspot ports` lists the ones attached)")
    return u


def _classify(url: str, e: BaseException, platform: str = sys.platform) -> PortError:
    code = getattr(e, "errno", None)
    text = str(e)
    if code in (errno.ENOENT, errno.ENODEV, errno.ENXIO) or "No such file" in text or "FileNotFoundError" in text:
        return PortNotFound(f"{url}: no such serial port")
    if code in (errno.EAGAIN, errno.EBUSY) or "exclusively lock" in text or "busy" in text.lower():
        return PortBusy(f"{url}: port is busy (another program has it open)")
    if platform == "win32" and ("Access is denied" in text or "PermissionError" in text):
        return PortBusy(f"{url}: port is busy (another program has it open: a terminal, the Arduino IDE?)")
    if code == errno.EACCES or "Permission denied" in text:
        if platform.startswith("linux"):
            return PortError(f"{url}: permission denied; add your user to the 'dialout' group and log in again")
        return PortError(f"{url}: permission denied")
    if url.startswith(("rfc2217://", "socket://")):
        if "refused" in text.lower():
            return PortNotFound(f"{url}: nothing is listening there")
        return PortBusy(f"{url}: the server did not accept the connection (port busy or not a serial server)")
    return PortError(f"{url}: {text}")


@dataclass
class PortInfo:
    url: str
    description: str = ""
    vid: int | None = None
    pid: int | None = None
    serial_number: str | None = None
    boards: list[str] = field(default_factory=list)
    reset_url: str | None = None  # where the board is reset when url cannot (a pty has no DTR/RTS)


def list_ports() -> list[PortInfo]:
    """Serial ports with the board profiles their USB VID/PID match: the system's, then the ones
    local programs announce (loraspot.localports; a virtual board is one)."""
    from loraspot import localports

    ports = []
    listed = serial.tools.list_ports.comports()
    names = {p.device for p in listed}
    for p in listed:
        if sys.platform == "darwin" and p.device.startswith("/dev/tty.") and \
                "/dev/cu." + p.device[len("/dev/tty."):] in names:
            continue  # macOS lists each USB port twice: the call-out device is the one to use
        matches = [b["id"] for b in boards.match_usb(p.vid, p.pid)]
        ports.append(PortInfo(normalise_port(p.device), p.description or "", p.vid, p.pid, p.serial_number, matches))
    for info in localports.announced():
        url = info["url"]
        if not url.startswith(("rfc2217://", "socket://")) and not os.path.exists(url):
            url = info.get("reset_url") or url  # the pty is gone: its RFC 2217 twin serves the same board
        vid, pid = info.get("vid"), info.get("pid")
        ports.append(PortInfo(url, info.get("description", ""), vid, pid, info.get("serial_number"),
                              [b["id"] for b in boards.match_usb(vid, pid)],
                              info.get("reset_url") if info.get("reset_url") != url else None))
    return ports


class QuickRfc2217(serial.rfc2217.Serial):
    """pyserial's RFC 2217 client, except that changing the read timeout stays local: pyserial
    renegotiates every line setting with the server on each change (at least 50 ms), and esptool
    changes the timeout around every command, which made each command take ~200 ms. The timeout
    is never sent over RFC 2217, so nothing is lost."""

    @property
    def timeout(self):  # type: ignore[override]
        return self._timeout

    @timeout.setter
    def timeout(self, value):  # type: ignore[override]
        if value is not None and value < 0:
            raise ValueError(f"Not a valid timeout: {value!r}")
        self._timeout = value


def open_for_flashing(url: str) -> serial.SerialBase:
    """The open port esptool should use: a QuickRfc2217 for rfc2217:// URLs; a device path opened
    as esptool opens one (exclusively; on Windows with RTS and DTR released first, so that opening
    does not reset the chip). The caller closes it."""
    if url.startswith("rfc2217://"):
        port = QuickRfc2217(None, baudrate=DEFAULT_BAUD)
        port.port = url
    else:
        port = serial.serial_for_url(url, exclusive=True, do_not_open=True)
        if sys.platform == "win32":
            port.rts = False
            port.dtr = False
    try:
        port.open()
    except (serial.SerialException, OSError) as e:  # a refused RFC 2217 client sees a broken pipe
        raise _classify(url, e) from None
    return port


def _serial_key(text: str | None) -> str:
    return "".join(c for c in (text or "").upper() if c.isalnum())


def port_info(url: str) -> PortInfo | None:
    """What the listing says about this port (USB ids, serial number), or None."""
    u = normalise_port(url)
    return next((p for p in list_ports() if u in (p.url, p.reset_url)), None)


def find_again(before: PortInfo) -> PortInfo | None:
    """The same board after a reset made it enumerate again: a board on native USB (the
    ESP32-S3's USB-Serial/JTAG, or TinyUSB CDC under MicroPython) may come back under another
    device name and another USB product id. Its USB serial number, which ESP32-S3 boards derive
    from their MAC, stays: that is what finds it."""
    want = _serial_key(before.serial_number)
    if not want:
        return None
    return next((p for p in list_ports() if _serial_key(p.serial_number) == want), None)


def wait_again(before: PortInfo, timeout: float = 10.0) -> PortInfo | None:
    """find_again, while the board takes its time to enumerate (a few seconds after a reset)."""
    import time

    end = time.monotonic() + timeout
    while True:
        found = find_again(before)
        if (found is not None and found.url != before.url) or time.monotonic() > end:
            return found
        time.sleep(0.2)
