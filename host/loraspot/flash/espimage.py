"""ESP firmware images as the chip's ROM and the ESP-IDF bootloader see them, read and written
with esptool's own image classes: which chip an image is for, whether its checksum and SHA-256
hold, the MicroPython version from its application descriptor, and the partition table inside a
full MicroPython `.bin` (bootloader + partition table + application, written at the chip's
bootloader offset).

The virtual board gets a small image of the same shape that the project generates, so the path
from an empty flash to a running board is the one a real board takes: `loraspot flash` writes it,
the virtual board's ROM checks it before it boots."""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from esptool.bin_image import ELFSection, ESP32FirmwareImage, ESP32S3FirmwareImage, LoadFirmwareImage
from esptool.targets import CHIP_DEFS
from esptool.util import FatalError

from loraspot import __version__
from loraspot.errors import ImageError
from loraspot.flash import partitions as fsimage

MAGIC = 0xE9
APP_DESC_MAGIC = 0xABCD5432
# esp_app_desc_t: magic, secure_version, 2 reserved words, version, project_name, time, date,
# idf_ver, app_elf_sha256 (ESP-IDF's esp_app_format.h); it opens the first flash (DROM) segment.
_APP_DESC = struct.Struct("<IIII32s32s16s16s32s32s")
_DROM = {"esp32": 0x3F400020, "esp32s3": 0x3C000020}  # where the app descriptor is mapped
_IRAM = {"esp32": 0x40080000, "esp32s3": 0x40370000}  # the entry point's segment
_IROM = {"esp32": 0x400D0020, "esp32s3": 0x42000020}  # flash-mapped code
_CLASSES = {"esp32": ESP32FirmwareImage, "esp32s3": ESP32S3FirmwareImage}
BOOTLOADER_OFFSET = {"esp32": 0x1000, "esp32s3": 0x0}  # where the ROM looks for the bootloader
PLACEHOLDER_PROJECT = "loraspot-virtual"


@dataclass
class EspImage:
    chip: str
    chip_id: int
    size: int  # bytes the image takes (header to digest)
    entry: int
    project: str = ""
    version: str = ""
    idf: str = ""


@dataclass
class Firmware:
    """A full MicroPython image: where it goes, what it is, its partition table."""

    chip: str
    offset: int  # flash address of its first byte
    version: str
    project: str
    partitions: list[fsimage.Partition] = field(default_factory=list)

    def partition(self, label: str) -> fsimage.Partition | None:
        return next((p for p in self.partitions if p.label == label), None)


def chip_name(chip: str) -> str:
    cls = CHIP_DEFS.get(chip)
    return cls.CHIP_NAME if cls is not None else chip.upper()


def chip_of_id(chip_id: int) -> str | None:
    for name in ("esp32", "esp32s3", "esp32s2", "esp32c3", "esp32c6", "esp32h2", "esp32c2", "esp32p4"):
        cls = CHIP_DEFS.get(name)
        if cls is not None and getattr(cls, "IMAGE_CHIP_ID", None) == chip_id:
            return name
    return None


def read_image(data: bytes, chip: str | None = None) -> EspImage:
    """Parse and check one ESP image (bootloader or application) at the start of data: magic,
    segments, checksum and the appended SHA-256. ImageError says what is wrong."""
    if len(data) < 24 or data[0] != MAGIC:
        word = int.from_bytes(data[:4].ljust(4, b"\xff"), "little")
        raise ImageError(f"invalid header: 0x{word:08x}")
    chip_id = struct.unpack_from("<H", data, 12)[0]
    found = chip_of_id(chip_id)
    if found is None:
        raise ImageError(f"image for an unknown chip (chip id {chip_id})")
    if chip is not None and found != chip:
        raise ImageError(f"the image is for an {chip_name(found)}, the board has an {chip_name(chip)}")
    try:
        img = LoadFirmwareImage(found, data)
    # esptool's reader also raises RuntimeError (a bad append_digest byte), TypeError (ord() of
    # the empty read past a cut image's end) and IndexError: all mean a corrupt image here
    except (FatalError, struct.error, ValueError, RuntimeError, TypeError, IndexError) as e:
        raise ImageError(f"image header or segments are corrupt: {e}") from None
    if not isinstance(img, ESP32FirmwareImage):  # the ESP8266 kinds: not a chip of ours
        raise ImageError("not an ESP32-family image")
    if img.checksum != img.calculate_checksum():
        raise ImageError("image checksum mismatch")
    if img.append_digest and img.stored_digest != img.calc_digest:
        raise ImageError("image SHA-256 mismatch")
    out = EspImage(found, chip_id, (img.data_length or 0) + (32 if img.append_digest else 0), img.entrypoint)
    for seg in img.segments:
        if len(seg.data) >= _APP_DESC.size and struct.unpack_from("<I", seg.data)[0] == APP_DESC_MAGIC:
            f = _APP_DESC.unpack_from(seg.data)
            out.version, out.project, out.idf = (_cstr(f[4]), _cstr(f[5]), _cstr(f[8]))
            break
    return out


def _cstr(b: bytes) -> str:
    return b.split(b"\0", 1)[0].decode(errors="replace")


def read_firmware(data: bytes, chip: str | None = None) -> Firmware:
    """Check a full MicroPython image (as published for a board, written at the bootloader offset
    of its chip): bootloader, partition table, factory application."""
    boot = read_image(data, chip)
    offset = BOOTLOADER_OFFSET.get(boot.chip, 0x1000)
    table_at = fsimage.TABLE_OFFSET - offset
    parts = fsimage.decode_partition_table(data[table_at : table_at + fsimage.TABLE_MAX])
    app = next((p for p in parts if p.type == fsimage.TYPE_APP), None)
    if app is None:
        raise ImageError("the partition table has no application partition")
    start = app.offset - offset
    if start >= len(data):
        raise ImageError("the image ends before its application")
    info = read_image(data[start:], boot.chip)
    return Firmware(boot.chip, offset, info.version, info.project, parts)


def _esp_image(chip: str, segments: list[tuple[int, bytes]], entry: int) -> bytes:
    img = _CLASSES[chip]()
    img.chip_id = CHIP_DEFS[chip].IMAGE_CHIP_ID
    img.entrypoint = entry
    img.segments = [ELFSection(b".seg%d" % i, addr, data, 0) for i, (addr, data) in enumerate(segments)]
    out = img.save(None)
    assert out is not None
    return out


def placeholder(profile: dict, code: bytes = b"", version: str = "v1.29.0",
                project: str = PLACEHOLDER_PROJECT) -> bytes:
    """The virtual board's stand-in for a MicroPython image: a bootloader, the profile's partition
    table and an application whose descriptor names the project and its version, each a valid ESP
    image for the profile's chip. From the bootloader offset to the end of the application. `code`
    is an extra segment standing in for the interpreter's code (benchmarks at a real image's size)."""
    chip = profile["chip"]
    if chip not in _DROM:
        raise ImageError(f"no placeholder image for {chip}")
    offset = BOOTLOADER_OFFSET[chip]
    iram = _IRAM[chip]
    boot = _esp_image(chip, [(iram, b"\x00" * 64)], iram)
    desc = _APP_DESC.pack(APP_DESC_MAGIC, 0, 0, 0, version.encode(), project.encode(), b"00:00:00",
                          b"Nov 22 2026", f"loraspot {__version__}".encode(), b"\0" * 32)
    parts = fsimage.partitions_for(profile)
    app_part = next(p for p in parts if p.type == fsimage.TYPE_APP)
    segments = [(_DROM[chip], desc), (iram, b"\x00" * 256)]
    if code:
        segments.append((_IROM[chip], code))
    app = _esp_image(chip, segments, iram)
    out = bytearray(b"\xff" * (app_part.offset - offset))
    out[: len(boot)] = boot
    table_at = fsimage.TABLE_OFFSET - offset
    out[table_at : table_at + fsimage.TABLE_MAX] = fsimage.encode_partition_table(parts)
    return bytes(out + app)

