"""The chip's security eFuses as a board reports them: the running firmware reads them through
machine.mem32 (the virtual board holds them beside its flash image), `loraspot info` shows them
and warns while keys sit in plain NVS; in download mode esptool reads the same words."""

from __future__ import annotations

import json

import pytest
from esptool.cmds import detect_chip
from loraspot import device

from tests.e2e.test_provision_e2e import _run

pytestmark = pytest.mark.e2e
PRODUCTION = {"flash_crypt_cnt": 1, "secure_boot": True, "download": "secure"}


def _board(make_board, tmp_path, security: dict | None, board: str = "virtual"):
    flash = tmp_path / f"{board}.bin"
    efuse = {"mac": "024c53a1b2c3", "board": board}
    if security is not None:
        efuse["security"] = security
    flash.with_name(flash.name + ".efuse.json").write_text(json.dumps(efuse))
    return make_board(flash, board=board)


@pytest.mark.parametrize("security, expected", [
    (None, {"flash_encryption": False, "secure_boot": False, "download": "enabled"}),
    # FLASH_CRYPT_CNT counts: an odd number of bits set is on, an even number off again
    ({"flash_crypt_cnt": 3, "secure_boot": False}, {"flash_encryption": False, "secure_boot": False,
                                                     "download": "enabled"}),
    ({"flash_crypt_cnt": 7, "secure_boot": True, "download": "disabled"},
     {"flash_encryption": True, "secure_boot": True, "download": "disabled"}),
])
def test_the_firmware_reports_the_security_efuses(make_board, tmp_path, security, expected):
    h = _board(make_board, tmp_path, security)
    client, hello = device.connect(h.info["url"])
    client.close()
    assert hello["security"] == expected
    # and what a deploy checks its bytecode against: the interpreter's release and .mpy format
    assert hello["micropython"].startswith("1.29.") and hello["mpy"] == "6.3"


def test_info_shows_the_state_and_warns_while_keys_are_readable(make_board, tmp_path, capsys):
    h = _board(make_board, tmp_path, None)
    code, out, err = _run(capsys, "info", "--port", h.info["url"])
    assert code == 0
    assert "flash encryption is off" in err and "secure boot is off" in err
    code, out, err = _run(capsys, "--json", "info", "--port", h.info["url"])
    assert json.loads(out)["hello"]["security"]["flash_encryption"] is False


def test_a_board_with_the_production_efuses_gets_no_warning(make_board, tmp_path, capsys):
    h = _board(make_board, tmp_path, PRODUCTION)
    code, _, err = _run(capsys, "info", "--port", h.info["url"])
    assert code == 0 and "warning" not in err


def test_esptool_reads_the_same_efuse_words_in_download_mode(make_board, tmp_path):
    h = _board(make_board, tmp_path, {"flash_crypt_cnt": 1, "secure_boot": True, "download": "disabled"})
    esp = detect_chip(h.info["url"], 115200, "default-reset", False, 7)
    try:
        w0, w6 = esp.read_reg(0x3FF5A000), esp.read_reg(0x3FF5A018)
    finally:
        esp._port.close()
    assert (w0 >> 20) & 0x7F == 1 and w0 >> 27 & 1 == 1  # FLASH_CRYPT_CNT, UART_DOWNLOAD_DIS
    assert w6 >> 5 & 1 == 1  # ABS_DONE_1: secure boot v2


def test_an_esp32_s3_reads_its_own_efuse_layout(make_board, tmp_path):
    """SPI_BOOT_CRYPT_CNT counts like FLASH_CRYPT_CNT (1 and 7 on, 3 off); ENABLE_SECURITY_DOWNLOAD."""
    for i, (security, expected) in enumerate([
        ({"flash_crypt_cnt": 1, "secure_boot": True, "download": "secure"}, (True, True, "secure")),
        ({"flash_crypt_cnt": 3, "download": "disabled"}, (False, False, "disabled")),
    ]):
        flash = tmp_path / f"s3-{i}.bin"
        flash.with_name(flash.name + ".efuse.json").write_text(json.dumps(
            {"mac": f"024c53a1b2c{i}", "board": "lilygo-t3-s3", "security": security}))
        h = make_board(flash, board="lilygo-t3-s3")
        client, hello = device.connect(h.info["url"])
        client.close()
        sec = hello["security"]
        assert (sec["flash_encryption"], sec["secure_boot"], sec["download"]) == expected
