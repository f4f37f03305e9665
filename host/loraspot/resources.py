"""Where the firmware sources and board profiles are: in the installed package (wheel) or in the
source tree (editable install)."""

from __future__ import annotations

import importlib.util
import os
import sys
from functools import cache
from pathlib import Path
from types import ModuleType

import platformdirs

_PKG = Path(__file__).resolve().parent


def _find(name: str) -> Path:
    for candidate in (_PKG / "_data" / name, _PKG.parents[1] / name):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"loraspot data folder '{name}' not found next to {_PKG}")


def firmware_dir() -> Path:
    return _find("firmware")


def boards_dir() -> Path:
    return _find("boards")


def cache_dir() -> Path:
    """Where compiled firmware is kept between runs: $LORASPOT_CACHE, else the user's cache folder."""
    env = os.environ.get("LORASPOT_CACHE")
    if env:
        return Path(env)
    return Path(platformdirs.user_cache_dir("loraspot"))


def sim_mp_dir() -> Path:
    return _PKG / "sim" / "mp"


@cache
def firmware_module(relpath: str) -> ModuleType:
    """A plain-Python firmware module (no `micropython` imports) loaded into CPython, so host and
    board share one implementation (board profile schema, time on air)."""
    path = firmware_dir() / relpath
    spec = importlib.util.spec_from_file_location("loraspot_fw_" + path.stem, path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    # its own imports of the firmware's plain modules (`from spot import ConfigError`) resolve to
    # the firmware's files, under their own name, for the time of the load
    saved = sys.path[:]
    sys.path.insert(0, str(firmware_dir()))
    try:
        spec.loader.exec_module(module)
    finally:
        sys.path[:] = saved
    return module
