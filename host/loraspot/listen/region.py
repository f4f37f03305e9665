"""Network-server settings that match a single-channel hotspot: a ChirpStack v4 region file (TOML,
the `[[regions]]` format of ChirpStack's region_*.toml) and a The Things Stack frequency plan (the
YAML of the lorawan-frequency-plans repository), both with the one uplink channel and RX2 on it,
as the `SINGLE` plan of the node firmware expects (docs/single-channel.md)."""

from __future__ import annotations

from loraspot import boards
from loraspot.errors import LoraspotError
from loraspot.resources import firmware_module


class RegionExportError(LoraspotError):
    exit_code = 2


def _region(name: str):
    reg = firmware_module("spot/lorawan/region.py")
    try:
        return reg.get(name)
    except reg.RegionError as e:
        raise RegionExportError(str(e)) from None


def export(board_id: str, region: str, freq: int | None = None, sf: int | None = None) -> dict:
    r = _region(region)
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
    defaults = [c[0] for c in r.channels]
    index = defaults.index(freq) if freq in defaults else None
    enabled = f"[{index}]" if index is not None else "[]"
    extra = "" if index is not None else (
        f"\n    [[regions.network.extra_channels]]\n    frequency={freq}\n    min_dr={dr}\n    max_dr={dr}\n")
    name = f"{r.name.lower().replace('-', '_')}_single"
    toml = f"""[[regions]]
  name="{name}"
  common_name="{r.name}"

  [regions.gateway]
    force_gws_private=false

    [regions.gateway.backend]
      enabled="semtech_udp"

    [[regions.gateway.channels]]
      frequency={freq}
      bandwidth=125000
      modulation="LORA"
      spreading_factors=[{sf}]

  [regions.network]
    installation_margin=10
    rx_window=0
    rx1_delay=1
    rx1_dr_offset=0
    rx2_dr={dr}
    rx2_frequency={freq}
    downlink_tx_power=14
    adr_disabled=true
    min_dr={dr}
    max_dr={dr}
    enabled_uplink_channels={enabled}
{extra}"""
    plan_id = f"{r.name.replace('-', '_')}_SINGLE_{freq // 1000}_SF{sf}"
    yaml = f"""# loraspot single-channel hotspot: {freq / 1e6:.3f} MHz, SF{sf} (DR{dr})
id: {plan_id}
band-id: {r.name.replace('-', '_')}
uplink-channels:
- frequency: {freq}
  min-data-rate: {dr}
  max-data-rate: {dr}
  radio: 0
downlink-channels:
- frequency: {freq}
  min-data-rate: {dr}
  max-data-rate: {dr}
  radio: 0
rx2-channel:
  frequency: {freq}
  min-data-rate: {dr}
  max-data-rate: {dr}
  radio: 0
rx2-default-data-rate: {dr}
max-eirp: {min(r.max_eirp, profile['radio']['max_power_dbm'])}
radios:
- enable: true
  chip-type: SX1276
  frequency: {freq}
  tx:
    min-frequency: {r.band[0]}
    max-frequency: {r.band[1]}
"""
    return {"region": r.name, "board": board_id, "frequency": freq, "sf": sf, "dr": dr,
            "hotspot_config": {"region": r.name, "single_freq": freq, "single_sf": sf},
            "node_config": {"region": "SINGLE", "single_freq": freq, "single_sf": sf},
            "chirpstack_toml": toml, "ttn_frequency_plan_yaml": yaml}
