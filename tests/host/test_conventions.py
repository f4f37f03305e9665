"""What users of esptool, mpremote and meshtastic expect of a command line: -h, python -m, --json
anywhere, LORASPOT_PORT, a missing port called missing, one notation for MACs, shell completion
of ports and board ids, and port names as Windows and macOS spell them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from types import SimpleNamespace

import pytest
from loraspot import transport
from loraspot.cli.main import main
from loraspot.errors import PortBusy, PortNotFound

FRAME = "40F17DBE49000300012A3518AF"


def test_help_python_m_and_json_anywhere(capsys):
    for args in (["-h"], ["flash", "-h"], ["devices", "show", "-h"]):
        assert main(args) == 0 and "Usage:" in capsys.readouterr().out
    proc = subprocess.run([sys.executable, "-m", "loraspot", "--version"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and proc.stdout.startswith("loraspot, version")
    assert main(["--json", "decode", FRAME]) == 0
    before = json.loads(capsys.readouterr().out)
    assert main(["decode", FRAME, "--json"]) == 0  # after the subcommand, as meshtastic and esphome take it
    assert json.loads(capsys.readouterr().out) == before
    assert main(["decode", "--", "--json"]) == 2  # after --, it is an argument again
    assert main(["inventory", "list"]) == 2  # one group for the inventory: `devices`


def test_port_from_the_environment_and_a_missing_port(tmp_path, capsys, monkeypatch):
    missing = str(tmp_path / "ttyMISSING")
    monkeypatch.setenv("LORASPOT_PORT", missing)
    assert main(["info"]) == 3
    assert f"{missing}: no such serial port" in capsys.readouterr().err
    monkeypatch.delenv("LORASPOT_PORT")
    assert main(["flash", "-p", missing, "--board", "virtual"]) == 3
    err = " ".join(capsys.readouterr().err.split())
    assert "no such serial port" in err and "cannot tell the board" not in err
    monkeypatch.setenv("LORASPOT_RUNTIME_DIR", str(tmp_path / "run"))  # no virtual board
    monkeypatch.setattr("serial.tools.list_ports.comports", lambda: [])
    assert main(["config", "get"]) == 3 and "no board found" in capsys.readouterr().err


def _complete(words: str) -> list[str]:
    env = dict(os.environ, _LORASPOT_COMPLETE="bash_complete", COMP_WORDS=words,
               COMP_CWORD=str(len(words.split()) - (0 if words.endswith(" ") else 1)))
    proc = subprocess.run([os.path.join(os.path.dirname(sys.executable), "loraspot")], env=env, capture_output=True,
                          text=True, timeout=60)
    return [line.split(",", 1)[1] for line in proc.stdout.splitlines() if "," in line]


def test_shell_completion_of_board_ids_and_commands():
    assert _complete("loraspot flash --board ttgo") == ["ttgo-lora32-v1", "ttgo-lora32-v2.1"]
    assert "provision" in _complete("loraspot pro")


@pytest.mark.parametrize(("typed", "platform", "want"), [
    ("com3", "win32", "COM3"),
    ("\\\\.\\COM12", "win32", "COM12"),
    ("/dev/tty.usbserial-0001", "darwin", "/dev/cu.usbserial-0001"),
    ("/dev/cu.usbmodem1101", "darwin", "/dev/cu.usbmodem1101"),
    ("/dev/ttyUSB0", "linux", "/dev/ttyUSB0"),
    (" rfc2217://127.0.0.1:4000 ", "linux", "rfc2217://127.0.0.1:4000"),
])
def test_port_names_of_each_system(typed, platform, want):
    assert transport.normalise_port(typed, platform) == want


def _comport(device, vid=0x10C4, pid=0xEA60, serial=None):
    return SimpleNamespace(device=device, description="CP2102", vid=vid, pid=pid, serial_number=serial)


def test_windows_and_macos_listing_matching_and_messages(monkeypatch, tmp_path):
    monkeypatch.setenv("LORASPOT_RUNTIME_DIR", str(tmp_path / "run"))
    monkeypatch.setattr("serial.tools.list_ports.comports", lambda: [_comport("COM4")])
    assert transport.check_port("com4", "win32") == "COM4"
    with pytest.raises(PortNotFound, match="COM9: no such serial port"):
        transport.check_port("COM9", "win32")
    err = transport._classify("COM4", PermissionError(13, "Access is denied."), "win32")
    assert isinstance(err, PortBusy) and "another program" in str(err)
    assert "dialout" not in str(transport._classify("/dev/cu.x", PermissionError(13, "Permission denied"), "darwin"))
    monkeypatch.setattr("serial.tools.list_ports.comports",
                        lambda: [_comport("/dev/cu.usbserial-1"), _comport("/dev/tty.usbserial-1")])
    monkeypatch.setattr(transport.sys, "platform", "darwin")
    (only,) = transport.list_ports()  # one entry per board, the call-out device
    assert only.url == "/dev/cu.usbserial-1" and "ttgo-lora32-v1" in only.boards


def test_a_native_usb_board_is_found_again_under_its_new_name(monkeypatch, tmp_path):
    """An ESP32-S3 on its USB-Serial/JTAG (303a:1001) comes back after a reset as another ACM
    device with another product id; its serial number (its MAC) is what stays."""
    monkeypatch.setenv("LORASPOT_RUNTIME_DIR", str(tmp_path / "run"))
    listed = [_comport("/dev/ttyACM0", 0x303A, 0x1001, "F4:12:FA:01:02:03"), _comport("/dev/ttyUSB0")]
    monkeypatch.setattr("serial.tools.list_ports.comports", lambda: listed)
    before = transport.port_info("/dev/ttyACM0")
    assert before is not None and "lilygo-t3-s3" in before.boards
    listed[:] = [_comport("/dev/ttyUSB0"), _comport("/dev/ttyACM1", 0x303A, 0x4001, "F412FA010203")]
    again = transport.find_again(before)
    assert again is not None and again.url == "/dev/ttyACM1"
    listed[:] = [_comport("/dev/ttyUSB0")]
    assert transport.find_again(before) is None
