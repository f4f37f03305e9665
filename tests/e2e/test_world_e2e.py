"""`loraspot sim world`: a scriptable world as a user's CI would run it, as a real process."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest
from loraspot.listen.server import Listener, inventory_keys
from loraspot.provision.inventory import Inventory

from tests.broker import Broker

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
    assert proc.returncode == 2 and "udp://HOST:PORT or mqtt://HOST:PORT" in " ".join(proc.stderr.split())


def test_sim_world_forwards_to_an_outside_broker_with_keys_in_the_inventory(tmp_path):
    """--forward mqtt://: the world's hotspots publish to a broker; an outside network server (here
    listen, started by the test) takes the keys from the inventory the world wrote."""
    broker = Broker(tmp_path)
    inv = tmp_path / "inv.sqlite"
    frames: list[dict] = []
    proc = subprocess.Popen([sys.executable, "-m", "loraspot.cli", "--json", "sim", "world", "--nodes", "2",
                             "--duration", "14", "--speed", "10", "--uplink-interval", "30", "--inventory", str(inv),
                             "--forward", broker.url], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=tmp_path)
    ls = None
    try:
        end = time.monotonic() + 20
        keys: dict = {}
        while len(keys) < 2 and time.monotonic() < end:
            time.sleep(0.1)
            if inv.exists():
                try:
                    keys = inventory_keys(inv)
                except Exception:  # written right now
                    keys = {}
        ls = Listener(keys, port=0, dedup_ms=20, on_frame=frames.append, mqtt=broker.url, udp=False)
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
        if ls is not None:
            ls.close()
        broker.stop()
    assert proc.returncode == 0, err[-2000:]
    summary = json.loads(out.splitlines()[-1])
    assert summary["joins"] == 2 and summary["uplinks_sent"] >= 4, summary
    ups = [f for f in frames if f.get("type") == "uplink" and "error" not in f]
    assert {f["dev_eui"] for f in ups} == set(keys) and ls.counts["malformed"] == 0
