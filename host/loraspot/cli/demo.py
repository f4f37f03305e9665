from __future__ import annotations

import click

from loraspot import device
from loraspot.cli import ui


@click.command("demo")
@click.option("--nodes", default=3, show_default=True, help="Virtual nodes with virtual sensors.")
@click.option("--speed", default=1, show_default=True, help="Device clocks run this many times faster.")
@click.option("--uplink-interval", default=30, show_default=True, help="Node uplink interval, device seconds.")
@click.option("--duration", default=0.0, help="Stop after this many seconds (0: until Ctrl-C).")
@click.pass_obj
def demo_cmd(ctx, nodes: int, speed: int, uplink_interval: int, duration: float) -> None:
    """The whole loop on this machine: virtual nodes with sensors join through a virtual hotspot
    to loraspot listen, which decodes their uplinks in a live table, until Ctrl-C."""
    import time

    from rich.live import Live
    from rich.table import Table

    from loraspot.cli.listen import _row
    from loraspot.sim.world import World, WorldOptions

    rows: list[tuple] = []
    log: list[str] = []

    def on_event(ev: dict) -> None:
        if ev["event"] == "frame":
            rows.append(_row({**ev, "gateways": [{"lsnr": ev["snr"], "rssi": ev["rssi"],
                                                  "datr": "SF7BW125"}] * ev.get("heard", 1)}))
        elif ev["event"] in ("join", "backhaul", "downlink"):
            log.append(f"{ev['device']}: {ev['event']} {ui.fields(ev, ('event', 'device'))}")

    def view(world: World) -> Table:
        t = Table(title=f"loraspot demo: {nodes} nodes, 1 hotspot, loraspot listen - {ui.fields(world.counts)}")
        for c in ("device", "type", "FCnt", "RSSI", "SNR", "SF", "heard by", "values"):
            t.add_column(c, overflow="fold")
        for r in rows[-15:]:
            t.add_row(*r)
        t.caption = "\n".join(log[-5:])
        return t

    opts = WorldOptions(nodes=nodes, hotspots=1, speed=speed, uplink_interval=uplink_interval, confirm_every=3)
    ctx.out.print("starting the RF medium, a hotspot and the nodes ...")
    with World(opts, on_event=on_event) as world:
        end = time.monotonic() + duration if duration > 0 else float("inf")
        try:
            with Live(view(world), console=ctx.out, refresh_per_second=4) as live:
                while time.monotonic() < end:
                    time.sleep(0.25)
                    live.update(view(world))
        except KeyboardInterrupt:
            pass
        ctx.out.print(ui.fields(world.summary(), ("event",)), highlight=False)


def describe(ev: device.Event) -> str:
    d = ev.data
    if ev.kind == "stats":
        return (f"up {d.get('up_ms', 0) / 1000:.1f} s, heap free {d.get('heap_free')} B, "
                f"frames in {d.get('rx_frames')}, bad {d.get('rx_bad')}")
    return ui.fields(d)


def register(cli: click.Group) -> None:
    cli.add_command(demo_cmd)
