"""The long tier's soak: `loraspot sim soak` for one device-hour (5 nodes, 2 hotspots, speed 20)
as a user runs it, a real process; make bench runs it for 24 device-hours."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.long]


@pytest.mark.timeout(3600)
def test_one_device_hour_of_five_nodes_and_two_hotspots(tmp_path):
    # no wall-clock bound of its own: the run paces itself by the devices' clock; the timeout is
    # only there so that a hang ends the test (a device-hour takes ~3.5 minutes unloaded)
    proc = subprocess.run([sys.executable, "-m", "loraspot.cli", "--json", "sim", "soak", "--device-hours", "1"],
                          capture_output=True, text=True, timeout=3000, cwd=tmp_path)
    lines = [json.loads(ln) for ln in proc.stdout.splitlines() if ln.startswith("{")]
    rep = lines[-1]
    assert proc.returncode == 0, (rep.get("failures"), proc.stderr[-2000:])
    assert rep["event"] == "soak" and rep["ok"] and rep["failures"] == []
    assert rep["device_hours"] >= 1.0 and (rep["nodes"], rep["hotspots"], rep["speed"]) == (5, 2, 20)
    assert rep["resets"] == rep["fcnt_gaps"] == rep["events_lost"] == rep["unaccounted"] == 0
    # each board answered a request every device-minute: 7 boards for 60 minutes
    assert rep["console"] == {"asked": 7 * 60, "answered": 7 * 60}
    # every uplink accounted for: five nodes at one a minute, received or lost with a reason
    accounted = sum(rep["fates"].values()) + rep["in_flight_at_end"]
    assert rep["uplinks"] == accounted >= 5 * 50
    assert rep["fates"].get("received", 0) >= 0.9 * rep["uplinks"]
    assert [ln["device_minutes"] for ln in lines if ln["event"] == "progress"] == [*range(10, 61, 10)]
    band = rep["heap_band_b"]
    for name, h in rep["heap"].items():
        assert h["at_warmup_end"] - band <= h["min"] <= h["max"] <= h["at_warmup_end"] + band, name
