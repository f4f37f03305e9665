"""`loraspot hotspot region`: the ChirpStack region file and The Things Stack frequency plan for
the hotspot's single channel parse as TOML / YAML and carry that channel and data rate only."""

from __future__ import annotations

import json

import pytest
import tomllib
import yaml
from loraspot.cli.main import main
from loraspot.listen.region import RegionExportError, export


@pytest.mark.parametrize(("region", "freq", "sf", "dr", "index"), [
    ("EU868", None, 9, 3, 0), ("EU868", 868_500_000, 7, 5, 2), ("EU868", 867_100_000, 12, 0, None),
    ("US915", None, 7, 3, 0), ("AS923-1", 923_400_000, 10, 2, 1)])
def test_export_matches_the_single_channel(region, freq, sf, dr, index):
    out = export("virtual", region, freq, sf)
    f = out["frequency"]
    toml = tomllib.loads(out["chirpstack_toml"])["regions"][0]
    assert toml["common_name"] == region and toml["gateway"]["channels"] == [
        {"frequency": f, "bandwidth": 125000, "modulation": "LORA", "spreading_factors": [sf]}]
    net = toml["network"]
    assert (net["rx2_frequency"], net["rx2_dr"], net["min_dr"], net["max_dr"], net["adr_disabled"]) == (f, dr, dr, dr,
                                                                                                         True)
    if index is None:  # not a default channel: an extra one
        assert net["enabled_uplink_channels"] == [] and net["extra_channels"] == [
            {"frequency": f, "min_dr": dr, "max_dr": dr}]
    else:
        assert net["enabled_uplink_channels"] == [index] and "extra_channels" not in net
    plan = yaml.safe_load(out["ttn_frequency_plan_yaml"])
    assert plan["uplink-channels"] == plan["downlink-channels"] == [
        {"frequency": f, "min-data-rate": dr, "max-data-rate": dr, "radio": 0}]
    assert plan["rx2-channel"]["frequency"] == f and plan["rx2-default-data-rate"] == dr
    assert out["node_config"] == {"region": "SINGLE", "single_freq": f, "single_sf": sf}


def test_bad_requests_are_refused_with_the_reason():
    with pytest.raises(RegionExportError, match="outside the radio band"):
        export("virtual", "CN470")
    with pytest.raises(RegionExportError, match="outside EU868"):
        export("virtual", "EU868", 915_000_000)
    with pytest.raises(RegionExportError, match="unknown region"):
        export("virtual", "XX1")


def test_cli_prints_both_and_json(capsys):
    assert main(["hotspot", "region", "--region", "EU868", "--sf", "9"]) == 0
    text = capsys.readouterr().out
    assert "[[regions]]" in text and "rx2-default-data-rate: 3" in text
    assert main(["--json", "hotspot", "region", "--region", "EU868"]) == 0
    assert json.loads(capsys.readouterr().out)["dr"] == 5
    assert main(["hotspot", "region", "--region", "CN470"]) == 2
