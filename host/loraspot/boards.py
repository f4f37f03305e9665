"""Board profiles (boards/*.json), validated by the same code the firmware runs."""

from __future__ import annotations

import json
from pathlib import Path
from types import ModuleType

from loraspot import resources
from loraspot.errors import BoardProfileError


def _profile_module() -> ModuleType:
    return resources.firmware_module("spot/profile.py")


# The app slots of an image built with them (ESP32_GENERIC-OTA): checked here, on the host only.
# The firmware finds its slots through esp32.Partition, so the copy of the profile a board holds
# leaves them out (device_profile) and the firmware's schema, which runs at every boot in a heap
# with no room to spare, does not grow for them.
SLOT_FIELDS = ("otadata", "ota_1")


def validate(profile: object, source: str = "") -> dict:
    mod = _profile_module()

    def fail(msg: str) -> BoardProfileError:
        return BoardProfileError(f"{source}: {msg}" if source else msg)

    slots = {}
    flash = profile.get("flash") if isinstance(profile, dict) else None
    parts = flash.get("partitions") if isinstance(flash, dict) else None
    if isinstance(profile, dict) and isinstance(flash, dict) and isinstance(parts, dict) \
            and any(k in parts for k in SLOT_FIELDS):
        if not all(k in parts for k in SLOT_FIELDS):
            raise fail("board profile field 'flash.partitions': otadata and ota_1 go together "
                       "(an image with two app slots)")
        slots = {k: parts[k] for k in SLOT_FIELDS}
        profile = dict(profile, flash=dict(flash, partitions={k: v for k, v in parts.items() if k not in SLOT_FIELDS}))
    try:
        checked = mod.validate(profile)
    except mod.ProfileError as e:
        raise fail(str(e)) from None
    if slots:
        spans = [(v[0], v[0] + v[1], k) for k, v in checked["flash"]["partitions"].items()]
        for name, span in slots.items():
            if not (isinstance(span, list) and len(span) == 2 and all(type(x) is int for x in span)):
                raise fail(f"board profile field 'flash.partitions.{name}': expected [offset, size]")
            off, size = span
            if off % 4096 or size % 4096 or size <= 0 or off + size > checked["flash"]["size"]:
                raise fail(f"board profile field 'flash.partitions.{name}': offset and size must be non-zero "
                           "multiples of 4096 within the flash")
            for a, b, other in spans:
                if off < b and a < off + size:
                    raise fail(f"board profile field 'flash.partitions.{name}': overlaps {other}")
            spans.append((off, off + size, name))
        checked["flash"]["partitions"].update(slots)
    return checked


def device_profile(profile: dict) -> dict:
    """The profile as a board holds it (board.json): without the app slots (SLOT_FIELDS)."""
    parts = profile["flash"]["partitions"]
    if not any(k in parts for k in SLOT_FIELDS):
        return profile
    return dict(profile, flash=dict(profile["flash"], partitions={k: v for k, v in parts.items()
                                                                  if k not in SLOT_FIELDS}))


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
