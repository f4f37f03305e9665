"""The ESP-IDF partition table as a board holds it at 0x8000: its rows, their MD5 row, and the
MicroPython layout a board profile describes. Shared by the flash images (image.py) and the
MicroPython images (espimage.py), which both need it and nothing of each other."""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass

from loraspot.errors import ImageError

TABLE_OFFSET = 0x8000
TABLE_MAX = 0xC00
_ENTRY = struct.Struct("<2sBBII16sI")
_MAGIC = b"\xaa\x50"
_MD5_MAGIC = b"\xeb\xeb" + b"\xff" * 14

TYPE_APP, TYPE_DATA = 0x00, 0x01
SUB_FACTORY, SUB_NVS, SUB_PHY, SUB_FAT = 0x00, 0x02, 0x01, 0x81
SUB_OTA_DATA, SUB_OTA_0 = 0x00, 0x10  # data "ota"; app "ota_0" (ota_1 is 0x11: ESP-IDF gen_esp32part.py)
SUB_ROMFS = 0x8F  # MicroPython's esp32 port finds the partition by its label "romfs"


@dataclass(frozen=True)
class Partition:
    label: str
    type: int
    subtype: int
    offset: int
    size: int


def partitions_for(profile: dict) -> list[Partition]:
    """The MicroPython partition layout described by a board profile."""
    p = profile["flash"]["partitions"]
    parts = [Partition("nvs", TYPE_DATA, SUB_NVS, *p["nvs"])]
    nvs_end = p["nvs"][0] + p["nvs"][1]
    if nvs_end <= 0xF000 and p["app"][0] >= 0x10000:
        parts.append(Partition("phy_init", TYPE_DATA, SUB_PHY, 0xF000, 0x1000))
    if p.get("ota_1"):
        # two app slots and the data partition that says which boots (MicroPython's
        # partitions-4MiB-ota.csv, the ESP32_GENERIC-OTA image): the image goes to ota_0
        parts.append(Partition("otadata", TYPE_DATA, SUB_OTA_DATA, *p["otadata"]))
        parts.append(Partition("ota_0", TYPE_APP, SUB_OTA_0, *p["app"]))
        parts.append(Partition("ota_1", TYPE_APP, SUB_OTA_0 + 1, *p["ota_1"]))
    else:
        parts.append(Partition("factory", TYPE_APP, SUB_FACTORY, *p["app"]))
    if p.get("romfs"):
        parts.append(Partition("romfs", TYPE_DATA, SUB_ROMFS, *p["romfs"]))
    parts.append(Partition("vfs", TYPE_DATA, SUB_FAT, *p["vfs"]))
    return sorted(parts, key=lambda pt: pt.offset)


def encode_partition_table(parts: list[Partition]) -> bytes:
    rows = b"".join(
        _ENTRY.pack(_MAGIC, pt.type, pt.subtype, pt.offset, pt.size, pt.label.encode()[:16], 0) for pt in parts
    )
    rows += _MD5_MAGIC + hashlib.md5(rows).digest()
    return rows + b"\xff" * (TABLE_MAX - len(rows))


def decode_partition_table(data: bytes) -> list[Partition]:
    """Parse a partition table; raise ImageError if it is absent or its MD5 row does not match."""
    parts = []
    for i in range(0, min(len(data), TABLE_MAX), _ENTRY.size):
        row = data[i : i + _ENTRY.size]
        if len(row) < _ENTRY.size:
            raise ImageError("the partition table is cut short")
        if row[:2] == _MAGIC:
            _, ptype, sub, off, size, label, _ = _ENTRY.unpack(row)
            parts.append(Partition(label.rstrip(b"\0").decode(errors="replace"), ptype, sub, off, size))
        elif row[:16] == _MD5_MAGIC:
            if hashlib.md5(data[:i]).digest() != row[16:32]:
                raise ImageError("partition table MD5 mismatch")
            break
        else:
            break
    if not parts:
        raise ImageError(f"no partition table at 0x{TABLE_OFFSET:x}")
    return parts


def vfs_of(parts: list[Partition]) -> Partition:
    """The filesystem partition of a table, found by label as MicroPython does."""
    for pt in parts:
        if pt.type == TYPE_DATA and pt.label in ("vfs", "ffat"):
            return pt
    raise ImageError("the partition table has no 'vfs' partition")


def ota_slots_of(parts: list[Partition]) -> tuple[Partition, list[Partition]] | None:
    """(otadata, [ota_0, ota_1, ...]) of a table with app slots, or None."""
    data = next((pt for pt in parts if pt.type == TYPE_DATA and pt.subtype == SUB_OTA_DATA), None)
    slots = sorted((pt for pt in parts if pt.type == TYPE_APP and SUB_OTA_0 <= pt.subtype < SUB_OTA_0 + 16),
                   key=lambda pt: pt.subtype)
    return (data, slots) if data is not None and slots else None


def romfs_of(parts: list[Partition]) -> Partition | None:
    """The ROMFS partition (label "romfs") of a table, or None."""
    return next((pt for pt in parts if pt.type == TYPE_DATA and pt.label == "romfs"), None)
