"""CLI: clear messages and exit codes for bad ports and values, never a traceback."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from loraspot.cli.main import main
from loraspot.provision.inventory import Inventory

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
    assert main(["config", "get", "--port"]) == 2  # usage error: --port without its value


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

    proc = subprocess.Popen([*LORASPOT, "--json", "sim", "medium", "--udp-port", "0", "--speed", "3"],
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
        proc = run_cli("sim", "medium", "--udp-port", str(s.getsockname()[1]))
        assert proc.returncode == 5
        assert "cannot listen on UDP" in proc.stderr and "Traceback" not in proc.stderr
    finally:
        s.close()


def _bad_inputs(tmp_path) -> list[tuple[list[str], int]]:
    """Each input once ended in a traceback (or was accepted): (arguments, exit code)."""
    rand = tmp_path / "rand.bin"
    rand.write_bytes(bytes(range(256)) * 12)
    (tmp_path / "bad.json").write_text("{bad")
    (tmp_path / "list.json").write_text("[1, 2]")
    (tmp_path / "hdr.sqlite").write_bytes(b"SQLite format 3\0" + os.urandom(200))
    good = tmp_path / "good.sqlite"
    with Inventory(good):  # made as provisioning makes it
        pass
    assert main(["devices", "--inventory", str(good), "list"]) == 0
    trunc = tmp_path / "trunc.sqlite"
    trunc.write_bytes(good.read_bytes()[:100])
    rec = tmp_path / "m.jsonl"
    rec.write_text(json.dumps({"device": "a", "kind": "stats", "seq": 1, "t": 0, "data": {}, "host_time": 1}) + "\n")
    nowhere = tmp_path / "missing-dir" / "out"
    (tmp_path / "ttyFAKE").touch()  # a port that exists (a missing one is refused first, exit 3)
    port = str(tmp_path / "ttyFAKE")
    return [
        (["info", "--port", str(tmp_path / "ttyNOPE")], 3),
        (["flash", "-p", str(tmp_path / "ttyNOPE")], 3),
        (["flash", "--config", str(tmp_path / "bad.json"), "--port", port], 2),
        (["flash", "--config", str(tmp_path / "list.json"), "--port", port], 2),
        (["flash", "--config", str(rand), "--port", port], 2),
        (["devices", "--inventory", str(rand), "list"], 6),
        (["devices", "--inventory", str(tmp_path / "hdr.sqlite"), "list"], 6),
        (["devices", "--inventory", str(trunc), "list"], 6),
        (["devices", "--inventory", str(good), "export", "--format", "csv", "--out", str(nowhere)], 2),
        (["devices", "--inventory", str(good), "backup", str(nowhere)], 6),
        (["monitor", "--port", port, "--record", str(nowhere), "--duration", "1"], 2),
        (["monitor", "--port", port, "--db", str(nowhere), "--duration", "1"], 2),
        (["monitor", "--port", port, "--db", str(rand), "--duration", "1"], 2),
        (["monitor", "--port", port, "--mqtt", "mqtt://127.0.0.1:1", "--duration", "1"], 2),
        (["report", str(rand), "--out", str(tmp_path / "r.html")], 2),
        (["report", str(rec), "--out", str(nowhere)], 2),
        (["listen", "--keys", str(rand), "--udp-port", "0"], 2),
        (["listen", "--udp-port", "99999"], 2),
        (["provision", "--port", port, "--role", "node", "--vendor-euis", str(rand), "--inventory", str(good)], 7),
        (["decode", "40" + "00" * 299], 2),
        (["info", "--port", port, "--baud", "0"], 2),
    ]


def test_bad_input_is_one_line_and_its_exit_code(tmp_path, capsys, monkeypatch):
    """Called in-process: an exception that escaped main() would fail the test with its traceback."""
    monkeypatch.setenv("LORASPOT_MASTER_KEY", "5a" * 32)
    monkeypatch.setenv("LORASPOT_RUNTIME_DIR", str(tmp_path / "run"))
    for args, code in _bad_inputs(tmp_path):
        capsys.readouterr()
        assert main(args) == code, args
        err = capsys.readouterr().err.strip()
        assert err and "Traceback" not in err, (args, err)
        if not err.startswith(("Usage:", "Try ")):  # click's usage errors come with their usage line
            assert len(err.splitlines()) == 1, (args, err)
    assert not (tmp_path / "missing-dir").exists()
