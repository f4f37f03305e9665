"""The ESP32 / ESP32-S3 ROM serial bootloader of a virtual board in download mode, and the flasher stub esptool
uploads into it: what the unmodified esptool reads and writes over the (RFC 2217) serial line.

SLIP-framed commands (esptool's `command()` format: direction, opcode, length, checksum, data),
answered with the value and status bytes a ROM (4 status bytes) or the stub (2) gives. Registers
esptool reads are modelled: the chip-detect magic, the eFuse words holding the MAC, UART_CLKDIV
(from which esptool tells the crystal), and the SPI peripheral's user-command registers through
which it reads the flash's JEDEC ID. Flash writes land in the board's flash image file, with the
erase and program times of a typical SPI NOR datasheet (W25Q32JV: 45 ms per 4 KB sector erase,
0.7 ms per 256-byte page, chip erase 2.5 s per MB)."""

from __future__ import annotations

import contextlib
import hashlib
import os
import select
import struct
import threading
import time
import zlib
from collections.abc import Callable
from pathlib import Path

# opcodes (esptool's ESP_CMDS)
FLASH_BEGIN, FLASH_DATA, FLASH_END = 0x02, 0x03, 0x04
MEM_BEGIN, MEM_END, MEM_DATA = 0x05, 0x06, 0x07
SYNC, WRITE_REG, READ_REG = 0x08, 0x09, 0x0A
SPI_SET_PARAMS, SPI_ATTACH, READ_FLASH_SLOW, CHANGE_BAUDRATE = 0x0B, 0x0D, 0x0E, 0x0F
FLASH_DEFL_BEGIN, FLASH_DEFL_DATA, FLASH_DEFL_END, SPI_FLASH_MD5 = 0x10, 0x11, 0x12, 0x13
GET_SECURITY_INFO = 0x14
ERASE_FLASH, ERASE_REGION, READ_FLASH, RUN_USER_CODE = 0xD0, 0xD1, 0xD2, 0xD3

SECTOR = 4096
BLOCK = 65536
# Typical times of a 4 MB SPI NOR flash (Winbond W25Q32JV datasheet): sector (4 KB) erase, block
# (64 KB) erase, page (256 B) program, chip erase per MB.
SECTOR_ERASE_S = 0.045
BLOCK_ERASE_S = 0.150
PAGE_PROGRAM_S = 0.0007
CHIP_ERASE_S_PER_MB = 2.5

CHIP_DETECT_MAGIC_REG = 0x40001000
SPI_CMD_USR = 1 << 18


class Chip:
    """The registers esptool reads on one chip (their addresses: esptool/targets/*.py)."""

    def __init__(self, name: str, magic: int | None, chip_id: int | None, efuse_mac: int, uart_clkdiv: int,
                 spi_base: int, usr2: int, w0: int):
        self.name, self.magic, self.chip_id = name, magic, chip_id
        self.efuse_mac, self.uart_clkdiv = efuse_mac, uart_clkdiv
        self.spi_cmd, self.spi_usr2, self.spi_w0 = spi_base, spi_base + usr2, spi_base + w0

    def mac_words(self, m: bytes) -> dict[int, int]:
        if self.name == "esp32":  # BLK0 words 1 and 2, with the MAC's CRC-8 above it
            return {self.efuse_mac: int.from_bytes(m[2:6], "big"),
                    self.efuse_mac + 4: (_crc8(m) << 16) | (m[0] << 8) | m[1]}
        return {self.efuse_mac: int.from_bytes(m[2:6], "big"), self.efuse_mac + 4: (m[0] << 8) | m[1]}

    def security_words(self, sec: dict | None) -> dict[int, int]:
        """BLOCK0 words with the security eFuses of `sec` (flash_crypt_cnt, secure_boot, download:
        enabled|secure|disabled), at the places espefuse's efuse_defs/esp32.yaml and esp32s3.yaml
        give: ESP32 FLASH_CRYPT_CNT RDATA0[26:20], UART_DOWNLOAD_DIS RDATA0[27], ABS_DONE_1
        RDATA6[5]; ESP32-S3 SPI_BOOT_CRYPT_CNT RD_REPEAT_DATA1[20:18], SECURE_BOOT_EN
        RD_REPEAT_DATA2[20], DIS_DOWNLOAD_MODE RD_REPEAT_DATA3[0], ENABLE_SECURITY_DOWNLOAD [5]."""
        sec = sec or {}
        cnt, boot, dl = int(sec.get("flash_crypt_cnt", 0)), int(bool(sec.get("secure_boot"))), sec.get("download")
        off, secure = int(dl == "disabled"), int(dl == "secure")
        if self.name == "esp32":
            return {0x3FF5A000: (cnt & 0x7F) << 20 | off << 27, 0x3FF5A018: boot << 5}
        return {0x60007034: (cnt & 7) << 18, 0x60007038: boot << 20, 0x6000703C: off | secure << 5}


CHIPS = {
    # ESP32: told apart by the magic word (its ROM has no GET_SECURITY_INFO)
    "esp32": Chip("esp32", 0x00F01D83, None, 0x3FF5A004, 0x3FF40014, 0x3FF42000, 0x24, 0x80),
    # ESP32-S3: GET_SECURITY_INFO answers chip ID 9
    "esp32s3": Chip("esp32s3", None, 9, 0x60007044, 0x60000014, 0x60002000, 0x20, 0x58),
}
XTAL_HZ = 40_000_000
JEDEC_RDID = 0x9F
WINBOND = 0xEF

_END, _ESC = 0xC0, 0xDB


def slip(data: bytes) -> bytes:
    return b"\xc0" + data.replace(b"\xdb", b"\xdb\xdd").replace(b"\xc0", b"\xdb\xdc") + b"\xc0"


def checksum(data: bytes) -> int:
    c = 0xEF
    for b in data:
        c ^= b
    return c


class SlipDecoder:
    def __init__(self) -> None:
        self.buf = bytearray()
        self.inside = False
        self.esc = False

    def feed(self, data: bytes) -> list[bytes]:
        out = []
        for b in data:
            if not self.inside:
                if b == _END:
                    self.inside = True
                    self.buf.clear()
                continue
            if self.esc:
                self.esc = False
                self.buf.append({0xDC: 0xC0, 0xDD: 0xDB}.get(b, b))
            elif b == _ESC:
                self.esc = True
            elif b == _END:
                if self.buf:
                    out.append(bytes(self.buf))
                    self.buf.clear()
                # an empty frame: a frame boundary, stay inside
            else:
                self.buf.append(b)
        return out


class RomLoader:
    """One download-mode session: reads host bytes from `rx_fd`, answers through `emit`."""

    def __init__(self, flash: Path, flash_size: int, mac: bytes, rx_fd: int, emit: Callable[[bytes], None],
                 baud: Callable[[], int], on_run: Callable[[], None], chip: str = "esp32",
                 security: dict | None = None):
        if chip not in CHIPS:
            raise ValueError(f"no ROM loader model for chip {chip!r} ({', '.join(CHIPS)})")
        self.chip = CHIPS[chip]
        self.flash_path, self.flash_size, self.mac = flash, flash_size, mac
        self.efuse = {**self.chip.mac_words(mac), **self.chip.security_words(security)}
        self.rx_fd, self.emit, self.baud, self.on_run = rx_fd, emit, baud, on_run
        self.stub = False
        self.regs: dict[int, int] = {}
        self.slip = SlipDecoder()
        self._write: dict | None = None  # the FLASH_(DEFL_)BEGIN in progress
        self._flash_busy = 0.0  # when the stub's flash work on the last block ends (monotonic time)
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="rom-loader", daemon=True)
        self.commands = 0

    def start(self) -> RomLoader:
        self.thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self.thread.join(5)

    # ---- the line -----------------------------------------------------------------------------
    def _frames(self, timeout: float = 0.05) -> list[bytes]:
        r, _, _ = select.select([self.rx_fd], [], [], timeout)
        if not r:
            return []
        try:
            data = os.read(self.rx_fd, 65536)
        except OSError:
            self._stop.set()
            return []
        if not data:
            self._stop.set()
        return self.slip.feed(data)

    def _run(self) -> None:
        with open(self.flash_path, "r+b") as self.flash:
            while not self._stop.is_set():
                for frame in self._frames():
                    self._packet(frame)

    def _reply(self, op: int, val: int = 0, data: bytes = b"", status: int = 0, error: int = 0) -> None:
        st = bytes([status, error]) + (b"" if self.stub else b"\0\0")
        body = data + st
        self.emit(slip(struct.pack("<BBHI", 1, op, len(body), val) + body))

    # ---- commands -----------------------------------------------------------------------------
    def _packet(self, p: bytes) -> None:
        if len(p) < 8 or p[0] != 0:
            return  # not a command (a ROM ignores it)
        _, op, size, chk = struct.unpack_from("<BBHI", p)
        data = p[8 : 8 + size]
        if len(data) != size:
            self._reply(op, status=1, error=0x05)
            return
        self.commands += 1
        handler = getattr(self, f"_op_{op:02x}", None)
        if handler is None or (op >= 0xD0 and not self.stub):
            self._reply(op, status=1, error=0x05)  # invalid message: esptool's "unsupported command"
            return
        try:
            handler(op, data, chk)
        except (struct.error, ValueError, OSError, zlib.error) as e:
            self._reply(op, status=1, error=0x06 if isinstance(e, zlib.error) else 0x07)

    def _op_08(self, op, data, chk):  # SYNC: the ROM answers eight times (the stub once, with 0)
        if data[:4] != b"\x07\x07\x12\x20":
            return
        for _ in range(1 if self.stub else 8):
            self._reply(op, 0 if self.stub else 0x20120707)

    def _reg(self, addr: int) -> int:
        c = self.chip
        if addr == CHIP_DETECT_MAGIC_REG and c.magic is not None:
            return c.magic
        if addr == c.uart_clkdiv:
            return round(XTAL_HZ / self.baud()) & 0xFFFFF
        if addr in self.efuse:
            return self.efuse[addr]
        return self.regs.get(addr, 0)

    def _op_0a(self, op, data, chk):  # READ_REG
        (addr,) = struct.unpack_from("<I", data)
        self._reply(op, self._reg(addr))

    def _op_09(self, op, data, chk):  # WRITE_REG (address, value, mask, delay)
        addr, value, mask, _delay = struct.unpack_from("<IIII", data)
        old = self.regs.get(addr, 0)
        self.regs[addr] = (old & ~mask) | (value & mask)
        if addr == self.chip.spi_cmd and value & SPI_CMD_USR:
            self._spi_user_command()
        self._reply(op)

    def _spi_user_command(self) -> None:
        """The SPI controller runs the command in USR2 on the flash: RDID answers the JEDEC ID."""
        c = self.chip
        command = self.regs.get(c.spi_usr2, 0) & 0xFFFF
        if command == JEDEC_RDID:
            capacity = self.flash_size.bit_length() - 1  # 4 MB -> 0x16
            self.regs[c.spi_w0] = WINBOND | (0x40 << 8) | (capacity << 16)
        else:
            self.regs[c.spi_w0] = 0  # status registers: ready, no protection
        self.regs[c.spi_cmd] = self.regs.get(c.spi_cmd, 0) & ~SPI_CMD_USR

    def _op_14(self, op, data, chk):  # GET_SECURITY_INFO: flags, crypt count, key purposes, chip ID, API
        if self.chip.chip_id is None:  # not in the ESP32's ROM
            self._reply(op, status=1, error=0x05)
            return
        self._reply(op, data=struct.pack("<IBBBBBBBBII", 0, 0, 0, 0, 0, 0, 0, 0, 0, self.chip.chip_id, 0))

    def _op_0b(self, op, data, chk):  # SPI_SET_PARAMS
        self._reply(op)

    def _op_0d(self, op, data, chk):  # SPI_ATTACH
        self._reply(op)

    def _op_0f(self, op, data, chk):  # CHANGE_BAUDRATE: answered at the old rate; the host then
        self._reply(op)  # changes its port, which sets the line's rate (RFC 2217)

    # RAM download: the stub is accepted and "runs" (this loader then speaks its dialect)
    def _op_05(self, op, data, chk):
        self._reply(op)

    def _op_07(self, op, data, chk):
        if checksum(data[16:]) != chk:
            self._reply(op, status=1, error=0x07)
            return
        self._reply(op)

    def _op_06(self, op, data, chk):
        no_entry, _entry = struct.unpack_from("<II", data)
        self._reply(op)
        if not no_entry:
            self.stub = True
            self.emit(slip(b"OHAI"))

    # flash writing
    def _erase(self, offset: int, size: int) -> None:
        if offset % SECTOR or offset < 0 or offset + size > self.flash_size:
            raise ValueError("erase outside the flash or not sector-aligned")
        size = (size + SECTOR - 1) // SECTOR * SECTOR
        self.flash.seek(offset)
        self.flash.write(b"\xff" * min(size, self.flash_size - offset))
        time.sleep(SECTOR_ERASE_S * (size // SECTOR))

    def _program(self, offset: int, data: bytes) -> None:
        if offset + len(data) > self.flash_size:
            raise ValueError("write past the end of the flash")
        self.flash.seek(offset)
        self.flash.write(data)
        time.sleep(PAGE_PROGRAM_S * ((len(data) + 255) // 256))

    def _begin(self, data: bytes, compressed: bool) -> None:
        size, blocks, block_size, offset = struct.unpack_from("<IIII", data)
        if self.stub:  # the stub erases as the data arrives (64 KB blocks where it can)
            if offset % SECTOR or offset + size > self.flash_size:
                raise ValueError("write outside the flash or not sector-aligned")
        else:  # the ROM erases the whole region before it answers
            self._erase(offset, size)
        self._write = {"offset": offset, "next": offset, "block_size": block_size, "blocks": blocks, "seq": 0,
                       "z": zlib.decompressobj() if compressed else None, "size": size, "erased": offset}

    def _op_02(self, op, data, chk):
        self._begin(data, False)
        self._reply(op)

    def _op_10(self, op, data, chk):
        self._begin(data, True)
        self._reply(op)

    def _stub_erase_ahead(self, w: dict, end: int) -> float:
        """Erase what the write up to `end` needs (the stub's way); returns the flash time."""
        t = 0.0
        while w["erased"] < end:
            at = w["erased"]
            n = BLOCK if at % BLOCK == 0 and w["offset"] + w["size"] - at >= BLOCK else SECTOR
            n = min(n, self.flash_size - at)
            self.flash.seek(at)
            self.flash.write(b"\xff" * n)
            w["erased"] += n
            t += BLOCK_ERASE_S if n == BLOCK else SECTOR_ERASE_S
        return t

    def _stub_wait(self) -> None:
        """Wait until the flash work on the previous block is done."""
        delay = self._flash_busy - time.monotonic()
        if delay > 0:
            time.sleep(delay)

    def _data(self, op: int, data: bytes, chk: int) -> None:
        w = self._write
        length, seq = struct.unpack_from("<II", data)
        block = data[16 : 16 + length]
        if w is None or len(block) != length or checksum(block) != chk or seq != w["seq"]:
            self._reply(op, status=1, error=0x07)
            return
        w["seq"] += 1
        out = w["z"].decompress(block) if w["z"] is not None else block
        if not self.stub:
            if out:
                self._program(w["next"], out)
                w["next"] += len(out)
            self._reply(op)
            return
        # The stub acknowledges a block once it has it, and erases and programs it while the host
        # sends the next one, which it takes (and acknowledges) when the previous one is written:
        # esptool times each acknowledgement by the size of the block before it.
        self._stub_wait()
        work = 0.0
        if out:
            if w["next"] + len(out) > self.flash_size:
                raise ValueError("write past the end of the flash")
            work += self._stub_erase_ahead(w, w["next"] + len(out))
            self.flash.seek(w["next"])
            self.flash.write(out)
            w["next"] += len(out)
            work += PAGE_PROGRAM_S * ((len(out) + 255) // 256)
        self._flash_busy = time.monotonic() + work
        self._reply(op)

    def _op_03(self, op, data, chk):
        self._data(op, data, chk)

    def _op_11(self, op, data, chk):
        self._data(op, data, chk)

    def _end(self, op: int, data: bytes) -> None:
        self._stub_wait()
        self._write = None
        self.flash.flush()
        self._reply(op)
        if data and struct.unpack_from("<I", data)[0] == 0:  # 0: run the application
            self.on_run()

    def _op_04(self, op, data, chk):
        self._end(op, data)

    def _op_12(self, op, data, chk):
        self._end(op, data)

    def _op_13(self, op, data, chk):  # SPI_FLASH_MD5
        addr, size = struct.unpack_from("<II", data)
        self._stub_wait()
        self.flash.flush()
        self.flash.seek(addr)
        digest = hashlib.md5(self.flash.read(size))
        self._reply(op, data=digest.digest() if self.stub else digest.hexdigest().encode())

    def _op_0e(self, op, data, chk):  # READ_FLASH_SLOW (ROM): up to 64 bytes per command
        addr, size = struct.unpack_from("<II", data)
        self.flash.seek(addr)
        self._reply(op, data=self.flash.read(min(size, 64)))

    def _op_d0(self, op, data, chk):  # ERASE_FLASH (stub)
        self.flash.seek(0)
        self.flash.write(b"\xff" * self.flash_size)
        time.sleep(CHIP_ERASE_S_PER_MB * self.flash_size / (1 << 20))
        self._reply(op)

    def _op_d1(self, op, data, chk):  # ERASE_REGION (stub)
        offset, size = struct.unpack_from("<II", data)
        self._erase(offset, size)
        self._reply(op)

    def _op_d2(self, op, data, chk):  # READ_FLASH (stub): frames of block_size, acknowledged by the host
        offset, length, block_size, in_flight = struct.unpack_from("<IIII", data)
        if offset + length > self.flash_size or not block_size:
            raise ValueError("read outside the flash")
        self._reply(op)
        self.flash.seek(offset)
        content = self.flash.read(length)
        sent = acked = 0
        while acked < length and not self._stop.is_set():
            while sent < length and sent - acked < in_flight * block_size:
                self.emit(slip(content[sent : sent + block_size]))
                sent += min(block_size, length - sent)
            for frame in self._frames(1.0):
                if len(frame) == 4:
                    acked = max(acked, struct.unpack("<I", frame)[0])
        self.emit(slip(hashlib.md5(content).digest()))

    def _op_d3(self, op, data, chk):  # RUN_USER_CODE (stub)
        self.on_run()


def _crc8(data: bytes) -> int:
    """The eFuse MAC's CRC-8 (polynomial 0x07 reflected, as espefuse computes it)."""
    crc = 0
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ 0x8C if crc & 1 else crc >> 1
    return crc


@contextlib.contextmanager
def session(flash: Path, flash_size: int, mac: bytes, uart, on_run: Callable[[], None], chip: str = "esp32",
            security: dict | None = None):
    """A RomLoader wired to a virtual board's UART for as long as the board stays in download mode."""
    r, w = os.pipe()
    uart.attach(None, w, fifo=1 << 20)  # the ROM drains its FIFO by interrupt: nothing is lost
    try:
        loader = RomLoader(flash, flash_size, mac, r, uart.emit, lambda: uart.baud, on_run, chip, security).start()
    except BaseException:
        uart.attach(None, None)
        os.close(w)
        os.close(r)
        raise
    try:
        yield loader
    finally:
        loader.stop()
        uart.attach(None, None)
        os.close(w)
        os.close(r)
