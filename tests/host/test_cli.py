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


def test_sim_board_rejects_bad_medium_and_position(tmp_path):
    for args, what in ((["--medium", "nohost"], "HOST:PORT"), (["--medium", "h:99999"], "HOST:PORT"),
                       (["--position", "1"], "X,Y"), (["--position", "a,b"], "X,Y"), (["--position", "1,nan"], "X,Y"),
                       (["--sensors", "bme280,co2"], "unknown virtual sensor 'co2'")):
        proc = run_cli("sim", "board", "--flash", str(tmp_path / "f.bin"), *args)
        assert proc.returncode == 2, args
        assert what in proc.stderr and "Traceback" not in proc.stderr


def test_sim_medium_serves_and_stops_cleanly():
    import signal
    import socket

    proc = subprocess.Popen([*LORASPOT, "--json", "sim", "medium", "--port", "0", "--speed", "3"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        first = json.loads(proc.stdout.readline())
        assert first["event"] == "serving" and first["speed"] == 3
        host, port = first["address"].rsplit(":", 1)
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.settimeout(5)
        s.sendto(b"R" + json.dumps({"id": "x", "speed": 3}).encode(), (host, int(port)))
        assert json.loads(s.recv(200)[1:]) == {"ok": True, "speed": 3}
        s.close()
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=10)
        last = json.loads(out.strip().splitlines()[-1])
        assert last["event"] == "stopped" and last["radios"] == 1
        assert proc.returncode == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


def test_sim_medium_port_busy_is_a_clear_error():
    import socket

    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    try:
        proc = run_cli("sim", "medium", "--port", str(s.getsockname()[1]))
        assert proc.returncode == 5
        assert "cannot listen on UDP" in proc.stderr and "Traceback" not in proc.stderr
    finally:
        s.close()
