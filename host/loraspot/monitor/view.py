"""The live view: a row per device and the newest log lines (rich)."""

from __future__ import annotations

import time

from rich.console import Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from loraspot.monitor.fleet import DeviceState


def _up(ms: int | None) -> str:
    if ms is None:
        return "-"
    s = ms // 1000
    d, s = divmod(s, 86400)
    h, s = divmod(s, 3600)
    m, s = divmod(s, 60)
    return f"{d}d{h:02d}h" if d else f"{h}:{m:02d}:{s:02d}"


def _state(d: DeviceState) -> Text:
    colour = {"live": "green", "gone": "red"}.get(d.state, "yellow")
    return Text(d.state, style=colour)


def render(mon, log_lines: int = 12) -> Group:
    table = Table(expand=True, title=f"loraspot monitor: {len(mon.fleet.devices)} device(s), "
                                     f"{mon.records} events", title_justify="left")
    for col in ("device", "board", "role", "state", "up", "heap", "RSSI/SNR", "rx/fwd/drop", "uplinks",
                "duty left", "backhaul", "events (gaps)"):
        table.add_column(col, no_wrap=True, overflow="ellipsis", min_width=4 if col != "device" else 12)
    table.add_column("last error", overflow="fold", ratio=1)
    with mon.fleet.lock:
        devices = sorted(mon.fleet.devices.values(), key=lambda d: d.device)
        for d in devices:
            radio = "-" if d.rssi is None else f"{d.rssi:.0f}/{d.snr if d.snr is not None else '-'}"
            gaps = f"{d.events}" + (f" ([red]{d.gaps}[/])" if d.gaps else "")
            table.add_row(d.device, d.board, d.role, _state(d), _up(d.up_ms),
                          "-" if d.heap_free is None else f"{d.heap_free // 1024} KB", radio,
                          f"{d.rx}/{d.forwarded}/{d.dropped}" if d.role == "hotspot" else "-",
                          str(d.uplinks) if d.role == "node" else "-",
                          "-" if d.duty_left_ms is None else f"{d.duty_left_ms / 1000:.1f} s", d.backhaul or "-",
                          gaps, Text(d.last_error[:60], style="red"))
        lines = list(mon.fleet.log)[-log_lines:]
    log = Text()
    for when, who, text in lines:
        log.append(time.strftime("%H:%M:%S ", time.localtime(when)), style="dim")
        log.append(f"{who} ", style="cyan")
        log.append(text + "\n")
    overflow = mon.overflow()
    footer = f"recording lost {overflow} event(s): the disk or broker is too slow" if overflow else ""
    return Group(table, Panel(log, title="log", title_align="left"), Text(footer, style="red"))
