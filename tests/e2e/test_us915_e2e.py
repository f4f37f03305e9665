"""A US915 single-channel hotspot and node in the simulator, set up with exactly what
`loraspot hotspot region` prints: the node joins on 903.9 MHz and hears its Join-Accept and the
acknowledgements of confirmed uplinks in RX1 on 923.3 MHz at 500 kHz, as ChirpStack would send
them by the regional rules."""

from __future__ import annotations

import queue

import pytest
from loraspot.listen.region import export
from loraspot.sim.world import World, WorldOptions

pytestmark = pytest.mark.e2e


def test_us915_join_and_downlinks_on_the_regional_rx1_channel():
    events: queue.Queue = queue.Queue()
    opts = WorldOptions(nodes=1, hotspots=1, region="US915", speed=10, uplink_interval=30, confirm_every=1)
    printed = export("virtual", "US915", 903_900_000, 7)
    with World(opts, on_event=events.put) as world:
        assert world.settings == printed  # the world runs on the printed settings
        joins, acked = [], []
        while not acked:
            ev = events.get(timeout=120)  # a bound for a broken run, not a measure of speed
            if ev["event"] == "frame" and ev.get("type") == "join":
                joins.append(ev)
            elif ev["event"] == "downlink" and ev.get("ack"):
                acked.append(ev)
    assert world.counts["joins"] >= 1 and world.counts["uplinks_received"] >= 1
    rx1 = printed["rx1"]
    assert rx1 == {"frequency": 923_300_000, "dr": 13}  # channel 8, DR3 -> DR13 = SF7 / 500 kHz
    for j in joins:
        assert j["downlink"]["sent"] and j["downlink"]["freq"] == rx1["frequency"]
        assert j["downlink"]["datr"] == "SF7BW500"
    assert acked[0]["window"] == 1  # heard in RX1, on the regional downlink channel
    assert printed["node_config"] == {"region": "SINGLE", "single_region": "US915", "single_freq": 903_900_000,
                                      "single_sf": 7}
