"""`loraspot monitor` and `loraspot report`: thin commands over loraspot.monitor."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import click

from loraspot import transport
from loraspot.cli import options
from loraspot.cli.device import BAUD


@click.command("monitor")
@options.ports()
@click.option("--all", "every", is_flag=True, help="Every detected board, and boards that appear later.")
@click.option("--baud", type=BAUD, default=transport.DEFAULT_BAUD, show_default=True)
@click.option("--record", "record", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Append every event as a JSON line to this file.")
@click.option("--db", type=options.StoreTarget(), default=None, metavar="PATH|URL",
              help="Store every event in this database: an SQLite file, or a PostgreSQL server's "
                   "postgresql://USER@HOST/DB that many monitors feed (each event once).")
@click.option("--mqtt", default=None, help="Publish events to mqtt://[user[:password]@]host[:port].")
@click.option("--mqtt-prefix", default="loraspot", show_default=True, help="Topics: PREFIX/DEVICE/event/TYPE.")
@click.option("--raw", is_flag=True, help="A plain serial terminal (one port; Ctrl-] quits).")
@click.option("--keep-repl", is_flag=True,
              help="With --raw: leave a board stopped at the MicroPython prompt there on quitting (default: reset it).")
@click.option("--duration", type=float, default=None, help="Stop after this many seconds (default: Ctrl-C).")
@click.pass_obj
def monitor_cmd(ctx, ports, every, baud, record, db, mqtt, mqtt_prefix, raw, keep_repl, duration) -> None:
    """Watch boards: a live table per device, a log of lines and events; record them."""
    from loraspot.flash.flasher import resolve_targets
    from loraspot.monitor import record as rec
    from loraspot.monitor.monitor import Monitor

    if raw:
        if len(ports) != 1:
            raise rec.MonitorError("--raw takes exactly one --port")
        from loraspot.monitor.raw import run_raw

        run_raw(ports[0], baud, keep_repl=keep_repl)
        return
    targets = list(ports) if ports else ([] if every else [t.port for t in resolve_targets([], False, None)])
    sinks: list[rec.Sink] = []
    if record:
        sinks.append(rec.JsonlSink(record))
    if db:
        sinks.append(rec.DatabaseSink(db))
    if mqtt:
        sinks.append(rec.MqttSink(mqtt, mqtt_prefix))
    if ctx.json:
        sinks.append(rec.StdoutSink())
    mon = Monitor(targets, every, baud, sinks)
    end = None if duration is None else time.monotonic() + duration
    mon.start()
    try:
        if ctx.json or not sys.stdout.isatty():
            _plain(ctx, mon, end)
        else:
            from rich.live import Live

            from loraspot.monitor.view import render

            def view():
                size = ctx.out.size  # read each time: the terminal may be resized
                return render(mon, width=size.width, height=size.height)

            with Live(view(), console=ctx.out, refresh_per_second=4, screen=False) as live:
                while end is None or time.monotonic() < end:
                    time.sleep(0.25)
                    live.update(view())
    except KeyboardInterrupt:
        pass
    finally:
        mon.stop()
    lost = mon.overflow()
    gaps = sum(d.gaps for d in mon.fleet.devices.values())
    ctx.err.print(f"{mon.records} events from {len(mon.fleet.devices)} device(s); {gaps} lost on the line"
                  + (f"; [red]{lost} not recorded (queue full)[/]" if lost else ""))


def _plain(ctx, mon, end) -> None:
    """Not a terminal: the log as text lines on stderr (with --json the events go to stdout)."""
    log = mon.fleet.log
    while end is None or time.monotonic() < end:
        time.sleep(0.2)
        while log:
            when, who, text = log.popleft()
            if not ctx.json:
                ctx.err.print(f"{time.strftime('%H:%M:%S', time.localtime(when))} {who} {text}",
                              highlight=False, markup=False)


@click.command("report")
@click.argument("source", type=options.StoreTarget())
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=Path("report.html"),
              show_default=True, help="The HTML page; figures go beside it as PNG files.")
@click.option("--ledger", "ledger_path", type=options.StoreTarget(), default=None,
              help="A receipts ledger (its SQLite file or postgresql:// URL): with --frames, the coverage map of "
                   "the hotspots' beacons and witnesses.")
@click.option("--frames", "frames_path", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="The network server's frames (`loraspot listen --json`), where the beacons are.")
@click.pass_obj
def report_cmd(ctx, source: Path | str, out: Path, ledger_path: Path | str | None, frames_path: Path | None) -> None:
    """Figures and a device table from a recording (monitor's --record JSON lines, or its --db: an
    SQLite file or a postgresql:// URL); with --ledger and --frames also the coverage map."""
    from loraspot.monitor.report import write_report

    cover = None
    if (ledger_path is None) != (frames_path is None):
        raise click.UsageError("the coverage map needs both --ledger and --frames")
    if ledger_path is not None and frames_path is not None:
        from loraspot.cli.ledger import _existing
        from loraspot.proofs.ledger import Ledger
        from loraspot.proofs.witness import beacons_in, coverage

        try:
            beacons = beacons_in(frames_path)
        except (ValueError, KeyError, TypeError) as e:
            raise click.BadParameter(f"not frames as `loraspot listen --json` prints them ({e})",
                                     param_hint="--frames") from None
        _existing(ledger_path)
        with Ledger(ledger_path) as led:
            cover = coverage(led, beacons)
    summary = write_report(source, out, cover)
    if ctx.json:
        ctx.emit(summary)
    else:
        ctx.out.print(f"{summary['events']} events of {len(summary['devices'])} device(s): {out} "
                      f"and {len(summary['png'])} PNG figures")


@click.command("alerts")
@click.option("--db", "target", type=options.StoreTarget(), required=True, metavar="PATH|URL",
              help="The store of events the monitors write (monitor --db): an SQLite file or postgresql://...")
@click.option("--offline-after", type=click.FloatRange(1), default=600.0, show_default=True, metavar="SECONDS",
              help="Alert when a board has sent no event for this long (then again when it is back).")
@click.option("--drops", type=click.IntRange(1), default=20, show_default=True, metavar="N",
              help="Alert when a hotspot's drop counters grow by N or more from one stats event to the next.")
@click.option("--every", type=click.FloatRange(0.1), default=10.0, show_default=True, metavar="SECONDS",
              help="How often to look at the store.")
@click.option("--mqtt", default=None, help="Publish alerts to mqtt://[user[:password]@]host[:port] "
              "(PREFIX/DEVICE/alert, QoS 1).")
@click.option("--mqtt-prefix", default="loraspot", show_default=True)
@click.option("--webhook", default=None, metavar="URL", help="Also POST each alert as JSON to this URL.")
@click.option("--duration", type=float, default=None, help="Stop after this many seconds (default: Ctrl-C).")
@click.pass_obj
def alerts_cmd(ctx, target, offline_after, drops, every, mqtt, mqtt_prefix, webhook, duration) -> None:
    """Watch the fleet's events: a board that stops reporting, a hotspot whose drops jump. Each
    alert once when it starts and once when it clears; to the screen (--json: one JSON object per
    line), MQTT and a webhook."""
    from loraspot.monitor.alerts import Publisher, Watch
    from loraspot.monitor.record import MonitorError

    watch = Watch(target, offline_after, drops)
    pub = Publisher(mqtt, mqtt_prefix, webhook, out=sys.stdout if ctx.json else None)
    end = None if duration is None else time.monotonic() + duration
    failing = False
    try:
        while end is None or time.monotonic() < end:
            try:
                raised = watch.check()
            except MonitorError as e:
                if not failing:
                    ctx.err.print(f"alerts: the store cannot be read, trying again: {e}", highlight=False,
                                  markup=False)
                failing = True
                raised = []
            else:
                if failing:
                    ctx.err.print("alerts: the store answers again", highlight=False)
                failing = False
            for a in raised:
                pub.publish(a)
                if not ctx.json:
                    detail = ", ".join(f"{k} {v}" for k, v in a.detail.items())
                    ctx.out.print(f"{time.strftime('%H:%M:%S', time.localtime(a.at))} {a.device} {a.kind}"
                                  + (f" ({detail})" if detail else ""), highlight=False, markup=False)
            time.sleep(every)
    except KeyboardInterrupt:
        pass
    finally:
        pub.close()
        watch.close()
    ctx.err.print(f"{pub.sent} alert(s) raised", highlight=False)


def register(cli: click.Group) -> None:
    cli.add_command(monitor_cmd)
    cli.add_command(report_cmd)
    cli.add_command(alerts_cmd)
