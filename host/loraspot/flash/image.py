"""Flash images as a board holds them: ESP-IDF partition table at 0x8000 and a littlefs v2
filesystem in the `vfs` partition with the geometry MicroPython's esp32 port mounts
(4096-byte blocks, read/prog size 32, lookahead 32, on-disk version 2.0). When the board's
MicroPython image is built with ROMFS (a `romfs` partition in the profile), the library (`lib/`)
goes into a ROMFS image in that partition instead: MicroPython runs .mpy bytecode from a ROMFS in
place (memory-mapped flash), so the code takes no heap for its bytecode and constants."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from littlefs import LittleFS, UserContext

from loraspot import boards, resources
from loraspot.errors import ImageError
from loraspot.flash import espimage
from loraspot.flash.partitions import (  # noqa: F401 (image.X of these is used across the project)
    SUB_FAT,
    SUB_NVS,
    SUB_PHY,
    SUB_ROMFS,
    TABLE_MAX,
    TABLE_OFFSET,
    TYPE_APP,
    TYPE_DATA,
    Partition,
    decode_partition_table,
    encode_partition_table,
    partitions_for,
    romfs_of,
    vfs_of,
)

BLOCK = 4096
ROMFS_MAGIC = b"\xd2\xcd\x31"  # MicroPython ROMFS header (followed by the length as a varuint)
ROMFS_DIR = "lib/"  # the part of the application that goes into the ROMFS (as /rom/lib)
LFS_DISK_VERSION = 0x00020000


def read_partitions(image_path: Path) -> list[Partition]:
    with open(image_path, "rb") as f:
        f.seek(TABLE_OFFSET)
        return decode_partition_table(f.read(TABLE_MAX))


def find_vfs(image_path: Path) -> Partition:
    return vfs_of(read_partitions(image_path))


def find_romfs(image_path: Path) -> Partition | None:
    return romfs_of(read_partitions(image_path))


def build_romfs(files: dict[str, bytes], size: int) -> bytes:
    """A MicroPython ROMFS image holding files (paths relative to the mount point), written by
    mpremote's writer (the format `mpremote romfs build` makes); ImageError if it exceeds size."""
    from mpremote.romfs import VfsRomWriter

    tree: dict = {}
    for path, data in files.items():
        *dirs, name = path.strip("/").split("/")
        node = tree
        for d in dirs:
            node = node.setdefault(d, {})
        node[name] = data

    def add(writer: VfsRomWriter, node: dict) -> None:
        for name in sorted(node):
            if isinstance(node[name], dict):
                writer.opendir(name)
                add(writer, node[name])
                writer.closedir()
            else:
                writer.mkfile(name, node[name])

    writer = VfsRomWriter()
    add(writer, tree)
    data = writer.finalise()
    if len(data) > size:
        raise ImageError(f"the ROMFS image needs {len(data)} bytes, the romfs partition has {size}")
    return data


def romfs_length(head: bytes) -> int:
    """Bytes a ROMFS image takes (header included), from its first bytes; 0 if there is none."""
    if head[:3] != ROMFS_MAGIC:
        return 0
    n, i = 0, 3
    while i < len(head):
        b = head[i]
        n = (n << 7) | (b & 0x7F)
        i += 1
        if not b & 0x80:
            return i + n
    return 0


class _TrackingContext(UserContext):
    """littlefs-python's RAM block device, noting which blocks littlefs programmed."""

    def __init__(self, size: int):
        super().__init__(size)
        self.used: set[int] = set()

    def prog(self, cfg, block: int, off: int, data: bytes) -> int:
        self.used.add(block)
        return super().prog(cfg, block, off, data)


def build_littlefs(files: dict[str, bytes], size: int, used: set[int] | None = None) -> bytes:
    """A littlefs image of `size` bytes holding files (paths relative to '/'). With `used`, the
    numbers of the blocks littlefs wrote are added to it: the others hold nothing it refers to,
    so a flasher may leave them as they are on the board."""
    ctx = _TrackingContext(size)
    fs = LittleFS(ctx, block_count=size // BLOCK, disk_version=LFS_DISK_VERSION, block_size=BLOCK, read_size=32,
                  prog_size=32, lookahead_size=32)  # MicroPython's littlefs geometry
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
    if used is not None:
        used |= ctx.used
    return bytes(ctx.buffer)


def block_runs(blocks: set[int], gap: int = 2) -> list[tuple[int, int]]:
    """Sorted block numbers as (first, count) runs; runs closer than `gap` blocks are merged."""
    runs: list[list[int]] = []
    for b in sorted(blocks):
        if runs and b - (runs[-1][0] + runs[-1][1]) <= gap:
            runs[-1][1] = b - runs[-1][0] + 1
        else:
            runs.append([b, 1])
    return [(a, n) for a, n in runs]


def open_littlefs(data: bytes) -> LittleFS:
    fs = LittleFS(block_count=len(data) // BLOCK, mount=False, block_size=BLOCK, read_size=32, prog_size=32,
                  lookahead_size=32)
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
    With mpy_dir (a tree made by flash.mpy.compiled_firmware) the library is shipped as bytecode,
    each module naming as its source the path the board imports it from (flash.mpy.with_source_name:
    /rom/lib/... in a ROMFS, /lib/... on littlefs)."""
    from loraspot.flash.mpy import with_source_name

    fw = resources.firmware_dir()
    files = {"boot.py": (fw / "boot.py").read_bytes(), "main.py": (fw / "main.py").read_bytes()}
    lib, pattern = (Path(mpy_dir), "*.mpy") if mpy_dir else (fw, "*.py")
    at = "/rom/" if romfs_of(partitions_for(profile)) is not None else "/"

    def shipped(name: str, src: Path) -> bytes:
        return with_source_name(src.read_bytes(), at + name) if mpy_dir else src.read_bytes()

    for src in sorted((lib / "spot").rglob(pattern)):
        name = "lib/" + src.relative_to(lib).as_posix()
        files[name] = shipped(name, src)
    for src in sorted(lib.glob(pattern)):  # modules beside the package (otaboot: the update guard)
        if src.name not in ("boot.py", "main.py"):
            files["lib/" + src.name] = shipped("lib/" + src.name, src)
    files["board.json"] = json.dumps(boards.device_profile(profile), indent=1).encode()
    files[MANIFEST] = manifest_bytes(files)
    if config:
        files["config.json"] = json.dumps(config).encode()
    return files


MANIFEST = "app.json"  # bundle path -> SHA-256 of every app file: what `loraspot deploy` compares
NOT_DEPLOYED = {"config.json", MANIFEST}  # the board's own settings are never overwritten


def manifest_of(files: dict[str, bytes]) -> dict[str, str]:
    return {k: hashlib.sha256(v).hexdigest() for k, v in sorted(files.items()) if k not in NOT_DEPLOYED}


def manifest_bytes(files: dict[str, bytes]) -> bytes:
    """The manifest, with the MicroPython release and .mpy format the bundle is built and tested for."""
    from loraspot.flash.firmware import target

    return json.dumps({"files": manifest_of(files), "build": target()}, sort_keys=True,
                      separators=(",", ":")).encode()


def create_flash_image(path: Path, profile: dict, files: dict[str, bytes], firmware: bytes | None = None) -> None:
    """Write a whole flash image: erased (0xFF) flash, the MicroPython image (by default the
    virtual board's placeholder for the profile's chip) with its partition table, littlefs vfs
    (and the library as a ROMFS when the profile has a romfs partition)."""
    size = profile["flash"]["size"]
    parts = partitions_for(profile)
    vfs = next(pt for pt in parts if pt.label == "vfs")
    image = bytearray(b"\xff" * size)
    fw = espimage.placeholder(profile) if firmware is None else firmware
    at = profile["image"]["offset"]
    image[at : at + len(fw)] = fw
    image[TABLE_OFFSET : TABLE_OFFSET + TABLE_MAX] = encode_partition_table(parts)
    romfs = next((pt for pt in parts if pt.label == "romfs"), None)
    if romfs is not None:
        rom = {k: v for k, v in files.items() if k.startswith(ROMFS_DIR)}
        files = {k: v for k, v in files.items() if not k.startswith(ROMFS_DIR)}
        image[romfs.offset : romfs.offset + romfs.size] = build_romfs(rom, romfs.size).ljust(romfs.size, b"\xff")
    image[vfs.offset : vfs.offset + vfs.size] = build_littlefs(files, vfs.size)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(image)
    tmp.replace(path)


# The files of the app's filesystem that hold secrets or depend on them (firmware/spot/fsnames.py)
SECRET_FILES = ("secrets.json", "secrets.json.bak", "secrets.json.tmp", "lock", "lock.part")


def _walk(fs: LittleFS, top: str = "/") -> dict[str, bytes]:
    out: dict[str, bytes] = {}
    for root, _dirs, names in fs.walk(top):
        for name in names:
            path = f"{root.rstrip('/')}/{name}".lstrip("/")
            with fs.open(path, "rb") as f:
                out[path] = f.read()
    return out


def without_secrets(data: bytes) -> tuple[bytes, list[str]]:
    """A whole-flash image with its secrets left out: every NVS partition erased (where a real
    board keeps its keys; ESP-IDF starts an erased NVS afresh) and the filesystem rebuilt from its
    files minus the secrets store and the lock (rebuilt, not edited: a deleted littlefs file keeps
    its bytes in blocks nobody refers to). Returns the image and what was left out."""
    image = bytearray(data)
    parts = decode_partition_table(bytes(image[TABLE_OFFSET:TABLE_OFFSET + TABLE_MAX]))
    removed: list[str] = []
    for pt in parts:
        if pt.type == TYPE_DATA and pt.subtype == SUB_NVS and pt.offset + pt.size <= len(image):
            image[pt.offset:pt.offset + pt.size] = b"\xff" * pt.size
            removed.append(f"NVS partition '{pt.label}'")
    vfs = vfs_of(parts)
    try:
        files = _walk(open_littlefs(bytes(image[vfs.offset:vfs.offset + vfs.size])))
    except Exception as e:  # not a littlefs this tool can read: erased, rather than kept with its secrets
        image[vfs.offset:vfs.offset + vfs.size] = b"\xff" * vfs.size
        removed.append(f"the filesystem (not readable as littlefs: {e})")
        return bytes(image), removed
    secret = sorted(p for p in files if p in SECRET_FILES)
    for p in secret:
        del files[p]
    image[vfs.offset:vfs.offset + vfs.size] = build_littlefs(files, vfs.size)
    removed += ["/" + p for p in secret]
    return bytes(image), removed
