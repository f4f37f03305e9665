"""Typed errors of the library. Only the CLI turns them into messages and exit codes."""

from __future__ import annotations


class LoraspotError(Exception):
    """Base of every error the library raises on purpose."""

    exit_code = 1


class BoardProfileError(LoraspotError):
    exit_code = 2


class InventoryError(LoraspotError):
    exit_code = 6


class ImageError(LoraspotError):
    exit_code = 5


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

    exit_code = 4


class DeviceTimeout(LoraspotError):
    exit_code = 4


# what the device answers to a value or argument that is not acceptable: the user's input (exit 2)
INPUT_CODES = ("invalid", "unknown_key", "bad_args", "range", "too_long", "too_big", "not_found", "absent")


class DeviceError(LoraspotError):
    """The device answered a request with an error response: exit 2 when it refused the user's
    input (a config value out of range, an unknown key), 4 otherwise (locked, busy, a fault)."""

    def __init__(self, code: str, message: str, op: str = ""):
        super().__init__(f"{op + ': ' if op else ''}{message} ({code})")
        self.code = code
        self.message = message
        self.op = op
        self.exit_code = 2 if code in INPUT_CODES else 4


class DeviceReset(LoraspotError):
    """The device restarted while a request was pending; its answer will never come."""

    exit_code = 4


class TransferError(LoraspotError):
    """A file transfer did not complete; the device keeps the previous file."""
