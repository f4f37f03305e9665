"""CLI: clear messages and exit codes for bad ports and values, never a traceback."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from loraspot.cli.main import main

LORASPOT = [sys.executable, "-m", "loraspot.cli"]


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*LORASPOT, *args], capture_output=True, text=True, timeout=60,
                          env=dict(os.environ, COLUMNS="200"))


def test_missing_port_is_a_message_and_exit_code(tmp_path):
    proc = run_cli("info", "--port", str(tmp_path / "ttyUSB7"))
    assert proc.returncode == 3
    assert "no such serial port" in proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout


def test_nothing_listening_at_url():
    proc = run_cli("info", "--port", "rfc2217://127.0.0.1:9")
    assert proc.returncode == 3
    assert "Traceback" not in proc.stderr


def test_unknown_board_for_sim(tmp_path):
    proc = run_cli("sim", "board", "--board", "nope", "--flash", str(tmp_path / "f.bin"))
    assert proc.returncode == 2 and "unknown board 'nope'" in proc.stderr


def test_ports_lists_json(tmp_path, monkeypatch):
    monkeypatch.setenv("LORASPOT_RUNTIME_DIR", str(tmp_path))
    proc = run_cli("--json", "ports")
    assert proc.returncode == 0
    assert isinstance(json.loads(proc.stdout), list)


def test_main_returns_codes_instead_of_exiting(tmp_path):
    assert main(["info", "--port", str(tmp_path / "none")]) == 3
    assert main(["config", "get"]) == 2  # usage error: --port missing
