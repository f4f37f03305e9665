"""Network-server settings for a single-channel hotspot, as the files the programs read:

- ChirpStack v4: a region file (`[[regions]]`, the keys of `chirpstack/src/config.rs`: Region,
  RegionGateway with its MQTT backend, GatewayChannel, RegionNetwork, ExtraChannel), the
  `enabled_regions` line of chirpstack.toml, and for a hotspot on Semtech UDP the ChirpStack
  Gateway Bridge's TOML (its `internal/config/config.go` keys) whose topic templates equal
  ChirpStack's own subscription for the region's prefix;
- The Things Stack: the stock frequency plan to use (the ids of the lorawan-frequency-plans
  index), and for self-hosted deployments a custom plan file with its index entry.

Channel numbers follow ChirpStack's: EU868 and AS923 number their default channels from 0 and
extra channels after them; US915 numbers 125 kHz channels from 902.3 MHz = 0 in 200 kHz steps
(64..71 are the 500 kHz ones); CN470 from 470.3 MHz = 0 in 200 kHz steps. Uplinks go on the
hotspot's channel and SF; downlinks follow the regional rules (RX1 on the channel's downlink
frequency, RX2 on the region's default), so standard nodes work as well as loraspot's."""

from __future__ import annotations

import tomli_w
import yaml

from loraspot import boards
from loraspot.errors import LoraspotError
from loraspot.resources import firmware_module

# ChirpStack's CommonName (lrwn/src/region/mod.rs)
CHIRPSTACK_NAMES = {"EU868": "EU868", "US915": "US915", "AS923-1": "AS923", "AS923-2": "AS923_2",
                    "AS923-3": "AS923_3", "AS923-4": "AS923_4", "CN470": "CN470"}
# The Things Stack band ids (frequency-plans.yml of TheThingsNetwork/lorawan-frequency-plans)
TTS_BANDS = {"EU868": "EU_863_870", "US915": "US_902_928", "AS923-1": "AS_923", "AS923-2": "AS_923_2",
             "AS923-3": "AS_923_3", "AS923-4": "AS_923_4", "CN470": "CN_470_510"}
TTS_BASE_FREQ = {"EU868": 868, "US915": 915, "CN470": 470}  # base-frequency of the index, MHz (AS923: 915)
# The stock single-channel plans of that index, by frequency
TTS_SINGLE = {868_100_000: "EU_868_1", 903_000_000: "US_903_0", 904_600_000: "US_904_6", 906_200_000: "US_906_2",
              907_800_000: "US_907_8", 909_400_000: "US_909_4", 911_000_000: "US_911_0", 912_600_000: "US_912_6",
              914_200_000: "US_914_2"}
# The stock plan of the region otherwise (a single-channel hotspot hears one of its channels)
TTS_REGION_PLANS = {"EU868": "EU_863_870", "AS923-1": "AS_923", "AS923-2": "AS_923_2", "AS923-3": "AS_923_3",
                    "AS923-4": "AS_923_4", "CN470": "CN_470_510_FSB_1"}
MQTT_SERVER = "tcp://localhost:1883"  # ChirpStack's own example value
UDP_BIND = "0.0.0.0:1700"


class RegionExportError(LoraspotError):
    exit_code = 2


def _region(name: str, subband: int = 2):
    if name.upper() == "SINGLE":
        raise RegionExportError(f"{name}: give the region the hotspot is in ({', '.join(CHIRPSTACK_NAMES)})")
    reg = firmware_module("spot/lorawan/region.py")
    try:
        return reg.get(name, subband)
    except reg.RegionError as e:
        if "unknown region" in str(e):  # the plans a hotspot stands in, not the node's SINGLE
            raise RegionExportError(f"unknown region {name!r} ({', '.join(CHIRPSTACK_NAMES)})") from None
        raise RegionExportError(str(e)) from None


def chirpstack_channel(r, freq: int) -> tuple[int, bool]:
    """ChirpStack's uplink channel index for a 125 kHz channel on freq, and whether it is an extra
    channel (one the region config adds after the defaults)."""
    if r.name in ("US915", "CN470"):
        first, count = (902_300_000, 64) if r.name == "US915" else (470_300_000, 96)
        i, rest = divmod(freq - first, 200_000)
        if rest or not 0 <= i < count:
            tts = TTS_SINGLE.get(freq)
            raise RegionExportError(
                f"{freq} Hz is not a {r.name} 125 kHz uplink channel ({first} Hz + n x 200 kHz, n = 0..{count - 1}); "
                f"{r.name} has no extra channels"
                + (f" (The Things Stack's single-channel plan {tts} uses it: register the gateway and devices with "
                   f"that plan there; ChirpStack cannot)" if tts else ""))
        return i, False
    defaults = [c[0] for c in r.channels]
    if freq in defaults:
        return defaults.index(freq), False
    return len(defaults), True


def _toml(doc: dict) -> str:
    return tomli_w.dumps(doc, indent=2)


def _topic_prefix(region_id: str) -> str:
    return region_id


def export(board_id: str, region: str, freq: int | None = None, sf: int | None = None, *,
           backhaul: str = "udp", mqtt_server: str = MQTT_SERVER, sub_band: int = 2, repeater: bool = False) -> dict:
    r = _region(region, sub_band)
    if backhaul not in ("udp", "mqtt"):
        raise RegionExportError(f"backhaul is udp or mqtt, not {backhaul!r}")
    profile = boards.get(board_id)
    lo, hi = (int(x * 1_000_000) for x in profile["radio"]["band_mhz"])
    if r.band[0] < lo or r.band[1] > hi:
        raise RegionExportError(f"region {r.name} is outside the radio band of board {board_id} "
                                f"({profile['radio']['band_mhz'][0]}-{profile['radio']['band_mhz'][1]} MHz)")
    freq = int(freq or r.channels[0][0])
    sf = int(sf or 7)
    if not r.band[0] <= freq <= r.band[1]:
        raise RegionExportError(f"{freq} Hz is outside {r.name} ({r.band[0]}-{r.band[1]} Hz)")
    drs = [i for i, d in enumerate(r.drs) if d == (sf, 125_000)]
    if not drs:
        raise RegionExportError(f"{r.name} has no 125 kHz data rate with SF{sf}")
    dr = drs[0]
    reg = firmware_module("spot/lorawan/region.py")
    try:  # the plan its nodes use: a channel inside a sub-band, an SF that carries a payload
        reg.get("SINGLE", sub_band, freq=freq, sf=sf, base=r.name)
    except reg.RegionError as e:
        raise RegionExportError(str(e)) from None
    index, extra = chirpstack_channel(r, freq)
    # AS923: the node starts with the downlink dwell time on (RX1 at DR2 at least), as the export tells ChirpStack
    rx1_freq, rx1_dr = r.rx1_freq_of(freq), r.rx1_dr(dr, 0, r.name.startswith("AS923"))
    rx2_freq, rx2_dr = r.rx2
    cs_name = CHIRPSTACK_NAMES[r.name]
    region_id = f"{cs_name.lower()}_{freq // 1000}_sf{sf}"
    prefix = _topic_prefix(region_id)
    described = f"loraspot single-channel hotspot, {freq / 1e6:.3f} MHz SF{sf}"

    network: dict = {
        "installation_margin": 10.0, "rx_window": 0, "rx1_delay": 1, "rx1_dr_offset": 0,
        "rx2_dr": rx2_dr, "rx2_frequency": rx2_freq, "rx2_prefer_on_rx1_dr_lt": 0, "rx2_prefer_on_link_budget": False,
        "downlink_tx_power": -1, "adr_disabled": True, "min_dr": dr, "max_dr": dr,
        "enabled_uplink_channels": [index],
        "rejoin_request": {"enabled": False, "max_count_n": 0, "max_time_n": 0},
        "class_b": {"ping_slot_dr": rx2_dr, "ping_slot_frequency": 0},
    }
    network["repeater_compatible"] = repeater  # the payload sizes the nodes assume (their config `repeater`)
    if r.name.startswith("AS923"):
        # a loraspot node starts as LoRaMac-node does: 400 ms dwell time up and down, MaxEIRP 16 dBm;
        # ChirpStack's defaults (false, false, 0 dBm) would make it send a TxParamSetupReq changing them
        network.update(uplink_dwell_time_400ms=True, downlink_dwell_time_400ms=True, dwell_time_400ms=True,
                       uplink_max_eirp=float(r.max_eirp))
    if extra:
        network["extra_channels"] = [{"frequency": freq, "data_rates": [dr]}]
    cs_region = {
        "id": region_id, "description": described, "common_name": cs_name,
        "user_info": f"Single-channel hotspots on {freq / 1e6:.3f} MHz SF{sf} (loraspot). MQTT topic prefix: {prefix}",
        "gateway": {
            "force_gws_private": False,
            "backend": {"enabled": "mqtt", "mqtt": {
                "topic_prefix": prefix, "share_name": "chirpstack", "server": mqtt_server, "username": "",
                "password": "", "qos": 0, "clean_session": False, "client_id": "", "keep_alive_interval": "30s",
                "ca_cert": "", "tls_cert": "", "tls_key": ""}},
            "channels": [{"frequency": freq, "bandwidth": 125000, "modulation": "LORA", "spreading_factors": [sf]}],
        },
        "network": network,
    }
    region_file = f"region_{region_id}.toml"
    files = [{
        "program": "ChirpStack v4", "file": region_file,
        "where": "ChirpStack's configuration directory (next to chirpstack.toml)",
        "text": f"# {region_file}: ChirpStack v4 region configuration for a {described}.\n"
                f"# Put it in ChirpStack's configuration directory and enable the region in chirpstack.toml.\n"
                + _toml({"regions": [cs_region]}),
    }, {
        "program": "ChirpStack v4", "file": "chirpstack.toml.snippet",
        "where": f"merge by hand into chirpstack.toml: add \"{region_id}\" to its [network] enabled_regions",
        "text": "# chirpstack.toml.snippet: merge into chirpstack.toml by hand (ChirpStack reads every .toml of its\n"
                "# configuration directory, so this is not one): a region is used only when its id is listed.\n"
                + _toml({"network": {"enabled_regions": [region_id]}}),
    }]
    if backhaul == "udp":
        bridge = {
            "general": {"log_level": 4},
            "backend": {"type": "semtech_udp", "semtech_udp": {"udp_bind": UDP_BIND}},
            "integration": {"marshaler": "protobuf", "mqtt": {
                "event_topic_template": prefix + "/gateway/{{ .GatewayID }}/event/{{ .EventType }}",
                "state_topic_template": prefix + "/gateway/{{ .GatewayID }}/state/{{ .StateType }}",
                "command_topic_template": prefix + "/gateway/{{ .GatewayID }}/command/#",
                "auth": {"type": "generic", "generic": {"servers": [mqtt_server], "username": "", "password": ""}}}},
        }
        files.append({
            "program": "ChirpStack Gateway Bridge", "file": "chirpstack-gateway-bridge.toml",
            "where": "the bridge's configuration file (e.g. /etc/chirpstack-gateway-bridge/)",
            "text": "# chirpstack-gateway-bridge.toml: receives the hotspot's Semtech UDP datagrams on port 1700\n"
                    f"# and publishes them under the topic prefix of region {region_id}.\n" + _toml(bridge),
        })

    # The Things Stack
    band = TTS_BANDS[r.name]
    stock = TTS_SINGLE.get(freq) if r.name in ("EU868", "US915") else None
    base_plan = TTS_REGION_PLANS.get(r.name) or f"US_902_928_FSB_{index // 8 + 1}"
    plan_id = f"{band}_LORASPOT_{freq // 1000}_SF{sf}"
    plan = {
        "band-id": band,
        "uplink-channels": [{"frequency": freq, "min-data-rate": dr, "max-data-rate": dr, "radio": 0}],
        "downlink-channels": [{"frequency": rx1_freq, "min-data-rate": rx1_dr, "max-data-rate": rx1_dr, "radio": 0}],
        "rx2-channel": {"frequency": rx2_freq, "min-data-rate": rx2_dr, "max-data-rate": rx2_dr, "radio": 0},
        "rx2-default-data-rate": rx2_dr,
        "max-eirp": min(r.max_eirp, profile["radio"]["max_power_dbm"]),
    }
    index_entry = [{"id": plan_id, "band-id": band, "name": f"loraspot single channel {freq / 1e6:.3f} MHz SF{sf}",
                    "base-frequency": TTS_BASE_FREQ.get(r.name, 915), "gateways": True, "file": f"{plan_id}.yml"}]
    files += [{
        "program": "The Things Stack (self-hosted)", "file": f"{plan_id}.yml",
        "where": "the frequency-plans directory (frequency-plans.config-source: directory)",
        "text": f"# {plan_id}.yml: custom frequency plan, for a self-hosted The Things Stack only\n"
                + yaml.safe_dump(plan, sort_keys=False),
    }, {
        "program": "The Things Stack (self-hosted)", "file": "frequency-plans.yml.snippet",
        "where": "merge by hand: append this entry to frequency-plans.yml, the index next to the plan file",
        "text": "# frequency-plans.yml.snippet: append to the index frequency-plans.yml (the plan's id belongs\n"
                "# there, not in the plan file)\n"
                + yaml.safe_dump(index_entry, sort_keys=False),
    }]
    others = ", ".join(f"{f / 1e6:.1f} MHz: {p}" for f, p in TTS_SINGLE.items() if r.band[0] <= f <= r.band[1])
    if stock:
        tts_note = (f"The Things Stack Cloud and The Things Network take only the plans of the lorawan-frequency-plans "
                    f"repository: use its single-channel plan {stock} for the gateway and the devices.")
    else:
        tts_note = (f"The Things Stack Cloud and The Things Network take only the plans of the lorawan-frequency-plans "
                    f"repository, which has no single-channel plan on {freq / 1e6:.3f} MHz. Use {base_plan} there "
                    f"(the hotspot hears only its one channel of it)"
                    + (f", or move the hotspot to a channel with a single-channel plan ({others})" if others else "")
                    + f". The custom plan {plan_id} is for self-hosted deployments.")
    hotspot_config = {"region": r.name, "single_freq": freq, "single_sf": sf, "backhaul": backhaul}
    if r.name == "US915":
        hotspot_config["sub_band"] = sub_band
    if backhaul == "mqtt":
        hotspot_config["mqtt_prefix"] = prefix
    else:
        hotspot_config["server_port"] = int(UDP_BIND.rsplit(":", 1)[1])
    return {"region": r.name, "board": board_id, "frequency": freq, "sf": sf, "dr": dr,
            "chirpstack": {"region_id": region_id, "common_name": cs_name, "channel": index, "extra_channel": extra,
                           "topic_prefix": prefix},
            "rx1": {"frequency": rx1_freq, "dr": rx1_dr}, "rx2": {"frequency": rx2_freq, "dr": rx2_dr},
            "tts": {"stock_plan": stock, "region_plan": base_plan, "custom_plan": plan_id, "note": tts_note},
            "hotspot_config": hotspot_config,
            "node_config": {"region": "SINGLE", "single_region": r.name, "single_freq": freq, "single_sf": sf,
                            **({"repeater": True} if repeater else {})},
            "files": files}
