"""The unmodified esptool against a virtual board in download mode (the classic DTR/RTS reset
over RFC 2217 puts it there): chip detection, eFuse MAC, the stub upload, the flash ID through the
SPI registers, compressed and plain writes verified by MD5, reads with the stub and with the ROM,
region erase, and bad commands answered as a ROM answers them. The flash image file holds what
was written, byte for byte."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from esptool.cmds import detect_chip, erase_region, verify_flash, write_flash
from esptool.util import FatalError
from loraspot.sim.vboard import BoardOptions, VirtualBoard

pytestmark = pytest.mark.e2e


@pytest.fixture(params=["virtual", "lilygo-t3-s3"])  # an ESP32 and an ESP32-S3 profile
def vboard(tmp_path, request):
    vb = VirtualBoard(BoardOptions(flash=tmp_path / "flash.bin", board=request.param, pty=False, register=False))
    info = vb.start()
    yield vb, info
    vb.stop()


def _mac(vb) -> str:
    return ":".join(vb.device_id[i : i + 2] for i in range(0, 12, 2))


def test_esptool_cli_reads_the_mac(vboard):
    vb, info = vboard
    p = subprocess.run([sys.executable, "-m", "esptool", "--port", info["url"], "read-mac"], capture_output=True,
                       text=True, timeout=120)
    assert p.returncode == 0, p.stdout + p.stderr
    chip = "ESP32-S3" if vb.profile["chip"] == "esp32s3" else "ESP32"
    assert f"Detecting chip type... {chip}\n" in p.stdout and "Crystal frequency:  40MHz" in p.stdout
    assert p.stdout.count(f"MAC:                {_mac(vb)}") == 2  # from the ROM, then from the stub


def test_esptool_session_writes_reads_verifies_and_erases(vboard, tmp_path):
    vb, info = vboard
    flash = tmp_path / "flash.bin"
    plain = os.urandom(9000)  # incompressible: written as is
    packed = bytes(range(256)) * 64  # compressible: FLASH_DEFL_*
    esp = detect_chip(info["url"], 115200, "default-reset", False, 7)
    try:
        assert {"esp32": "ESP32", "esp32s3": "ESP32-S3"}[vb.profile["chip"]] == esp.CHIP_NAME
        assert esp.read_mac() == tuple(bytes.fromhex(vb.device_id))
        esp = esp.run_stub()
        esp.change_baud(921600)
        assert esp.flash_id() == 0x1640EF  # Winbond, 4 MB
        write_flash(esp, [(0x300000, plain), (0x310000, packed)], compress=None)
        verify_flash(esp, [(0x300000, plain), (0x310000, packed)])
        assert esp.read_flash(0x310000, len(packed)) == packed
        erase_region(esp, 0x310000, 0x1000)
        assert esp.read_flash(0x310000, 16) == b"\xff" * 16
        with pytest.raises(FatalError):  # outside the 4 MB flash: refused, nothing written
            esp.flash_begin(0x2000, 0x3FF000)
        esp.hard_reset()
    finally:
        esp._port.close()
    data = flash.read_bytes()
    assert data[0x300000 : 0x300000 + len(plain)] == plain
    assert data[0x310000 : 0x311000] == b"\xff" * 0x1000 and data[0x311000 : 0x310000 + len(packed)] == packed[0x1000:]


def test_rom_without_stub_reads_flash_and_refuses_stub_commands(vboard, tmp_path):
    vb, info = vboard
    esp = detect_chip(info["url"], 115200, "default-reset", False, 7)
    try:
        assert esp.read_flash_slow(0, 64, None) == (tmp_path / "flash.bin").read_bytes()[:64]
        with pytest.raises(FatalError):
            esp.check_command("erase flash", 0xD0)  # ERASE_FLASH is a stub command
        assert esp.read_mac() == tuple(bytes.fromhex(vb.device_id))  # still talking after the refusal
    finally:
        esp._port.close()
