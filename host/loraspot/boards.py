"""Board profiles (boards/*.json), validated by the same code the firmware runs."""

from __future__ import annotations

import json
from pathlib import Path
from types import ModuleType

from loraspot import resources
from loraspot.errors import BoardProfileError


def _profile_module() -> ModuleType:
    return resources.firmware_module("spot/profile.py")


def validate(profile: object, source: str = "") -> dict:
    mod = _profile_module()
    try:
        return mod.validate(profile)
    except mod.ProfileError as e:
        raise BoardProfileError(f"{source}: {e}" if source else str(e)) from None


def load_file(path: Path) -> dict:
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError) as e:
        raise BoardProfileError(f"{path}: cannot read board profile: {e}") from None
    profile = validate(data, str(path))
    if profile["id"] != Path(path).stem:
        raise BoardProfileError(f"{path}: board profile field 'id': must match the file name")
    return profile


def all_boards(folder: Path | None = None) -> dict[str, dict]:
    folder = folder or resources.boards_dir()
    return {p.stem: load_file(p) for p in sorted(folder.glob("*.json"))}


def get(board_id: str) -> dict:
    path = resources.boards_dir() / f"{board_id}.json"
    if not path.is_file():
        known = ", ".join(sorted(all_boards()))
        raise BoardProfileError(f"unknown board '{board_id}' (known: {known})")
    return load_file(path)


def match_usb(vid: int | None, pid: int | None) -> list[dict]:
    """Profiles whose USB-serial chip has this VID/PID: candidates, since chips are shared."""
    if vid is None or pid is None:
        return []
    return [
        b for b in all_boards().values() if any(int(u["vid"], 16) == vid and int(u["pid"], 16) == pid for u in b["usb"])
    ]
