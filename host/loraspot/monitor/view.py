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


# columns by importance: on a narrow terminal the later ones are left out (the log, --json and
# the recording keep everything); what is shown is never cut, a long cell folds onto more lines
_COLUMNS = ("device", "state", "heap", "traffic", "role", "up", "RSSI/SNR", "board", "duty left", "backhaul",
            "events (gaps)", "last error")
_WIDTHS = {"device": 12, "state": 10, "heap": 6, "traffic": 11, "role": 7, "up": 9, "RSSI/SNR": 9, "board": 14,
           "duty left": 9, "backhaul": 8, "events (gaps)": 13, "last error": 16}


def _fit(width: int) -> list[str]:
    """The columns that fit a terminal this wide (3 characters of border and padding each). The
    last error needs room for its words (at least 30 columns); without it, errors are in the log."""
    out, used = [], 1
    for col in _COLUMNS:
        need = (30 if col == "last error" else _WIDTHS[col]) + 3
        if used + need <= width:
            out.append(col)
            used += need
    return out


def render(mon, log_lines: int = 12, width: int = 200, height: int = 60) -> Group:
    """The view for a terminal of `width` x `height`: columns that fit the width, as many device
    rows and log lines as fit the height (the rest counted, never drawn off the edge)."""
    cols = _fit(width)
    table = Table(expand=True, title=f"loraspot monitor: {len(mon.fleet.devices)} device(s), "
                                     f"{mon.records} events", title_justify="left")
    for col in cols:
        table.add_column(col, overflow="fold", ratio=1 if col == "last error" else None,
                         min_width=30 if col == "last error" else _WIDTHS[col])
    with mon.fleet.lock:
        devices = sorted(mon.fleet.devices.values(), key=lambda d: d.device)
        room = max(1, height - 8)  # title, header, borders, the log panel's frame, the footer
        shown = devices[:room]
        for d in shown:
            cells = {
                "device": d.device.upper(), "board": d.board, "role": d.role, "state": _state(d), "up": _up(d.up_ms),
                "heap": "-" if d.heap_free is None else f"{d.heap_free // 1024} KB",
                "RSSI/SNR": "-" if d.rssi is None else f"{d.rssi:.0f}/{d.snr if d.snr is not None else '-'}",
                "traffic": (f"{d.rx}/{d.forwarded}/{d.dropped}" if d.role == "hotspot" else
                            f"{d.uplinks} up" if d.role == "node" else "-"),
                "duty left": "-" if d.duty_left_ms is None else f"{d.duty_left_ms / 1000:.1f} s",
                "backhaul": d.backhaul or "-",
                "events (gaps)": f"{d.events}" + (f" ([red]{d.gaps}[/])" if d.gaps else ""),
                "last error": Text(d.last_error, style="red"),
            }
            table.add_row(*(cells[c] for c in cols))
        # what is left of the height, after the table (title, borders, header, rows) and the log's frame,
        # goes to the newest log lines, counted as the terminal will fold them
        budget = height - (len(shown) + 6) - 2 - (len(shown) < len(devices)) - 1
        inner = max(10, width - 4)
        lines: list = []
        for entry in reversed(mon.fleet.log):
            when, who, text = entry
            need = -(-(9 + len(who) + 1 + len(text)) // inner)
            if len(lines) >= log_lines or need > budget:
                break
            lines.insert(0, entry)
            budget -= need
    parts: list = [table]
    if len(shown) < len(devices):
        parts.append(Text(f"{len(devices) - len(shown)} more device(s): a taller terminal shows them", style="yellow"))
    if lines:
        log = Text(overflow="fold")
        for when, who, text in lines:
            log.append(time.strftime("%H:%M:%S ", time.localtime(when)), style="dim")
            log.append(f"{who} ", style="cyan")
            log.append(text + "\n")
        parts.append(Panel(log, title="log", title_align="left"))
    overflow = mon.overflow()
    if overflow:
        parts.append(Text(f"recording lost {overflow} event(s): the disk or broker is too slow", style="red"))
    return Group(*parts)
