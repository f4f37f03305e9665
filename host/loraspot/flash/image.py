"""Flash images as a board holds them: ESP-IDF partition table at 0x8000 and a littlefs v2
filesystem in the `vfs` partition with the geometry MicroPython's esp32 port mounts
(4096-byte blocks, read/prog size 32, lookahead 32, on-disk version 2.0)."""

from __future__ import annotations

import hashlib
import json
import struct
from dataclasses import dataclass
from pathlib import Path

from littlefs import LittleFS

from loraspot import resources
from loraspot.errors import ImageError

TABLE_OFFSET = 0x8000
TABLE_MAX = 0xC00
BLOCK = 4096
_ENTRY = struct.Struct("<2sBBII16sI")
_MAGIC = b"\xaa\x50"
_MD5_MAGIC = b"\xeb\xeb" + b"\xff" * 14

TYPE_APP, TYPE_DATA = 0x00, 0x01
SUB_FACTORY, SUB_NVS, SUB_PHY, SUB_FAT = 0x00, 0x02, 0x01, 0x81
LFS_GEOMETRY = dict(block_size=BLOCK, read_size=32, prog_size=32, lookahead_size=32)
LFS_DISK_VERSION = 0x00020000


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
    parts.append(Partition("factory", TYPE_APP, SUB_FACTORY, *p["app"]))
    parts.append(Partition("vfs", TYPE_DATA, SUB_FAT, *p["vfs"]))
    return parts


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


def find_vfs(image_path: Path) -> Partition:
    """The filesystem partition of a flash image, found by label as MicroPython does."""
    with open(image_path, "rb") as f:
        f.seek(TABLE_OFFSET)
        parts = decode_partition_table(f.read(TABLE_MAX))
    for pt in parts:
        if pt.type == TYPE_DATA and pt.label in ("vfs", "ffat"):
            return pt
    raise ImageError("the partition table has no 'vfs' partition")


def build_littlefs(files: dict[str, bytes], size: int) -> bytes:
    """A littlefs image of `size` bytes holding files (paths relative to '/')."""
    fs = LittleFS(block_count=size // BLOCK, disk_version=LFS_DISK_VERSION, **LFS_GEOMETRY)
    for path in sorted(files):
        parts = path.strip("/").split("/")
        for depth in range(1, len(parts)):
            d = "/".join(parts[:depth])
            try:
                fs.mkdir(d)
            except FileExistsError:
                pass
        with fs.open("/".join(parts), "wb") as f:
            f.write(files[path])
    return bytes(fs.context.buffer)


def open_littlefs(data: bytes) -> LittleFS:
    fs = LittleFS(block_count=len(data) // BLOCK, mount=False, **LFS_GEOMETRY)
    fs.context.buffer[:] = data
    fs.mount()
    return fs


def read_vfs(image_path: Path) -> LittleFS:
    """Mount (a copy of) the filesystem partition of a flash image, for inspection."""
    pt = find_vfs(image_path)
    with open(image_path, "rb") as f:
        f.seek(pt.offset)
        return open_littlefs(f.read(pt.size))


def app_files(profile: dict, config: dict | None = None, mpy_dir: Path | None = None) -> dict[str, bytes]:
    """The application as it lands on the board: boot.py, main.py, lib/spot/..., board.json.
    With mpy_dir (a tree made by flash.mpy.compiled_firmware) the library is shipped as bytecode."""
    fw = resources.firmware_dir()
    files = {"boot.py": (fw / "boot.py").read_bytes(), "main.py": (fw / "main.py").read_bytes()}
    lib, pattern = (Path(mpy_dir), "*.mpy") if mpy_dir else (fw, "*.py")
    for src in sorted((lib / "spot").rglob(pattern)):
        files["lib/" + src.relative_to(lib).as_posix()] = src.read_bytes()
    files["board.json"] = json.dumps(profile, indent=1).encode()
    if config:
        files["config.json"] = json.dumps(config).encode()
    return files


def create_flash_image(path: Path, profile: dict, files: dict[str, bytes]) -> None:
    """Write a whole flash image: erased (0xFF) flash, partition table, littlefs vfs."""
    size = profile["flash"]["size"]
    parts = partitions_for(profile)
    vfs = next(pt for pt in parts if pt.label == "vfs")
    image = bytearray(b"\xff" * size)
    image[TABLE_OFFSET : TABLE_OFFSET + TABLE_MAX] = encode_partition_table(parts)
    image[vfs.offset : vfs.offset + vfs.size] = build_littlefs(files, vfs.size)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(image)
    tmp.replace(path)
