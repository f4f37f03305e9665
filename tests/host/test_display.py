"""The display driver (firmware spot/display.py) against an SSD1306 command model that decodes the
command stream into its own display RAM (sim/mp/_vssd1306.py: datasheet command table, addressing
modes, remap, scan direction, contrast, on/off, charge pump), independent of the drawing code; the
frames of known states are compared with reference pictures a person has looked at
(tests/data/display/)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from loraspot.sim import screen

from tests.conftest import FIRMWARE_TESTS, HEAP, firmware_env, micropython

ROOT = Path(__file__).resolve().parents[2]
REFS = ROOT / "tests" / "data" / "display"
sys.path.insert(0, str(ROOT / "host" / "loraspot" / "sim" / "mp"))
from _vssd1306 import SSD1306Model  # noqa: E402


def _states() -> dict[str, dict]:
    p = subprocess.run([micropython(), "-X", f"heapsize={HEAP}", str(FIRMWARE_TESTS / "display_peer.py")],
                       capture_output=True, text=True, env=firmware_env(), timeout=120)
    assert p.returncode == 0, p.stdout + p.stderr
    return {d["state"]: d for d in map(json.loads, p.stdout.splitlines())}


@pytest.fixture(scope="module")
def states():
    return _states()


def test_the_driver_sets_the_panel_up_as_the_datasheet_says(states):
    # display on with its charge pump, horizontal addressing, 64 rows, the module upright (A1, C8)
    assert states["init"]["model"] == {"on": True, "pump": True, "mode": 0, "contrast": 0xCF, "remap": True,
                                       "com_rev": True, "mux": 64, "invert": False}


@pytest.mark.parametrize("name", ["hotspot", "hotspot-board", "setup", "setup-code", "node"])
def test_frames_match_the_reference_pictures(states, name):
    rows, w, h = screen.rows_of(REFS / f"{name}.png")
    got = bytes.fromhex(states[name]["rows"])
    assert (w, h) == (128, 64)
    diff = sum(bin(a ^ b).count("1") for a, b in zip(got, rows, strict=True))
    assert diff == 0, f"{name}: {diff} pixels differ from {REFS / name}.png"


def test_a_page_is_written_whole_and_a_display_switched_off_is_dark(states):
    assert states["hotspot"]["writes"] == 1024  # one frame: 8 pages of 128 columns
    assert states["setup"]["rows"] != states["setup-code"]["rows"]  # the code shows only after a press
    assert set(bytes.fromhex(states["off"]["rows"])) == {0}


def _pixel(rows: bytes, x: int, y: int) -> int:
    return rows[y * 16 + x // 8] >> (7 - x % 8) & 1


def test_the_model_follows_page_and_vertical_addressing():
    m = SSD1306Model()
    m.write(bytes([0x00, 0x8D, 0x14, 0xAF, 0xA1, 0xC8]))  # pump, on, upright
    m.write(bytes([0x00, 0xB2, 0x05, 0x11]))  # page mode (reset): page 2, column 0x15
    m.write(bytes([0x40, 0x01, 0x80]))  # two columns: the top row of page 2, then its bottom row
    rows = m.screen()
    assert _pixel(rows, 0x15, 16) and _pixel(rows, 0x16, 23) and sum(map(int.bit_count, rows)) == 2
    m.write(bytes([0x00, 0x20, 0x01, 0x21, 10, 11, 0x22, 0, 1]))  # vertical, columns 10-11, pages 0-1
    m.write(bytes([0x40, 0x01, 0x01, 0x01, 0x01, 0x01]))  # down the pages, then the next column, wrapped
    rows = m.screen()
    assert [_pixel(rows, x, y) for x, y in ((10, 0), (10, 8), (11, 0), (11, 8))] == [1, 1, 1, 1]
    m.write(bytes([0x80, 0xA7]))  # inverted: every other pixel lit
    assert sum(map(int.bit_count, m.screen())) == 128 * 64 - 6
    m.write(bytes([0x80, 0xA6, 0x80, 0xA0, 0x80, 0xC0]))  # not inverted, mirrored both ways
    assert _pixel(m.screen(), 127 - 0x15, 63 - 16)


def test_the_model_refuses_what_is_not_a_control_byte():
    m = SSD1306Model()
    with pytest.raises(OSError):
        m.write(bytes([0x01, 0xAF]))


def test_a_panel_without_its_charge_pump_stays_dark():
    m = SSD1306Model()
    m.write(bytes([0x00, 0xAF, 0x20, 0x00]))
    m.write(b"\x40" + b"\xff" * 1024)
    assert set(m.screen()) == {0}


if __name__ == "__main__" and "--write" in sys.argv:
    for name, d in _states().items():
        if "rows" in d and name != "off":
            screen.image(bytes.fromhex(d["rows"]), 128, 64, 4).save(REFS / f"{name}.png")
            print(REFS / f"{name}.png")
