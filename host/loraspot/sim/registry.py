"""Running virtual boards register themselves (one JSON file each in a runtime folder) so that
`loraspot ports` lists them beside USB ports and a restarted board is found by its identity."""

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
    path = base / "boards"
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


def register(info: dict) -> Path:
    path = runtime_dir() / f"{info['id']}.json"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(info))
    tmp.replace(path)
    return path


def unregister(path: Path) -> None:
    path.unlink(missing_ok=True)


def running() -> list[dict]:
    """Registered boards whose process is alive; stale entries are removed."""
    boards = []
    for path in sorted(runtime_dir().glob("*.json")):
        try:
            info = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if not _alive(int(info.get("pid", 0))):
            path.unlink(missing_ok=True)
            continue
        boards.append(info)
    return boards
