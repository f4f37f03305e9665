"""Serial ports served by local programs (one JSON file each in a runtime folder), listed by the
transport beside the USB ports the system knows: a program that serves a board on a pty or over
RFC 2217 announces the port as a USB port would appear (its URL, a description, a USB VID/PID, a
serial number) and withdraws it when it stops. The transport does not know what serves it; the
virtual board (loraspot.sim) is one such program."""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path

import platformdirs


def runtime_dir() -> Path:
    override = os.environ.get("LORASPOT_RUNTIME_DIR")
    if override:
        base = Path(override)
    elif os.environ.get("XDG_RUNTIME_DIR") or sys.platform != "linux":
        base = Path(platformdirs.user_runtime_dir("loraspot"))
    else:
        base = Path(tempfile.gettempdir()) / f"loraspot-{os.getuid()}"
    path = base / "ports"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def announce(info: dict) -> Path:
    """Announce a port: {"url", "description", "vid", "pid", "serial_number", "reset_url" (where
    the board can be reset when url cannot, e.g. a pty has no DTR/RTS), "process" (its pid)}."""
    path = runtime_dir() / f"{info['serial_number']}.json"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(info))
    tmp.replace(path)
    return path


def withdraw(path: Path) -> None:
    path.unlink(missing_ok=True)


def announced() -> list[dict]:
    """Announced ports whose program is alive; stale entries are removed."""
    boards = []
    for path in sorted(runtime_dir().glob("*.json")):
        try:
            info = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if not _alive(int(info.get("process", 0))):
            path.unlink(missing_ok=True)
            continue
        boards.append(info)
    return boards
