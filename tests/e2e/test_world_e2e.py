"""`loraspot sim world`: a scriptable world as a user's CI would run it, as a real process."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from loraspot.provision.inventory import Inventory

pytestmark = pytest.mark.e2e


def test_sim_world_json_events_and_summary(tmp_path):
    inv = tmp_path / "inv.sqlite"
    proc = subprocess.run([sys.executable, "-m", "loraspot.cli", "--json", "sim", "world", "--nodes", "2",
                           "--hotspots", "1", "--duration", "12", "--speed", "10", "--uplink-interval", "30",
                           "--inventory", str(inv)], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    events = [json.loads(line) for line in proc.stdout.splitlines()]
    summary = events[-1]
    assert summary["event"] == "summary" and summary["joins"] == 2 and summary["drops"] == 0
    frames = [e for e in events if e["event"] == "frame" and e.get("type") == "uplink"]
    assert summary["uplinks_received"] == len(frames) >= 4
    assert summary["uplinks_sent"] >= summary["uplinks_received"] - 2  # a few may be in flight at the end
    assert {e["dev_eui"] for e in frames} == {e["dev_eui"] for e in events if e.get("type") == "join"}
    for f in frames:
        names = {v["name"] for v in f["decoded"]}
        assert {"temperature", "humidity", "barometer", "analog_in"} <= names, f["decoded"]
    assert any(e["event"] == "stats" and e["device"] == "hotspot0" for e in events)
    with Inventory(inv) as db:  # the keys are where other tools can read them
        assert {d.dev_eui for d in db.devices()} == {e["dev_eui"] for e in frames}
        assert all(len(db.secret(d.dev_eui, "app_key")) == 16 for d in db.devices())


def test_sim_world_refuses_bad_options(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "loraspot.cli", "sim", "world", "--forward", "tcp://x", "--duration",
                           "1"], capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert proc.returncode == 2 and "udp://HOST:PORT" in proc.stderr
