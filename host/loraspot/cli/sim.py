from __future__ import annotations

import json
import math
import signal
import sys
import threading
import time
from pathlib import Path

import click

from loraspot.cli import options, ui
from loraspot.cli.device import BAUD, UDP_PORT
from loraspot.sim.medium import Medium, MediumError
from loraspot.sim.vboard import BoardOptions, VirtualBoard


@click.group("sim")
def sim_group() -> None:
    """Virtual boards: the real firmware under the MicroPython unix port."""


@sim_group.command("board")
@click.option("--board", "board_id", default="virtual", show_default=True, help="Board profile.")
@click.option("--flash", "flash", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="Flash image file (created with the current firmware when missing).")
@click.option("--baud", type=BAUD, default=115200, show_default=True, help="Initial UART rate (clients may change it).")
@click.option("--speed", default=1, show_default=True, help="Device clock runs this many times faster.")
@click.option("--rfc2217-port", default=0, show_default=True, help="TCP port of the RFC 2217 server (0: any).")
@click.option("--no-pty", is_flag=True, help="Serve only RFC 2217, no pty.")
@click.option("--powercut-after", default=0, help="Lose power after the k-th flash erase/program (testing).")
@click.option("--clock-start-us", type=int, default=None, help="Start the µs tick counter here (e.g. near 2^30).")
@click.option("--clock-start-ms", type=int, default=None, help="Start the ms tick counter here.")
@click.option("--medium", default=None, metavar="HOST:PORT", help="UDP address of the RF medium (loraspot sim medium).")
@click.option("--position", default="0,0", show_default=True, metavar="X,Y[,Z]", help="Position in metres.")
@click.option("--sensors", default="", metavar="LIST",
              help="Virtual sensors on the board: any of bme280,gps,battery,axp192 (comma-separated).")
@click.option("--seed", default=1, show_default=True, help="Seed of the virtual sensors' values.")
@click.option("--heap-kb", type=click.IntRange(32, 8192), default=None,
              help="Firmware heap in KB (default: the board profile's budget, docs/boards.md).")
@click.option("--blank", is_flag=True, help="A missing flash image starts erased, as a new board (flash it first).")
@click.option("--max-baud", default=0, help="The USB-serial chip's highest baud rate (0: no limit).")
@click.option("--wifi", "wifi", multiple=True, metavar="SSID=PASSPHRASE",
              help="A Wi-Fi network in reach (repeatable): the board joins only these, and can open its set-up "
                   "access point. Default: on the host's network.")
@click.pass_obj
def board_cmd(ctx, board_id: str, flash: Path, baud: int, speed: int, rfc2217_port: int, no_pty: bool,
              powercut_after: int, clock_start_us: int | None, clock_start_ms: int | None, medium: str | None,
              position: str, sensors: str, seed: int, heap_kb: int | None, blank: bool, max_baud: int,
              wifi: tuple[str, ...]) -> None:
    """Run one virtual board until interrupted; prints the serial URLs it serves."""
    networks = None
    for item in wifi:
        ssid, sep, passphrase = item.partition("=")
        if not sep or not 1 <= len(ssid.encode()) <= 32 or not 8 <= len(passphrase.encode()) <= 63:
            raise click.BadParameter(f"{item!r}: expected SSID=PASSPHRASE (SSID 1-32 bytes, passphrase 8-63)",
                                     param_hint="--wifi")
        networks = {**(networks or {}), ssid: passphrase}
    hardware: dict = {}
    for name in filter(None, (x.strip() for x in sensors.split(","))):
        if name not in ("bme280", "gps", "battery", "axp192"):
            raise click.BadParameter(f"unknown virtual sensor {name!r} (bme280, gps, battery, axp192)",
                                     param_hint="--sensors")
        hardware["pmu" if name == "axp192" else name] = {"chip": "axp192"} if name == "axp192" else {}
    if hardware:
        hardware["seed"] = seed
    opts = BoardOptions(flash=flash, board=board_id, baud=baud, speed=speed, rfc2217_port=rfc2217_port,
                        pty=not no_pty, powercut_after=powercut_after, clock_start_us=clock_start_us,
                        clock_start_ms=clock_start_ms, medium=parse_address(medium) if medium else None,
                        position=parse_position(position), hardware=hardware, heap_kb=heap_kb,
                        blank=blank, max_baud=max_baud, wifi=networks)
    lock = threading.Lock()

    def status(s: dict) -> None:
        with lock:
            if ctx.json:
                click.echo(json.dumps(s, sort_keys=True))
            elif s["event"] == "serving":
                where = " and ".join(x for x in (s.get("pty"), s["url"]) if x)
                click.echo(f"virtual board {s['id'].upper()} ({s['board']}) serving on {where}")
            else:
                click.echo(ui.fields(s))
            sys.stdout.flush()

    stop = _stop_on_sigterm()
    board = VirtualBoard(opts, status)
    board.start()
    try:
        _wait_for_stop(stop)
    finally:
        board.stop()
        status({"event": "stopped", "id": board.device_id})


class _StopFlag:
    """Set by SIGTERM. The handler only assigns an attribute: a handler that took a lock (as
    threading.Event.set does) deadlocks when the signal lands while the main thread holds it."""

    requested = False


def _stop_on_sigterm() -> _StopFlag:
    """A flag SIGTERM sets; install it before announcing anything a supervisor may act on."""
    stop = _StopFlag()

    def _handler(*_):
        stop.requested = True

    signal.signal(signal.SIGTERM, _handler)
    return stop


def _wait_for_stop(stop: _StopFlag) -> None:
    """Block until SIGTERM or Ctrl-C."""
    try:
        while not stop.requested:
            time.sleep(0.2)
    except KeyboardInterrupt:
        pass


def parse_address(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise click.BadParameter(f"{text!r}: expected HOST:PORT, e.g. 127.0.0.1:47800", param_hint="--medium")
    return host or "127.0.0.1", int(port)


def parse_position(text: str) -> tuple[float, float, float]:
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        values = []
    if len(values) not in (2, 3) or not all(math.isfinite(v) for v in values):
        raise click.BadParameter(f"{text!r}: expected X,Y or X,Y,Z in metres", param_hint="--position")
    return (values[0], values[1], values[2] if len(values) == 3 else 0.0)


@sim_group.command("medium")
@click.option("--udp-port", "port", type=UDP_PORT, default=47800, show_default=True,
              help="UDP port on 127.0.0.1 (0: any free one).")
@click.option("--speed", default=1, show_default=True, help="World clock speed; boards must use the same --speed.")
@click.option("--path-loss-exponent", default=2.7, show_default=True, help="2 free space, 2.7-3.5 urban.")
@click.pass_obj
def medium_cmd(ctx, port: int, speed: int, path_loss_exponent: float) -> None:
    """Run the RF medium that carries virtual boards' LoRa frames until interrupted."""
    try:
        medium = Medium(port=port, speed=speed, path_loss_exponent=path_loss_exponent)
    except OSError as e:
        raise MediumError(f"cannot listen on UDP 127.0.0.1:{port}: {e.strerror}") from None
    stop = _stop_on_sigterm()
    medium.start()
    host, bound = medium.address
    first = {"event": "serving", "address": f"{host}:{bound}", "speed": speed}
    click.echo(json.dumps(first) if ctx.json else f"RF medium on {host}:{bound} (speed {speed})")
    sys.stdout.flush()
    try:
        _wait_for_stop(stop)
    finally:
        medium.stop()
        st = dict(medium.status(), event="stopped")
        click.echo(json.dumps(st) if ctx.json else f"RF medium stopped: {st['routed']} frames delivered")


@sim_group.command("world")
@click.option("--nodes", default=3, show_default=True, help="Virtual nodes (BME280 and battery sensors).")
@click.option("--hotspots", default=1, show_default=True, help="Virtual hotspots.")
@click.option("--region", default="EU868", show_default=True, help="Region of the single channel.")
@click.option("--duration", default=0.0, help="Seconds (wall time) to run, then print the summary (0: until Ctrl-C).")
@click.option("--speed", default=1, show_default=True, help="Device clocks run this many times faster.")
@click.option("--forward", default=None, metavar="udp://HOST:PORT|mqtt://HOST:PORT",
              help="Hotspots forward to this network server (Semtech UDP) or MQTT broker (ChirpStack Gateway "
                   "Bridge JSON) instead of a built-in loraspot listen.")
@options.inventory("Keep the nodes' keys in this inventory (default: a temporary one).", envvar=False)
@click.option("--uplink-interval", default=60, show_default=True, help="Node uplink interval, device seconds.")
@click.pass_obj
def world_cmd(ctx, nodes: int, hotspots: int, region: str, duration: float, speed: int, forward: str | None,
              inventory: Path | str | None, uplink_interval: int) -> None:
    """A simulated world: nodes, hotspots, the RF medium and loraspot listen; one JSON object per
    event with --json, and a summary at the end."""
    from loraspot.sim.world import World, WorldOptions

    def show(ev: dict) -> None:
        if ctx.json:
            click.echo(json.dumps(ev, sort_keys=True, default=str))
        else:
            click.echo(f"{ev['event']:>12} {ui.fields(ev, ('event', 'phy'))}")
        sys.stdout.flush()

    opts = WorldOptions(nodes=nodes, hotspots=hotspots, region=region, speed=speed, forward=forward,
                        inventory=inventory, uplink_interval=uplink_interval)
    stop = _stop_on_sigterm()
    with World(opts, on_event=show) as world:
        end = time.monotonic() + duration if duration > 0 else math.inf
        try:
            while time.monotonic() < end and not stop.requested:
                time.sleep(0.1)
        except KeyboardInterrupt:
            pass
    show(world.summary())  # after every board stopped: the summary is the last line


@sim_group.command("soak")
@click.option("--device-hours", default=1.0, show_default=True, type=float,
              help="How long the devices' clocks run (at --speed 20, one device-hour takes 3 minutes).")
@click.option("--nodes", default=5, show_default=True)
@click.option("--hotspots", default=2, show_default=True)
@click.option("--speed", default=20, show_default=True, help="Device clocks run this many times faster.")
@click.option("--uplink-interval", default=60, show_default=True, help="Node uplink interval, device seconds.")
@click.pass_obj
def soak_cmd(ctx, device_hours: float, nodes: int, hotspots: int, speed: int, uplink_interval: int) -> None:
    """A long run of a simulated world, watched: no restarts, every console answering each
    device-minute, free heap in its band, consecutive FCnts, every uplink received or lost with a
    reason. Exits 1 when one of these fails."""
    from loraspot.sim.soak import Soak, SoakOptions

    def show(ev: dict) -> None:
        click.echo(json.dumps(ev, sort_keys=True) if ctx.json else f"{ev['event']:>12} {ui.fields(ev, ('event',))}")
        sys.stdout.flush()

    rep = Soak(SoakOptions(device_hours=device_hours, nodes=nodes, hotspots=hotspots, speed=speed,
                           uplink_interval=uplink_interval), on_progress=show).run()
    if ctx.json:
        click.echo(json.dumps(rep, sort_keys=True))
    else:
        fates = ", ".join(f"{n} {k}" for k, n in sorted(rep["fates"].items(), key=lambda kv: -kv[1]))
        click.echo(f"soak: {rep['device_hours']} device-hours in {rep['wall_s']} s, {rep['nodes']} nodes, "
                   f"{rep['hotspots']} hotspots, speed {rep['speed']}")
        click.echo(f"  uplinks {rep['uplinks']}: {fates or 'none'}; in flight at the end {rep['in_flight_at_end']}; "
                   f"unaccounted {rep['unaccounted']}")
        click.echo(f"  resets {rep['resets']}, FCnt gaps {rep['fcnt_gaps']}, events lost {rep['events_lost']}, "
                   f"console {rep['console']['answered']}/{rep['console']['asked']} answered")
        for name, h in rep["heap"].items():
            click.echo(f"  {name:<9} free heap after warm-up {h['min']}..{h['max']} B "
                       f"(band {h['at_warmup_end']} ± {rep['heap_band_b']})")
        for f in rep["failures"]:
            click.echo(f"  FAILED: {f}")
        click.echo("soak: ok" if rep["ok"] else "soak: FAILED")
    if not rep["ok"]:
        from loraspot.sim.soak import SoakFailed

        raise SoakFailed(f"the soak failed {len(rep['failures'])} checks")


@sim_group.command("screenshot")
@click.option("--port", required=True, help="The virtual board's port (pty path or rfc2217:// URL).")
@click.option("--scale", type=click.IntRange(1, 16), default=4, show_default=True, help="Pixels per display pixel.")
@click.argument("out", type=click.Path(dir_okay=False, path_type=Path))
@click.pass_obj
def screenshot_cmd(ctx, port: str, scale: int, out: Path) -> None:
    """Save what a running virtual board's display shows as a PNG picture."""
    from loraspot.sim import screen

    rows, width, height = screen.current(port)
    try:
        screen.image(rows, width, height, scale).save(out, "PNG")
    except OSError as e:
        raise screen.ScreenError(f"{out}: {e.strerror or e}") from None
    if ctx.json:
        click.echo(json.dumps({"event": "screenshot", "path": str(out), "width": width, "height": height,
                               "scale": scale}))
    else:
        click.echo(f"{out}: the {width}x{height} display at {scale}x")


@sim_group.command("press")
@click.option("--port", required=True, help="The virtual board's port (pty path or rfc2217:// URL).")
@click.option("--hold", "hold_s", type=click.FloatRange(0.05, 600), default=0.2, show_default=True,
              help="Seconds of device time the button stays down (5 or more: set-up mode).")
@click.pass_obj
def press_cmd(ctx, port: str, hold_s: float) -> None:
    """Press a running virtual board's button."""
    import socket

    from loraspot.sim import screen

    info = screen.board_entry(port)
    if not info.get("button"):
        raise screen.ScreenError(f"{port}: this virtual board has no button")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.sendto(str(int(hold_s * 1000)).encode(), ("127.0.0.1", info["button"]))
    click.echo(json.dumps({"event": "pressed", "hold_s": hold_s}) if ctx.json else f"button held {hold_s:g} s")


def register(cli: click.Group) -> None:
    cli.add_command(sim_group)
