"""Optional parts of the tool (pip extras): a command that needs one says which, instead of an
ImportError, so `pip install loraspot` stays small (matplotlib, gRPC and the MicroPython unix
port only come with loraspot[report], [chirpstack] and [sim])."""

from __future__ import annotations

import importlib
from types import ModuleType

from loraspot.errors import LoraspotError


class MissingExtra(LoraspotError):
    exit_code = 2

    def __init__(self, extra: str, what: str):
        super().__init__(f"{what} needs the optional part loraspot[{extra}]: pip install 'loraspot[{extra}]'")
        self.extra = extra


def need(module: str, extra: str, what: str) -> ModuleType:
    """Import `module`, or raise MissingExtra naming the extra that brings it."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise MissingExtra(extra, what) from None
