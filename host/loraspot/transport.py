"""Serial ports: opened by URL through pyserial (a device path, rfc2217://, socket://, a pty),
locked for exclusive use, listed with their USB ids and the board profiles that match."""

from __future__ import annotations

import errno
import os
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


def _classify(url: str, e: BaseException) -> PortError:
    code = getattr(e, "errno", None)
    text = str(e)
    if code in (errno.ENOENT, errno.ENODEV, errno.ENXIO) or "No such file" in text:
        return PortNotFound(f"{url}: no such serial port")
    if code in (errno.EAGAIN, errno.EBUSY) or "exclusively lock" in text or "busy" in text.lower():
        return PortBusy(f"{url}: port is busy (another program has it open)")
    if code == errno.EACCES or "Permission denied" in text:
        group = "dialout" if sys.platform.startswith("linux") else "uucp"
        return PortError(f"{url}: permission denied; add your user to the '{group}' group and log in again")
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
    virtual: bool = False
    device_id: str | None = None
    alt_url: str | None = None


def list_ports() -> list[PortInfo]:
    """USB serial ports with the board profiles their VID/PID match, then running virtual boards."""
    from loraspot.sim import registry

    ports = []
    for p in serial.tools.list_ports.comports():
        matches = [b["id"] for b in boards.match_usb(p.vid, p.pid)]
        ports.append(PortInfo(p.device, p.description or "", p.vid, p.pid, p.serial_number, matches))
    for info in registry.running():
        pty = info.get("pty")
        url = pty if pty and os.path.exists(pty) else info["url"]
        ports.append(PortInfo(url, "loraspot virtual board", boards=[info["board"]], virtual=True,
                              device_id=info["id"], alt_url=info["url"] if url != info["url"] else None))
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


def open_for_flashing(url: str) -> serial.SerialBase | str:
    """What esptool should open: an open QuickRfc2217 for rfc2217:// URLs, the URL otherwise
    (esptool opens device paths itself, exclusively)."""
    if not url.startswith("rfc2217://"):
        return url
    port = QuickRfc2217(None, baudrate=DEFAULT_BAUD)
    port.port = url
    try:
        port.open()
    except (serial.SerialException, OSError) as e:  # a refused RFC 2217 client sees a broken pipe
        raise _classify(url, e) from None
    return port
