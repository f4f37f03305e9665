"""Where the firmware sources and board profiles are: in the installed package (wheel) or in the
source tree (editable install)."""

from __future__ import annotations

from pathlib import Path

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


def sim_mp_dir() -> Path:
    return _PKG / "sim" / "mp"
