"""`loraspot hotspot region`: the files handed to ChirpStack v4, its Gateway Bridge and The Things
Stack load in those programs. Every key and type is checked against the programs' own data models
and every channel number against ChirpStack's own region files (tests/data/networks, sources
named in its README)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import tomllib
import yaml
from loraspot.cli.main import main
from loraspot.listen.region import RegionExportError, export
from loraspot.resources import firmware_module

from tests.conftest import run_firmware_json

DATA = Path(__file__).parent.parent / "data" / "networks"
SCHEMA = json.loads((DATA / "chirpstack" / "schema.json").read_text())
BRIDGE = json.loads((DATA / "chirpstack" / "bridge.json").read_text())
TTS_INDEX = yaml.safe_load((DATA / "tts" / "frequency-plans.yml").read_text())
# the top-level keys of a plan file: the "File Format" section of the lorawan-frequency-plans README
TTS_PLAN_KEYS = {"band-id", "sub-bands", "uplink-channels", "downlink-channels", "lora-standard-channel",
                 "fsk-channel", "time-off-air", "dwell-time", "listen-before-talk", "radios", "clock-source",
                 "ping-slot", "ping-slot-default-data-rate", "rx2-channel", "rx2-default-data-rate", "max-eirp"}
TTS_CHANNEL_KEYS = {"frequency", "min-data-rate", "max-data-rate", "radio"}
INTS = {"u8": (0, 255), "u32": (0, 2**32 - 1), "usize": (0, 2**64 - 1), "i32": (-2**31, 2**31 - 1)}


def _check(value, kind, path):
    """value has the type ChirpStack's config.rs gives path (serde would refuse it otherwise)."""
    if isinstance(kind, dict):
        assert isinstance(value, dict), path
        for k, v in value.items():
            assert k in kind, f"{path}.{k} is not a key ChirpStack v4 knows"
            _check(v, kind[k], f"{path}.{k}")
    elif isinstance(kind, list):
        assert isinstance(value, list), path
        for i, v in enumerate(value):
            _check(v, kind[0], f"{path}[{i}]")
    elif kind in INTS:
        lo, hi = INTS[kind]
        assert isinstance(value, int) and not isinstance(value, bool) and lo <= value <= hi, path
    elif kind == "float":
        assert isinstance(value, (int, float)) and not isinstance(value, bool), path
    elif kind == "bool":
        assert isinstance(value, bool), path
    elif kind == "str":
        assert isinstance(value, str), path
    elif kind == "duration":  # humantime_serde
        assert isinstance(value, str) and re.fullmatch(r"\d+(ms|s|m|h)", value), path
    elif kind == "common_name":
        assert value in SCHEMA["common_names"], f"{path}: ChirpStack refuses common_name {value!r}"
    elif kind == "modulation":
        assert value in ("LORA", "FSK"), path
    else:
        raise AssertionError(kind)


def _bridge_keys(value, kind, path):
    if isinstance(kind, dict):
        for k, v in value.items():
            assert k in kind, f"{path}.{k} is not a Gateway Bridge key"
            _bridge_keys(v, kind[k], f"{path}.{k}")
    elif isinstance(kind, list) and kind and kind[0] in ("str",) and isinstance(value, list):
        assert all(isinstance(v, str) for v in value), path
    elif isinstance(kind, list):
        assert value in kind, f"{path}: {value!r} not one of {kind}"


def _chirpstack_numbering(common_name: str) -> tuple[dict[int, int], set[int]]:
    """frequency -> uplink channel index, from ChirpStack's own region files of that common name:
    the 125 kHz gateway channels in order, numbered by enabled_uplink_channels where the file has
    it (US915, CN470 sub-bands), else by their position (EU868, AS923: defaults then extras)."""
    table: dict[int, int] = {}
    extras: set[int] = set()
    for f in sorted((DATA / "chirpstack").glob("region_*.toml")):
        reg = tomllib.loads(f.read_text())["regions"][0]
        if reg["common_name"] != common_name:
            continue
        chans = [c["frequency"] for c in reg["gateway"]["channels"]
                 if c["modulation"] == "LORA" and c["bandwidth"] == 125000]
        numbers = reg["network"].get("enabled_uplink_channels") or list(range(len(chans)))
        table.update(zip(chans, numbers, strict=False))
        extras |= {c["frequency"] for c in reg["network"].get("extra_channels", [])}
    assert table, common_name
    return table, extras


@pytest.fixture
def cn470_board(monkeypatch):
    """No board profile has a 470 MHz radio: a virtual one that has, for CN470's files."""
    from loraspot import boards

    real = boards.get

    def get(board_id):
        p = real("virtual")
        if board_id == "virtual-470":
            p = {**p, "radio": {**p["radio"], "band_mhz": [410, 525]}}
        return p if board_id.startswith("virtual") else real(board_id)

    monkeypatch.setattr(boards, "get", get)
    return "virtual-470"


def _files(out) -> dict[str, str]:
    return {f["file"]: f["text"] for f in out["files"]}


def _hotspot_topics(prefix: str, gid: str) -> dict:
    """The topics the hotspot firmware itself uses for this prefix (its MQTT backhaul built under
    MicroPython, nothing sent)."""
    script = """
import json, sys
from spot.hotspot.mqtt import ChirpStackMqtt
a = json.loads(sys.stdin.read())
class Clock:
    def ticks_ms(self):
        return 0
class Hs:
    clock = Clock()
    console = None
m = ChirpStackMqtt(Hs(), bytes.fromhex(a["gid"]), "127.0.0.1", 1883, prefix=a["prefix"])
print(json.dumps({"up": m.t_up.decode(), "stats": m.t_stats, "ack": m.t_ack, "down": m.t_down.decode()}))
"""
    return run_firmware_json(script, {"prefix": prefix, "gid": gid})


def _matches(filt: str, topic: str) -> bool:
    """MQTT topic filter matching (+ one level, # the rest)."""
    f, t = filt.split("/"), topic.split("/")
    for i, part in enumerate(f):
        if part == "#":
            return True
        if i >= len(t) or (part != "+" and part != t[i]):
            return False
    return len(f) == len(t)


CASES = [("EU868", None, 9), ("EU868", 868_500_000, 7), ("EU868", 867_100_000, 12), ("US915", 903_900_000, 10),
         ("US915", 902_300_000, 7), ("US915", 914_900_000, 8), ("AS923-1", 923_400_000, 10), ("AS923-2", None, 9),
         ("AS923-3", None, 7), ("AS923-4", 917_500_000, 9), ("CN470", 486_300_000, 9), ("CN470", None, 12)]


@pytest.mark.parametrize(("region", "freq", "sf"), CASES)
@pytest.mark.parametrize("backhaul", ["udp", "mqtt"])
def test_chirpstack_region_file_loads_with_the_hotspots_channel(region, freq, sf, backhaul, cn470_board):
    out = export(cn470_board if region == "CN470" else "virtual", region, freq, sf, backhaul=backhaul)
    f, dr = out["frequency"], out["dr"]
    files = _files(out)
    rid = out["chirpstack"]["region_id"]
    doc = tomllib.loads(files[f"region_{rid}.toml"])
    assert list(doc) == ["regions"] and len(doc["regions"]) == 1
    reg = doc["regions"][0]
    _check(reg, SCHEMA["region"], "regions[0]")
    assert reg["id"] == rid and reg["common_name"] not in ("AS923-1",)
    # the enabled channel is the hotspot's under ChirpStack's numbering
    net = reg["network"]
    numbering, extras = _chirpstack_numbering(reg["common_name"])
    r = firmware_module("spot/lorawan/region.py").get(region)
    if f in numbering and f not in extras:  # a channel of the region itself
        assert net["enabled_uplink_channels"] == [numbering[f]] and "extra_channels" not in net
    else:  # an extra channel, numbered after the region's defaults (as in ChirpStack's own eu868 file)
        assert net["enabled_uplink_channels"] == [numbering.get(f, len(r.channels))]
        assert numbering.get(f, len(r.channels)) == len(r.channels)
        assert net["extra_channels"] == [{"frequency": f, "data_rates": [dr]}]
    assert net["enabled_uplink_channels"] != []  # empty would mean every channel
    # the node's own regime stated, so that ChirpStack does not move it (config.rs RegionNetwork; its
    # defaults are false and 0 dBm, which would make it send a TxParamSetupReq to 8 dBm and no dwell time)
    assert net["repeater_compatible"] is False
    if region.startswith("AS923"):
        assert (net["uplink_dwell_time_400ms"], net["downlink_dwell_time_400ms"], net["dwell_time_400ms"],
                net["uplink_max_eirp"]) == (True, True, True, 16.0)
    else:
        assert "dwell_time_400ms" not in net
    assert (net["min_dr"], net["max_dr"], net["adr_disabled"]) == (dr, dr, True)
    assert r.drs[dr] == (sf, 125000)
    # downlinks: the region's own RX1 and RX2 (a standard node knows nothing else before it joined)
    assert (net["rx1_dr_offset"], net["rx_window"]) == (0, 0)
    assert (net["rx2_frequency"], net["rx2_dr"]) == r.rx2
    assert reg["gateway"]["channels"] == [{"frequency": f, "bandwidth": 125000, "modulation": "LORA",
                                           "spreading_factors": [sf]}]
    # the MQTT backend section with the prefix the hotspot publishes under
    mqtt = reg["gateway"]["backend"]["mqtt"]
    prefix = mqtt["topic_prefix"]
    gid = "0011223344556677"
    sub = f"{prefix}/gateway/+/event/+"  # chirpstack/src/gateway/backend/mqtt.rs, prefix set
    # enabled regions
    enabled = tomllib.loads(files["chirpstack.toml.snippet"])
    _check(enabled, {"network": {"enabled_regions": ["str"]}}, "chirpstack.toml")
    assert enabled["network"]["enabled_regions"] == [rid]
    if backhaul == "mqtt":
        assert out["hotspot_config"]["mqtt_prefix"] == prefix
        topics = _hotspot_topics(out["hotspot_config"]["mqtt_prefix"], gid)
        assert all(_matches(sub, topics[k]) for k in ("up", "stats", "ack"))
        assert topics["down"] == f"{prefix}/gateway/{gid}/command/down"  # what ChirpStack publishes (mqtt.rs)
        assert "chirpstack-gateway-bridge.toml" not in files
    else:
        bridge = tomllib.loads(files["chirpstack-gateway-bridge.toml"])
        _bridge_keys(bridge, BRIDGE["keys"], "bridge")
        assert bridge["backend"]["type"] == "semtech_udp" and bridge["backend"]["semtech_udp"]["udp_bind"].endswith(
            ":1700")
        m = bridge["integration"]["mqtt"]
        for kind in ("up", "stats", "ack"):  # what the bridge publishes, ChirpStack subscribes to
            topic = m["event_topic_template"].replace("{{ .GatewayID }}", gid).replace("{{ .EventType }}", kind)
            assert _matches(sub, topic), topic
        down = f"{prefix}/gateway/{gid}/command/down"  # ChirpStack's command topic (mqtt.rs)
        assert _matches(m["command_topic_template"].replace("{{ .GatewayID }}", gid), down)
        assert bridge["integration"]["mqtt"]["auth"]["generic"]["servers"] == [mqtt["server"]]
        assert out["hotspot_config"]["server_port"] == 1700
    assert out["node_config"] == {"region": "SINGLE", "single_region": r.name, "single_freq": f, "single_sf": sf}
    for part in out["files"]:  # each file names its program and where it goes
        assert part["program"] and part["where"] and part["text"].startswith("# " + part["file"])
    # never a file named as a server's own configuration (copying --out over it would replace it)
    assert not {"chirpstack.toml", "frequency-plans.yml"} & set(files)


@pytest.mark.parametrize(("region", "freq", "sf"), CASES)
def test_things_stack_plan_and_index_entry(region, freq, sf, cn470_board):
    out = export(cn470_board if region == "CN470" else "virtual", region, freq, sf)
    files = _files(out)
    tts = out["tts"]
    entry = yaml.safe_load(files["frequency-plans.yml.snippet"])
    assert len(entry) == 1 and entry[0]["id"] == tts["custom_plan"] and entry[0]["file"] == f"{tts['custom_plan']}.yml"
    plan = yaml.safe_load(files[entry[0]["file"]])
    bands = {e["band-id"] for e in TTS_INDEX}
    ids = {e["id"] for e in TTS_INDEX}
    assert plan["band-id"] == entry[0]["band-id"] and plan["band-id"] in bands
    assert set(plan) <= TTS_PLAN_KEYS and "id" not in plan
    assert entry[0]["base-frequency"] in {e["base-frequency"] for e in TTS_INDEX}
    f, dr = out["frequency"], out["dr"]
    for key in ("uplink-channels", "downlink-channels"):
        assert all(set(c) == TTS_CHANNEL_KEYS for c in plan[key])
    assert plan["uplink-channels"] == [{"frequency": f, "min-data-rate": dr, "max-data-rate": dr, "radio": 0}]
    assert plan["downlink-channels"][0]["frequency"] == out["rx1"]["frequency"]
    assert (plan["rx2-channel"]["frequency"], plan["rx2-default-data-rate"]) == (out["rx2"]["frequency"],
                                                                                out["rx2"]["dr"])
    # the stock plan named for TTS Cloud / TTN exists in the index, in the same band
    named = tts["stock_plan"] or tts["region_plan"]
    assert named in ids
    assert {e["band-id"] for e in TTS_INDEX if e["id"] == named} == {plan["band-id"]}
    assert named in tts["note"]
    assert tts["stock_plan"] or (tts["custom_plan"] in tts["note"] and "self-hosted" in tts["note"])


def test_stock_single_channel_plans_are_named_where_they_exist():
    assert export("virtual", "EU868", 868_100_000, 9)["tts"]["stock_plan"] == "EU_868_1"
    # TTS's US single-channel plans sit on the 500 kHz channels' frequencies, which ChirpStack
    # numbers as 500 kHz channels: said, not exported
    with pytest.raises(RegionExportError, match="single-channel plan US_904_6 uses it"):
        export("virtual", "US915", 904_600_000, 10)
    us = export("virtual", "US915", 903_900_000, 10)
    assert us["tts"]["stock_plan"] is None and us["tts"]["region_plan"] == "US_902_928_FSB_2"
    assert "904.6 MHz: US_904_6" in us["tts"]["note"]


def test_us915_rx1_is_the_regional_downlink_channel():
    out = export("virtual", "US915", 903_900_000, 10)  # channel 8, DR0
    assert out["chirpstack"]["channel"] == 8
    assert out["rx1"] == {"frequency": 923_300_000, "dr": 10} and out["rx2"] == {"frequency": 923_300_000, "dr": 8}
    out = export("virtual", "US915", 905_300_000, 7)  # channel 15, DR3
    assert out["rx1"] == {"frequency": 923_300_000 + 7 * 600_000, "dr": 13}


def test_repeater_setting_reaches_chirpstack_and_the_nodes():
    """One setting on both sides: ChirpStack's repeater_compatible (config.rs RegionNetwork) picks its
    222-byte tables (lrwn cn470.rs/eu868.rs), the nodes' config repeater picks the same."""
    for repeater in (False, True):
        out = export("virtual", "EU868", 868_100_000, 9, repeater=repeater)
        doc = tomllib.loads(_files(out)[f"region_{out['chirpstack']['region_id']}.toml"])
        assert doc["regions"][0]["network"]["repeater_compatible"] is repeater
        assert out["node_config"].get("repeater", False) is repeater
    r = firmware_module("spot/lorawan/region.py").get("EU868")
    r.repeater = True
    assert r.max_payload(5) == 222


def test_bad_requests_are_refused_with_the_reason():
    with pytest.raises(RegionExportError, match="outside the radio band"):
        export("virtual", "CN470")
    with pytest.raises(RegionExportError, match="outside EU868"):
        export("virtual", "EU868", 915_000_000)
    with pytest.raises(RegionExportError, match="unknown region"):
        export("virtual", "XX1")
    with pytest.raises(RegionExportError, match="not a US915 125 kHz uplink channel"):
        export("virtual", "US915", 903_950_000)
    with pytest.raises(RegionExportError, match="give the region"):
        export("virtual", "SINGLE")
    # RP002 / ETSI EN 300 220 (LoRaMac-node RegionEU868.c VerifyRfFreq): 869.2-869.4 MHz is in no sub-band
    with pytest.raises(RegionExportError, match="in no sub-band of EU868"):
        export("virtual", "EU868", 869_300_000)
    # AS923 with the 400 ms uplink dwell time: DR0/DR1 (SF12/SF11) carry no payload (MaxPayloadOfDatarateDwell1)
    with pytest.raises(RegionExportError, match="no payload at SF12: use SF10 or faster"):
        export("virtual", "AS923-1", 923_200_000, 12)


def test_cli_prints_each_file_named_and_writes_them(capsys, tmp_path):
    assert main(["hotspot", "region", "--region", "EU868", "--sf", "9"]) == 0
    text = capsys.readouterr().out
    for name in ("region_eu868_868100_sf9.toml", "chirpstack.toml.snippet", "chirpstack-gateway-bridge.toml",
                 "frequency-plans.yml.snippet", "EU_868_1"):
        assert name in text
    assert main(["--json", "hotspot", "region", "--region", "AS923-1", "--backhaul", "mqtt"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["chirpstack"]["common_name"] == "AS923" and out["dr"] == 5
    assert main(["hotspot", "region", "--region", "US915", "--freq", "903900000", "--sf", "10",
                 "--out", str(tmp_path / "cfg")]) == 0
    written = {p.name for p in (tmp_path / "cfg").iterdir()}
    assert "region_us915_903900_sf10.toml" in written and "chirpstack-gateway-bridge.toml" in written
    assert tomllib.loads((tmp_path / "cfg" / "region_us915_903900_sf10.toml").read_text())["regions"][0][
        "network"]["enabled_uplink_channels"] == [8]
    assert main(["hotspot", "region", "--region", "CN470"]) == 2
