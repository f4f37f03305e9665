"""Nothing the user asked for is ever cut: into a file or pipe (full width, plain lines), in a
terminal of 80 or 40 columns (tables fold or become records), in the monitor at 80x24; and human
output shows no Python reprs."""

from __future__ import annotations

import fcntl
import os
import pty
import re
import select
import struct
import subprocess
import sys
import termios
import threading
import time
from collections import deque
from types import SimpleNamespace

import pytest
from loraspot.cli import ui
from loraspot.monitor.fleet import DeviceState
from loraspot.provision.inventory import Inventory
from rich.console import Console

MASTER = "5a" * 32
LORASPOT = [sys.executable, "-m", "loraspot"]


def _in_terminal(args: list[str], cols: int, rows: int = 24, env: dict | None = None) -> str:
    """Run the CLI in a pseudo-terminal of cols x rows; what it printed."""
    pid, fd = pty.fork()
    if pid == 0:
        os.execve(sys.executable, [sys.executable, "-m", "loraspot", *args], env or dict(os.environ))
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
    out = b""
    end = time.monotonic() + 60
    while time.monotonic() < end:
        if select.select([fd], [], [], 0.2)[0]:
            try:
                chunk = os.read(fd, 65536)
            except OSError:
                break
            if not chunk:
                break
            out += chunk
    os.waitpid(pid, 0)
    return re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", out.decode(errors="replace").replace("\r", ""))  # colours off


@pytest.fixture
def inventory(tmp_path, monkeypatch):
    monkeypatch.setenv("LORASPOT_MASTER_KEY", MASTER)
    path = tmp_path / "inv.sqlite"
    with Inventory(path) as inv:
        for n in range(2):
            eui = f"70B3D57ED00012{n:02X}"
            inv.register(eui, f"24DCC3A1B2{n:02X}", role="node", board="ttgo-lora32-v2.1",
                         name=f"a-rather-long-name-for-node-{n}", region="SINGLE", state="provisioned")
            inv.set_secret(eui, "app_key", bytes([n + 1]) * 16)
            inv.set_secret(eui, "admin_key", bytes([n + 7]) * 32)
    return path


def test_into_a_pipe_nothing_is_cut(inventory):
    env = dict(os.environ, COLUMNS="40")  # ignored when not a terminal: the data is what counts
    shown = subprocess.run([*LORASPOT, "devices", "--inventory", str(inventory), "show", "--reveal-keys",
                            "70B3D57ED0001200"], capture_output=True, text=True, env=env, timeout=60)
    assert shown.returncode == 0 and (bytes([7]) * 32).hex().upper() in shown.stdout
    listed = subprocess.run([*LORASPOT, "devices", "--inventory", str(inventory), "list"], capture_output=True,
                            text=True, env=env, timeout=60)
    assert "…" not in listed.stdout
    for n in range(2):
        assert f"70B3D57ED00012{n:02X}" in listed.stdout and f"a-rather-long-name-for-node-{n}" in listed.stdout


@pytest.mark.parametrize("cols", [40, 80])
def test_in_a_narrow_terminal_nothing_is_cut(inventory, cols):
    env = dict(os.environ, LORASPOT_MASTER_KEY=MASTER)
    listed = _in_terminal(["devices", "--inventory", str(inventory), "list"], cols, env=env)
    assert "…" not in listed, listed
    flat = "".join(listed.split())
    for n in range(2):  # a record per device when the table does not fit: each value whole
        assert f"70B3D57ED00012{n:02X}" in flat and f"a-rather-long-name-for-node-{n}" in flat
    shown = _in_terminal(["devices", "--inventory", str(inventory), "show", "--reveal-keys", "70B3D57ED0001201"],
                         cols, env=env)
    assert (bytes([8]) * 32).hex().upper() in "".join(shown.split())  # the terminal folds it; no character lost


def _fleet(n: int) -> SimpleNamespace:
    devices = {}
    for i in range(n):
        d = DeviceState(device=f"24dcc3a1b2{i:02x}", port=f"/dev/ttyUSB{i}", board="tbeam-v1.1-sx1262",
                        role="hotspot" if i == 0 else "node", state="live", up_ms=3_600_000 * i, heap_free=61_000,
                        rssi=-97.0, snr=7.5, rx=1200, forwarded=1199, dropped=1, uplinks=42, duty_left_ms=31_500,
                        backhaul="up", last_error=f"radio: RX timeout on 868.1 MHz after 3 retries (device {i})",
                        events=500, gaps=i)
        devices[d.device] = d
    log = deque((time.time(), f"dev{i}", f"a log line of some length, number {i}, " * 2) for i in range(30))
    fleet = SimpleNamespace(devices=devices, lock=threading.Lock(), log=log)
    return SimpleNamespace(fleet=fleet, records=1234, overflow=lambda: 0)


@pytest.mark.parametrize(("width", "height", "devices"), [(80, 24, 3), (40, 24, 3), (80, 24, 30)])
def test_the_monitor_fits_its_terminal(width, height, devices):
    from loraspot.monitor.view import render

    mon = _fleet(devices)
    console = Console(width=width, height=height, record=True, force_terminal=True, color_system=None)
    console.print(render(mon, width=width, height=height))
    text = console.export_text()
    lines = text.rstrip("\n").split("\n")
    assert len(lines) <= height, text
    assert all(len(line) <= width for line in lines)
    assert "…" not in text
    shown = [d for d in mon.fleet.devices if d.upper() in text]
    assert len(shown) == min(devices, height - 8) and shown == sorted(mon.fleet.devices)[:len(shown)]
    if len(shown) < devices:
        assert f"{devices - len(shown)} more device(s)" in text


def test_human_output_has_no_python_reprs():
    assert ui.human(False) == "no" and ui.human(None) == "-"
    decoded = [{"channel": 1, "type": 103, "name": "temperature", "value": 21.5},
               {"channel": 2, "type": 104, "name": "humidity", "value": 40.0}]
    assert ui.fields({"event": "frame", "decoded": decoded}, ("event",)) == "decoded=temperature=21.5; humidity=40.0"
    out = subprocess.run([*LORASPOT, "decode", "40F17DBE49000300012A3518AF"], capture_output=True, text=True,
                         timeout=60).stdout
    assert "False" not in out and "True" not in out and "{" not in out and "adr: no" in out
