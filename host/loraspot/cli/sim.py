from __future__ import annotations

import json
import signal
import sys
import threading
from pathlib import Path

import click

from loraspot.sim.vboard import BoardOptions, VirtualBoard


@click.group("sim")
def sim_group() -> None:
    """Virtual boards: the real firmware under the MicroPython unix port."""


@sim_group.command("board")
@click.option("--board", "board_id", default="virtual", show_default=True, help="Board profile.")
@click.option("--flash", "flash", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="Flash image file (created with the current firmware when missing).")
@click.option("--baud", default=115200, show_default=True, help="Initial UART rate (clients may change it).")
@click.option("--speed", default=1, show_default=True, help="Device clock runs this many times faster.")
@click.option("--rfc2217-port", default=0, show_default=True, help="TCP port of the RFC 2217 server (0: any).")
@click.option("--no-pty", is_flag=True, help="Serve only RFC 2217, no pty.")
@click.option("--powercut-after", default=0, help="Lose power after the k-th flash erase/program (testing).")
@click.option("--clock-start-us", type=int, default=None, help="Start the µs tick counter here (e.g. near 2^30).")
@click.option("--clock-start-ms", type=int, default=None, help="Start the ms tick counter here.")
@click.pass_obj
def board_cmd(ctx, board_id: str, flash: Path, baud: int, speed: int, rfc2217_port: int, no_pty: bool,
              powercut_after: int, clock_start_us: int | None, clock_start_ms: int | None) -> None:
    """Run one virtual board until interrupted; prints the serial URLs it serves."""
    opts = BoardOptions(flash=flash, board=board_id, baud=baud, speed=speed, rfc2217_port=rfc2217_port,
                        pty=not no_pty, powercut_after=powercut_after, clock_start_us=clock_start_us,
                        clock_start_ms=clock_start_ms)
    lock = threading.Lock()

    def status(s: dict) -> None:
        with lock:
            if ctx.json:
                click.echo(json.dumps(s, sort_keys=True))
            elif s["event"] == "serving":
                where = " and ".join(x for x in (s.get("pty"), s["url"]) if x)
                click.echo(f"virtual board {s['id']} ({s['board']}) serving on {where}")
            else:
                click.echo(" ".join(f"{k}={v}" for k, v in s.items()))
            sys.stdout.flush()

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    board = VirtualBoard(opts, status)
    board.start()
    try:
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        board.stop()
        status({"event": "stopped", "id": board.device_id})


def register(cli: click.Group) -> None:
    cli.add_command(sim_group)
