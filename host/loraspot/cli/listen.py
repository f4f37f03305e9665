"""`loraspot listen` and `loraspot hotspot region`."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import click

from loraspot.cli import options
from loraspot.cli.device import UDP_PORT
from loraspot.listen.server import Listener, ListenError, inventory_abp, inventory_keys, load_keys

COLUMNS = ("device", "type", "FCnt", "RSSI", "SNR", "SF", "heard by", "values")


def _row(f: dict) -> tuple[str, ...]:
    """One frame as the table's cells, plain text."""
    g = max(f["gateways"], key=lambda x: x["lsnr"])
    values = ""
    if f.get("decoded"):
        values = ", ".join(f"{v['name']}={v['value']}" for v in f["decoded"])
    elif f.get("error"):
        values = f"error: {f['error']}"
    down = f.get("downlink")
    if down and not down.get("sent"):  # the answer (Join-Accept, ack) had no way to the node
        values = (values + "; " if values else "") + f"error: no downlink: {down.get('error', 'not sent')}"
    return (f.get("dev_eui", "?"), f.get("type", "?"), str(f.get("fcnt", "")), str(g["rssi"]), f"{g['lsnr']:.1f}",
            g["datr"].split("BW")[0], str(len(f["gateways"])), values)


@click.command("listen")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--udp-port", "port", type=UDP_PORT, default=1700, show_default=True,
              help="UDP port of the Semtech packet forwarder protocol (0: any free one).")
@click.option("--keys", "keys_file", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="DevEUI/AppKey pairs (JSON object or CSV) instead of the inventory.")
@options.inventory("Inventory to take the AppKeys from (default: the user's).")
@click.option("--dedup-ms", default=200.0, show_default=True, help="Wait this long for copies from other hotspots.")
@click.option("--mqtt", "mqtt_url", default=None, metavar="mqtt://HOST:PORT",
              help="Also take hotspots' ChirpStack Gateway Bridge JSON from this MQTT broker.")
@click.option("--mqtt-prefix", default="eu868", show_default=True, help="Topic prefix of the hotspots' MQTT topics.")
@click.option("--region", default="EU868", show_default=True,
              help="Region of the hotspots: downlinks follow its RX1 and RX2 rules.")
@click.option("--duration", default=0.0, help="Stop after this many seconds (0: until Ctrl-C).")
@click.pass_obj
def listen_cmd(ctx, host: str, port: int, keys_file: Path | None, inventory: Path | str | None, dedup_ms: float,
               mqtt_url: str | None, mqtt_prefix: str, region: str, duration: float) -> None:
    """Receive from hotspots over Semtech UDP, answer joins, decrypt and decode uplinks; a live
    table (or one JSON object per frame with --json)."""
    keys = load_keys(keys_file) if keys_file else inventory_keys(inventory)
    # the inventory is followed as it grows: a node provisioned while this runs joins
    source = (lambda: load_keys(keys_file)) if keys_file else (lambda: inventory_keys(inventory))
    rows: list[tuple] = []
    live = not ctx.json and ctx.out.is_terminal  # a live table in a terminal; plain lines into a file or pipe

    def on_frame(f: dict) -> None:
        if ctx.json:
            click.echo(json.dumps(f, sort_keys=True))
        elif live:
            rows.append(_row(f))
            return
        else:
            click.echo("  ".join(f"{c}={v}" for c, v in zip(COLUMNS, _row(f), strict=True) if v))
        sys.stdout.flush()

    abp = {} if keys_file else inventory_abp(inventory)
    server = Listener(keys, host, port, dedup_ms, on_frame, mqtt=mqtt_url, mqtt_prefix=mqtt_prefix,
                      keys_source=source, region=region, abp=abp,
                      abp_source=None if keys_file else (lambda: inventory_abp(inventory)))
    end = time.monotonic() + duration if duration > 0 else float("inf")
    where = f"{host}:{server.address[1]}"
    try:
        if not live:
            if not ctx.json:
                click.echo(f"loraspot listen on {where} (Semtech UDP{', MQTT ' + mqtt_url if mqtt_url else ''}), "
                           f"{len(server.js.keys)} keys; Ctrl-C stops")
                sys.stdout.flush()
            while time.monotonic() < end:
                time.sleep(0.1)
        else:
            from rich.live import Live
            from rich.table import Table

            def table() -> Table:
                t = Table(title=f"loraspot listen on {where} ({len(server.js.keys)} keys) - "
                          f"{server.counts['frames']} frames, {len(server.gateways)} hotspot(s)")
                for c in COLUMNS:
                    t.add_column(c, overflow="fold")
                for r in rows[-20:]:
                    t.add_row(*r, style="red" if "error:" in r[-1] else None)
                return t

            with Live(table(), console=ctx.out, refresh_per_second=4) as live:
                while time.monotonic() < end:
                    time.sleep(0.25)
                    live.update(table())
    except KeyboardInterrupt:
        pass
    finally:
        server.close()


@click.group("hotspot")
def hotspot_group() -> None:
    """Hotspot helpers."""


@hotspot_group.command("region")
@click.option("--board", "board_id", default="virtual", show_default=True, help="Board profile (its radio band).")
@click.option("--region", default="EU868", show_default=True, help="Region the hotspot is in.")
@click.option("--sub-band", type=click.IntRange(1, 8), default=2, show_default=True, help="US915 sub-band.")
@click.option("--freq", type=int, default=None, help="The hotspot's channel in Hz (default: the region's first).")
@click.option("--sf", type=int, default=None, help="The hotspot's spreading factor (default 7).")
@click.option("--backhaul", type=click.Choice(["udp", "mqtt"]), default="udp", show_default=True,
              help="udp: through the ChirpStack Gateway Bridge (its TOML is written too); mqtt: direct.")
@click.option("--mqtt-server", default="tcp://localhost:1883", show_default=True,
              help="The MQTT broker ChirpStack (and the bridge) connect to.")
@click.option("--repeater", is_flag=True,
              help="Repeater-compatible payload sizes (at most 222 B): ChirpStack's repeater_compatible, the nodes' "
                   "config repeater.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Write the files into this directory instead of printing them.")
@click.pass_obj
def region_cmd(ctx, board_id: str, region: str, sub_band: int, freq: int | None, sf: int | None, backhaul: str,
               mqtt_server: str, repeater: bool, out_dir: Path | None) -> None:
    """The network-server files for the hotspot's single channel: ChirpStack v4's region file and
    enabled_regions line, the ChirpStack Gateway Bridge's TOML (UDP), and The Things Stack's plan
    (stock plan named; a custom plan and its index entry for self-hosted deployments)."""
    from loraspot.listen.region import RegionExportError, export

    try:
        out = export(board_id, region, freq, sf, backhaul=backhaul, mqtt_server=mqtt_server, sub_band=sub_band,
                     repeater=repeater)
    except RegionExportError as e:
        raise ListenError(str(e)) from None
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        for f in out["files"]:
            (out_dir / f["file"]).write_text(f["text"])
        out["written"] = str(out_dir)
    if ctx.json:
        ctx.emit(out)
        return
    import shutil
    import textwrap

    width = max(40, min(shutil.get_terminal_size((80, 24)).columns, 100))
    cs = out["chirpstack"]
    lines = [
        f"{out['region']} {out['frequency'] / 1e6:.3f} MHz SF{out['sf']} = DR{out['dr']}: ChirpStack channel "
        f"{cs['channel']}{' (an extra channel)' if cs['extra_channel'] else ''}, region id {cs['region_id']}, "
        f"MQTT topic prefix {cs['topic_prefix']}",
        f"downlinks: RX1 {out['rx1']['frequency'] / 1e6:.3f} MHz DR{out['rx1']['dr']}, "
        f"RX2 {out['rx2']['frequency'] / 1e6:.3f} MHz DR{out['rx2']['dr']}",
        "hotspot config: " + json.dumps(out["hotspot_config"]),
        "node config: " + json.dumps(out["node_config"]),
        "The Things Stack: " + out["tts"]["note"],
    ]
    for line in lines:  # comments, wrapped to the terminal (80 columns into a file or pipe)
        click.echo(textwrap.fill(line, width, initial_indent="# ", subsequent_indent="#   ", break_long_words=False,
                                 break_on_hyphens=False))
    for f in out["files"]:
        if out_dir is not None:
            click.echo(textwrap.fill(f"wrote {out_dir / f['file']} ({f['program']}: {f['where']})", width,
                                     subsequent_indent="    ", break_long_words=False, break_on_hyphens=False))
        else:
            click.echo(f"\n# ---- {f['program']}: {f['file']} ({f['where']})\n")
            click.echo(f["text"].rstrip("\n"))


def register(cli: click.Group) -> None:
    cli.add_command(listen_cmd)
    cli.add_command(hotspot_group)
