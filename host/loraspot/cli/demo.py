from __future__ import annotations

import tempfile
from pathlib import Path

import click

from loraspot import device
from loraspot.sim.vboard import BoardOptions, VirtualBoard


@click.command("demo")
@click.option("--stats-interval", default=5, show_default=True, help="Seconds between the board's stats events.")
@click.pass_obj
def demo_cmd(ctx, stats_interval: int) -> None:
    """Boot a virtual board and show its hello and live events until Ctrl-C."""
    with tempfile.TemporaryDirectory(prefix="loraspot-demo-") as tmp:
        board = VirtualBoard(BoardOptions(flash=Path(tmp) / "flash.bin", register=True))
        info = board.start()
        try:
            ctx.out.print(f"[bold]virtual board[/] {info['id']} on {info['pty'] or info['url']}")

            def show(ev: device.Event) -> None:
                ctx.out.print(f"[cyan]{ev.kind:>6}[/] #{ev.seq:<4} {describe(ev)}", highlight=False)

            client, hello = device.connect(info["url"], on_event=show,
                                           on_log=lambda line: ctx.out.print(f"[dim]{line}[/]", highlight=False))
            with client:
                ctx.out.print({k: hello[k] for k in ("id", "board", "fw", "role", "reset", "boot")})
                device.config_set(client, {"stats_interval": stats_interval})
                ctx.out.print(f"live events every {stats_interval} s (Ctrl-C to stop)")
                while True:
                    client.wait_event(timeout=3600)
        except KeyboardInterrupt:
            pass
        finally:
            board.stop()


def describe(ev: device.Event) -> str:
    d = ev.data
    if ev.kind == "stats":
        return (f"up {d.get('up_ms', 0) / 1000:.1f} s, heap free {d.get('heap_free')} B, "
                f"frames in {d.get('rx_frames')}, bad {d.get('rx_bad')}")
    return " ".join(f"{k}={v}" for k, v in d.items())


def register(cli: click.Group) -> None:
    cli.add_command(demo_cmd)
