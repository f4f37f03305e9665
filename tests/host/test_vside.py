"""The virtual board's side channel has one definition (sim/mp/_vside.py): what the board side
writes under MicroPython is what the supervisor parses under CPython, message by message, and no
other module of the board side spells a message itself."""

from __future__ import annotations

import re
import subprocess

from loraspot import resources
from loraspot.sim.mp import _vside
from loraspot.sim.vboard import micropython_command

WRITER = """
import sys
sys.path.insert(0, %r)
import _vside
f = open(%r, "wb")
_vside.open_channel(f)
_vside.tell(_vside.SCRIPTS)
_vside.tell(_vside.WDT, 5000)
_vside.tell(_vside.WDT)
side = _vside.begin(_vside.RTC)
side.write(b"00ff")
side.write(b"10")
_vside.end()
_vside.tell(_vside.SENSOR, b'{"name": "battery", "volts": 3.9}')
_vside.tell(_vside.HEAPSHORT, 96)
_vside.tell(_vside.RESET, _vside.SOFT)
_vside.tell(_vside.SOFTREBOOT, b"raw")
_vside.tell(_vside.DEEPSLEEP, 60000)
_vside.tell(_vside.POWERCUT, 12)
_vside.tell(_vside.NOFS)
f.close()
"""


def test_what_the_board_writes_the_supervisor_reads(tmp_path):
    out = tmp_path / "side"
    code = WRITER % (str(resources.sim_mp_dir()), str(out))
    subprocess.run([*micropython_command(), "-c", code], check=True, timeout=60)
    got = [_vside.parse(line) for line in out.read_bytes().splitlines()]
    assert got == [(_vside.SCRIPTS, ""), (_vside.WDT, "5000"), (_vside.WDT, ""), (_vside.RTC, "00ff10"),
                   (_vside.SENSOR, '{"name": "battery", "volts": 3.9}'), (_vside.HEAPSHORT, "96"),
                   (_vside.RESET, "soft"), (_vside.SOFTREBOOT, "raw"), (_vside.DEEPSLEEP, "60000"),
                   (_vside.POWERCUT, "12"), (_vside.NOFS, "")]


def test_no_board_module_spells_a_message_itself():
    for path in resources.sim_mp_dir().glob("*.py"):
        if path.name == "_vside.py":
            continue
        text = path.read_text()
        assert not re.search(r"\.write\(b\"(rtc|wdt|reset|sensor|scripts|nofs|powercut|deepsleep)", text), path
        assert "tell(b" not in text, path
