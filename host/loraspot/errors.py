"""Typed errors of the library. Only the CLI turns them into messages and exit codes."""

from __future__ import annotations


class LoraspotError(Exception):
    """Base of every error the library raises on purpose."""

    exit_code = 1


class BoardProfileError(LoraspotError):
    exit_code = 2


class ImageError(LoraspotError):
    pass


class PortError(LoraspotError):
    """A serial port could not be used."""

    exit_code = 3


class PortNotFound(PortError):
    pass


class PortBusy(PortError):
    pass


class PortGone(PortError):
    """The port disappeared while in use (board unplugged, virtual board stopped)."""


class ProtocolError(LoraspotError):
    """The device said something that does not follow the console protocol."""


class DeviceTimeout(LoraspotError):
    exit_code = 4


class DeviceError(LoraspotError):
    """The device answered a request with an error response."""

    def __init__(self, code: str, message: str, op: str = ""):
        super().__init__(f"{op + ': ' if op else ''}{message} ({code})")
        self.code = code
        self.message = message
        self.op = op


class DeviceReset(LoraspotError):
    """The device restarted while a request was pending; its answer will never come."""

    exit_code = 4


class TransferError(LoraspotError):
    """A file transfer did not complete; the device keeps the previous file."""
