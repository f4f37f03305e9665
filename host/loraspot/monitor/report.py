"""`loraspot report`: a recording (the monitor's JSON lines or SQLite) as an HTML page with figures
(also written as PNG files beside it): RSSI and SNR over time, packets per hour, duty-cycle use,
free heap, and a table of devices."""

from __future__ import annotations

import base64
import html
import io
import json
import sqlite3
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from loraspot.monitor.record import MonitorError, Record

HOUR_MS = 3_600_000
DUTY_BUDGET_MS = 36_000  # 1 % of an hour: the EU868 sub-band most uplinks use


def load(path: Path) -> list[Record]:
    path = Path(path)
    if not path.exists():
        raise MonitorError(f"{path}: no such file")
    out: list[Record] = []
    if path.suffix in (".sqlite", ".db", ".sqlite3"):
        try:
            db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
            rows = db.execute("SELECT device, kind, seq, t, data, host_time, boot, port FROM events ORDER BY id")
            for device, kind, seq, t, data, host_time, boot, port in rows:
                out.append(Record(device, kind, seq, t or 0, json.loads(data), host_time, boot, port))
            db.close()
        except sqlite3.DatabaseError as e:
            raise MonitorError(f"{path}: not a monitor database ({e})") from None
        return out
    with open(path, encoding="utf-8", errors="replace") as f:  # bytes that are not text fail as a record
        for n, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            try:
                out.append(Record.from_dict(json.loads(line)))
            except (ValueError, KeyError, TypeError, RecursionError):
                raise MonitorError(f"{path} line {n}: not a monitor record") from None
    return out


@dataclass
class DeviceSummary:
    device: str
    role: str = ""
    board: str = ""
    events: int = 0
    first: float = 0.0
    last: float = 0.0
    boots: int = 0
    gaps: int = 0
    rx: int = 0
    uplinks: int = 0
    last_error: str = ""


@dataclass
class Report:
    devices: dict[str, DeviceSummary] = field(default_factory=dict)
    rssi: dict[str, list[tuple[float, float]]] = field(default_factory=lambda: defaultdict(list))
    snr: dict[str, list[tuple[float, float]]] = field(default_factory=lambda: defaultdict(list))
    packets: dict[str, dict[int, int]] = field(default_factory=lambda: defaultdict(lambda: defaultdict(int)))
    airtime: dict[str, dict[int, int]] = field(default_factory=lambda: defaultdict(lambda: defaultdict(int)))
    heap: dict[str, list[tuple[float, int]]] = field(default_factory=lambda: defaultdict(list))


def analyse(records: list[Record]) -> Report:
    rep = Report()
    last_seq: dict[tuple[str, str | None], int] = {}
    for r in records:
        d = rep.devices.get(r.device)
        if d is None:
            d = rep.devices[r.device] = DeviceSummary(r.device, first=r.host_time)
        d.events += 1
        d.first, d.last = min(d.first, r.host_time), max(d.last, r.host_time)
        key = (r.device, r.boot)
        prev = last_seq.get(key)
        if prev is not None and r.seq > prev + 1:
            d.gaps += r.seq - prev - 1
        last_seq[key] = max(prev if prev is not None else -1, r.seq)
        hour = int(r.host_time // 3600)
        data = r.data
        if r.kind == "boot":
            d.boots += 1
            d.board = str(data.get("board", d.board))
        elif r.kind == "rx":
            d.role, d.rx = "hotspot", d.rx + 1
            rep.packets[r.device][hour] += 1
            if data.get("rssi") is not None:
                rep.rssi[r.device].append((r.host_time, float(data["rssi"])))
            if data.get("snr") is not None:
                rep.snr[r.device].append((r.host_time, float(data["snr"])))
        elif r.kind == "uplink" and "error" not in data:
            d.role, d.uplinks = "node", d.uplinks + 1
            rep.packets[r.device][hour] += 1
            rep.airtime[r.device][hour] += int(data.get("airtime_ms", 0))
        elif r.kind == "downlink" and data.get("rssi") is not None:
            rep.rssi[r.device].append((r.host_time, float(data["rssi"])))
            if data.get("snr") is not None:
                rep.snr[r.device].append((r.host_time, float(data["snr"])))
        elif r.kind == "stats" and data.get("heap_free") is not None:
            rep.heap[r.device].append((r.host_time, int(data["heap_free"])))
        elif r.kind in ("fault",) or (r.kind == "log" and data.get("level") == "error"):
            d.last_error = str(data.get("error") or data.get("msg") or "")
    return rep


def _figures(rep: Report) -> dict[str, tuple[bytes, list[str]]]:
    """name -> (PNG, the series it shows)."""
    from loraspot.extras import need

    matplotlib = need("matplotlib", "report", "loraspot report's figures")
    matplotlib.use("Agg")
    from datetime import datetime

    import matplotlib.dates as mdates
    import matplotlib.pyplot as plt

    def when(ts: float) -> datetime:
        return datetime.fromtimestamp(ts)

    out: dict[str, tuple[bytes, list[str]]] = {}

    def save(fig, name: str, series: list[str]) -> None:
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
        plt.close(fig)
        out[name] = (buf.getvalue(), series)

    fig, (a1, a2) = plt.subplots(2, 1, figsize=(10, 6), sharex=True)
    series = []
    for dev, pts in sorted(rep.rssi.items()):
        a1.plot([when(t) for t, _ in pts], [v for _, v in pts], ".-", label=dev, markersize=3)
        series.append(f"rssi:{dev}")
    for dev, pts in sorted(rep.snr.items()):
        a2.plot([when(t) for t, _ in pts], [v for _, v in pts], ".-", label=dev, markersize=3)
        series.append(f"snr:{dev}")
    a1.set_ylabel("RSSI (dBm)")
    a2.set_ylabel("SNR (dB)")
    a1.set_title("Received signal")
    for a in (a1, a2):
        a.grid(alpha=0.3)
        if a.get_legend_handles_labels()[0]:
            a.legend(fontsize=8)
    a2.xaxis.set_major_formatter(mdates.DateFormatter("%m-%d %H:%M"))
    save(fig, "signal", series)

    fig, ax = plt.subplots(figsize=(10, 4))
    series = []
    devs = sorted(rep.packets)
    hours = sorted({h for d in devs for h in rep.packets[d]})
    width = 0.8 / max(1, len(devs))
    for i, dev in enumerate(devs):
        xs = [when(h * 3600) for h in hours]
        ax.bar([mdates.date2num(x) + (i - len(devs) / 2) * width / 24 for x in xs],
               [rep.packets[dev].get(h, 0) for h in hours], width=width / 24, label=dev)
        series.append(f"packets:{dev}")
    ax.xaxis_date()
    ax.set_ylabel("packets per hour")
    ax.set_title("Packets received (hotspots) and sent (nodes) per hour")
    if devs:
        ax.legend(fontsize=8)
    ax.grid(alpha=0.3, axis="y")
    save(fig, "packets", series)

    fig, ax = plt.subplots(figsize=(10, 4))
    series = []
    for dev, per_hour in sorted(rep.airtime.items()):
        hs = sorted(per_hour)
        ax.plot([when(h * 3600) for h in hs], [100 * per_hour[h] / DUTY_BUDGET_MS for h in hs], "o-", label=dev)
        series.append(f"duty:{dev}")
    ax.axhline(100, color="red", linestyle="--", linewidth=1)
    ax.set_ylabel("% of the 1 % duty-cycle budget")
    ax.set_title("Duty-cycle use per hour (airtime of uplinks)")
    if series:
        ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    save(fig, "duty", series)

    fig, ax = plt.subplots(figsize=(10, 3.5))
    series = []
    for dev, pts in sorted(rep.heap.items()):
        ax.plot([when(t) for t, _ in pts], [v / 1024 for _, v in pts], ".-", label=dev, markersize=3)
        series.append(f"heap:{dev}")
    ax.set_ylabel("free heap (KB)")
    ax.set_title("Free heap")
    if series:
        ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    save(fig, "heap", series)
    return out


def write_report(source: Path, out: Path) -> dict:
    """The HTML page at `out` and its figures as `out`-stem-NAME.png; returns what was drawn."""
    records = load(source)
    if not records:
        raise MonitorError(f"{source}: no events recorded")
    rep = analyse(records)
    figures = _figures(rep)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    pngs = {}
    for name, (png, _) in figures.items():
        p = out.with_name(f"{out.stem}-{name}.png")
        p.write_bytes(png)
        pngs[name] = str(p)
    summary = {"source": str(source), "events": len(records), "devices": sorted(rep.devices),
               "series": {name: s for name, (_, s) in figures.items()}, "png": pngs}
    rows = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(v))}</td>" for v in (
            d.device, d.role or "-", d.board or "-", d.events, d.boots, d.gaps, d.rx, d.uplinks,
            time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(d.first)),
            time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(d.last)), d.last_error or "")) + "</tr>"
        for d in sorted(rep.devices.values(), key=lambda x: x.device))
    imgs = "".join(
        f'<figure><img alt="{html.escape(name)}: {html.escape(", ".join(series))}" '
        f'src="data:image/png;base64,{base64.b64encode(png).decode()}"></figure>'
        for name, (png, series) in figures.items())
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>loraspot report</title>
<style>body{{font-family:sans-serif;margin:2em;max-width:1100px}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:3px 8px;font-size:90%}}img{{max-width:100%}}</style></head>
<body><h1>loraspot report</h1>
<p>{len(records)} events from {len(rep.devices)} device(s), {html.escape(str(source))}.</p>
<h2>Devices</h2>
<table><tr><th>device</th><th>role</th><th>board</th><th>events</th><th>boots</th><th>gaps</th><th>rx</th>
<th>uplinks</th><th>first</th><th>last</th><th>last error</th></tr>{rows}</table>
<h2>Figures</h2>{imgs}
<script type="application/json" id="summary">{json.dumps(summary)}</script>
</body></html>
"""
    out.write_text(page, encoding="utf-8")
    return summary
