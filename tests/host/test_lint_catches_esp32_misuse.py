"""`make lint` type-checks firmware against the ESP32 port's API (micropython-esp32-stubs)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT

PYRIGHT = Path(sys.executable).with_name("pyright")
STUBS = ROOT / ".venv" / "esp32-stubs"


def test_pyright_flags_calls_the_esp32_port_does_not_have(tmp_path):
    bad = tmp_path / "firmware" / "bad.py"
    bad.parent.mkdir()
    bad.write_text(
        "import esp32\nimport network\n\n"
        "wlan = network.WLAN(network.STA_IF)\n"
        "wlan.connect_forever()\n"  # no such method
        "esp32.NVS('loraspot').set_i32('fcnt', 'seven')\n"  # wrong argument type
        "ok = esp32.NVS('loraspot').get_i32('fcnt')\n"
    )
    config = json.loads((ROOT / "pyrightconfig.json").read_text())
    config.update(typeshedPath=str(STUBS), stubPath=str(STUBS), extraPaths=[])
    (tmp_path / "pyrightconfig.json").write_text(json.dumps(config))
    proc = subprocess.run([str(PYRIGHT), "-p", str(tmp_path / "pyrightconfig.json"), "--outputjson"],
                          capture_output=True, text=True, timeout=300, cwd=tmp_path)
    report = json.loads(proc.stdout)
    lines = sorted({d["range"]["start"]["line"] + 1 for d in report["generalDiagnostics"] if d["severity"] == "error"})
    assert lines == [5, 6], report["generalDiagnostics"]
