"""`loraspot report`: a recording (the monitor's JSON lines or SQLite) as an HTML page with figures
(also written as PNG files beside it): RSSI and SNR over time, packets per time bin (an hour, or
less for a short recording), duty-cycle use, free heap, GPS positions, and a table of devices
named as they were provisioned. A figure without data says so, and why."""

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
from loraspot.monitor.record import number as _num  # a value of the wrong type is left out

HOUR_MS = 3_600_000
DUTY_BUDGET_MS = 36_000  # 1 % of an hour: the EU868 sub-band most uplinks use


EVENTS_QUERY = "SELECT id, device, kind, seq, t, data, host_time, boot, port FROM events ORDER BY id"


def _rows_to_records(rows, where: str) -> list[Record]:
    out: list[Record] = []
    for n, device, kind, seq, t, data, host_time, boot, port in rows:
        try:  # a row is checked as a line of a JSON-lines recording is
            out.append(Record.from_dict({"device": device, "ev": kind, "seq": seq, "t": t or 0,
                                         "data": json.loads(data), "host_time": host_time or 0.0,
                                         "boot": boot, "port": port}))
        except (ValueError, TypeError, RecursionError):
            raise MonitorError(f"{where} event {n}: not a monitor record") from None
    return out


def load(path: Path | str) -> list[Record]:
    """The records of a recording: monitor's JSON lines, its SQLite file, or its PostgreSQL server."""
    from loraspot.store import Store, StoreError, is_url, where

    if is_url(path):
        try:
            store = Store(path)
        except StoreError as e:
            raise MonitorError(str(e)) from None
        try:
            return _rows_to_records(store.execute(EVENTS_QUERY).fetchall(), where(path))
        except store.errors as e:
            raise MonitorError(f"{where(path)}: not a monitor database ({str(e).strip().splitlines()[0]})") from None
        finally:
            store.close()
    path = Path(path)
    if not path.exists():
        raise MonitorError(f"{path}: no such file")
    if path.suffix in (".sqlite", ".db", ".sqlite3"):
        try:
            db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
            try:
                return _rows_to_records(db.execute(EVENTS_QUERY), str(path))
            finally:
                db.close()
        except sqlite3.DatabaseError as e:
            raise MonitorError(f"{path}: not a monitor database ({e})") from None
    out: list[Record] = []
    with open(path, encoding="utf-8", errors="replace") as f:  # bytes that are not text fail as a record
        for n, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            try:
                out.append(Record.from_dict(json.loads(line)))
            except (ValueError, RecursionError) as e:
                raise MonitorError(f"{path} line {n}: not a monitor record ({e})") from None
    return out


@dataclass
class DeviceSummary:
    device: str
    role: str = ""
    board: str = ""
    name: str = ""
    boot_ids: set = field(default_factory=set)
    events: int = 0
    first: float = 0.0
    last: float = 0.0
    gaps: int = 0
    rx: int = 0
    uplinks: int = 0
    last_error: str = ""

    @property
    def label(self) -> str:
        """How people know the device: its name, else its MAC."""
        return self.name or self.device.upper()

    @property
    def boots(self) -> int:
        """The boots this recording saw (boot events, and boots met already running)."""
        return len(self.boot_ids)


@dataclass
class Report:
    devices: dict[str, DeviceSummary] = field(default_factory=dict)
    rssi: dict[str, list[tuple[float, float]]] = field(default_factory=lambda: defaultdict(list))
    snr: dict[str, list[tuple[float, float]]] = field(default_factory=lambda: defaultdict(list))
    packets: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))  # host times
    airtime: dict[str, dict[int, int]] = field(default_factory=lambda: defaultdict(lambda: defaultdict(int)))
    heap: dict[str, list[tuple[float, int]]] = field(default_factory=lambda: defaultdict(list))
    positions: dict[str, list[tuple[float, float, float]]] = field(default_factory=lambda: defaultdict(list))
    times: list[float] = field(default_factory=list)  # every record's host time: the recording's span


def analyse(records: list[Record]) -> Report:
    rep = Report()
    last_seq: dict[tuple[str, str | None], int] = {}
    for r in records:
        d = rep.devices.get(r.device)
        if d is None:
            d = rep.devices[r.device] = DeviceSummary(r.device, first=r.host_time)
        d.events += 1
        d.first, d.last = min(d.first, r.host_time), max(d.last, r.host_time)
        rep.times.append(r.host_time)
        if r.boot:
            d.boot_ids.add(r.boot)
        key = (r.device, r.boot)
        if r.seq >= 0:  # numbered by the device (the monitor's hello record is not)
            prev = last_seq.get(key)
            if prev is not None and r.seq > prev + 1:
                d.gaps += r.seq - prev - 1
            last_seq[key] = max(prev if prev is not None else -1, r.seq)
        hour = int(r.host_time // 3600)
        data = r.data
        if r.kind == "hello":
            d.board = str(data.get("board") or d.board)
            d.name = str(data.get("name") or d.name)
            if data.get("role") in ("node", "hotspot"):
                d.role = str(data["role"])
        elif r.kind == "boot":
            if isinstance(data.get("boot"), str) and data["boot"]:
                d.boot_ids.add(data["boot"])
            d.board = str(data.get("board", d.board))
        elif r.kind == "reading" and data.get("sensor") == "gps":
            values = data.get("values")
            lat, lon = (None, None)
            if isinstance(values, list) and len(values) >= 2:
                lat, lon = _num(values[0]), _num(values[1])
            if lat is not None and lon is not None and -90 <= lat <= 90 and -180 <= lon <= 180:
                rep.positions[r.device].append((r.host_time, lat, lon))
        elif r.kind == "rx":
            d.role, d.rx = "hotspot", d.rx + 1
            rep.packets[r.device].append(r.host_time)
            _signal(rep, r)
        elif r.kind == "uplink" and "error" not in data:
            d.role, d.uplinks = "node", d.uplinks + 1
            rep.packets[r.device].append(r.host_time)
            rep.airtime[r.device][hour] += int(_num(data.get("airtime_ms")) or 0)
        elif r.kind == "downlink" and _num(data.get("rssi")) is not None:
            _signal(rep, r)
        elif r.kind == "stats" and _num(data.get("heap_free")) is not None:
            rep.heap[r.device].append((r.host_time, int(data["heap_free"])))
        elif r.kind in ("fault",) or (r.kind == "log" and data.get("level") == "error"):
            d.last_error = str(data.get("error") or data.get("msg") or "")
    return rep


def _signal(rep: Report, r: Record) -> None:
    """RSSI and SNR of a frame heard (rx) or a downlink received, where the event carries them."""
    rssi, snr = _num(r.data.get("rssi")), _num(r.data.get("snr"))
    if rssi is not None:
        rep.rssi[r.device].append((r.host_time, rssi))
    if snr is not None:
        rep.snr[r.device].append((r.host_time, snr))


# Why a figure can be empty, said on the figure and under it
NO_DATA = {
    "signal": "no frames with RSSI/SNR recorded (hotspots report each frame heard; nodes each downlink)",
    "packets": "no frames heard or uplinks sent in this recording",
    "duty": "no uplinks recorded (nodes report the airtime of each uplink)",
    "heap": "no stats events recorded (boards send them every stats_interval seconds)",
    "positions": "no GPS readings recorded (boards with a GPS, such as the T-Beam, report them)",
    "coverage": "no beacons or witnesses given (loraspot report --ledger LEDGER --frames FRAMES: docs/proofs.md)",
}
BINS = ((1800, 60, "minute"), (3 * 3600, 600, "10 minutes"), (float("inf"), 3600, "hour"))


def _bin(span_s: float) -> tuple[int, str]:
    """The width of the packet chart's bins for a recording this long: a short run gets minutes,
    a long one hours, so that its bars stand on the times they count."""
    return next((size, label) for limit, size, label in BINS if span_s <= limit)


def _figures(rep: Report, cover: dict | None = None) -> dict[str, tuple[bytes, list[str], str]]:
    """name -> (PNG, the series it shows, why it is empty or "")."""
    from loraspot.extras import need

    matplotlib = need("matplotlib", "report", "loraspot report's figures")
    matplotlib.use("Agg")
    from datetime import datetime

    import matplotlib.dates as mdates
    import matplotlib.pyplot as plt

    def when(ts: float) -> datetime:
        return datetime.fromtimestamp(ts)

    def label(dev: str) -> str:
        d = rep.devices.get(dev)
        return d.label if d else dev.upper()

    def time_axis(ax) -> None:
        loc = mdates.AutoDateLocator(minticks=3, maxticks=8)  # labels that never run into each other
        ax.xaxis.set_major_locator(loc)
        ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(loc))

    def over_time(ax, ylabel: str) -> None:
        """A figure of values over time, with data: its label, legend, grid and time axis."""
        ax.set_ylabel(ylabel)
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
        time_axis(ax)

    out: dict[str, tuple[bytes, list[str], str]] = {}

    def save(fig, name: str, series: list[str], axes) -> None:
        why = "" if series else NO_DATA[name]
        if why:
            for ax in axes:
                ax.text(0.5, 0.5, "no data: " + why, ha="center", va="center", transform=ax.transAxes, wrap=True,
                        fontsize=10, color="#555")
                ax.set_xticks([])
                ax.set_yticks([])
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
        plt.close(fig)
        out[name] = (buf.getvalue(), series, why)

    fig, (a1, a2) = plt.subplots(2, 1, figsize=(10, 6), sharex=True)
    series = []
    for dev, pts in sorted(rep.rssi.items()):
        a1.plot([when(t) for t, _ in pts], [v for _, v in pts], ".-", label=label(dev), markersize=3)
        series.append(f"rssi:{label(dev)}")
    for dev, pts in sorted(rep.snr.items()):
        a2.plot([when(t) for t, _ in pts], [v for _, v in pts], ".-", label=label(dev), markersize=3)
        series.append(f"snr:{label(dev)}")
    a1.set_title("Received signal")
    if series:
        a1.set_ylabel("RSSI (dBm)")
        a2.set_ylabel("SNR (dB)")
        for a in (a1, a2):
            a.grid(alpha=0.3)
            if a.get_legend_handles_labels()[0]:
                a.legend(fontsize=8)
        time_axis(a2)
    save(fig, "signal", series, [a1] if not series else [])

    fig, ax = plt.subplots(figsize=(10, 4))
    series = []
    devs = sorted(d for d in rep.packets if rep.packets[d])
    span = (max(rep.times) - min(rep.times)) if rep.times else 0
    size, unit = _bin(span)
    if devs:
        first = min(min(rep.packets[d]) for d in devs) // size * size
        last = max(max(rep.packets[d]) for d in devs) // size * size
        edges = [first + k * size for k in range(int((last - first) // size) + 1)]
        width = size / 86400 / max(1, len(devs)) * 0.9  # in days, as dates are drawn
        for i, dev in enumerate(devs):
            counts = defaultdict(int)
            for t in rep.packets[dev]:
                counts[t // size * size] += 1
            ax.bar([mdates.date2num(when(e)) + i * width for e in edges], [counts.get(e, 0) for e in edges],
                   width=width, align="edge", label=label(dev))
            series.append(f"packets:{label(dev)}")
        ax.set_xlim(float(mdates.date2num(when(first))), float(mdates.date2num(when(last + size))))
        time_axis(ax)
        ax.set_ylabel(f"packets per {unit}")
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3, axis="y")
    ax.set_title(f"Packets received (hotspots) and sent (nodes) per {unit}")
    save(fig, "packets", series, [ax])

    fig, ax = plt.subplots(figsize=(10, 4))
    series = []
    duty = {dev: per_hour for dev, per_hour in sorted(rep.airtime.items()) if per_hour}
    if duty:  # a bar per hour standing on the hour it counts, the axis exactly the hours recorded
        first, last = min(min(h) for h in duty.values()), max(max(h) for h in duty.values())
        width = 1 / 24 / len(duty) * 0.9
        for i, (dev, per_hour) in enumerate(duty.items()):
            hs = list(range(first, last + 1))
            ax.bar([mdates.date2num(when(h * 3600)) + i * width for h in hs],
                   [100 * per_hour.get(h, 0) / DUTY_BUDGET_MS for h in hs], width=width, align="edge", label=label(dev))
            series.append(f"duty:{label(dev)}")
        ax.set_xlim(float(mdates.date2num(when(first * 3600))), float(mdates.date2num(when((last + 1) * 3600))))
    ax.set_title("Duty-cycle use per hour (airtime of uplinks)")
    if series:
        ax.axhline(100, color="red", linestyle="--", linewidth=1, label="the budget")
        over_time(ax, "% of the 1 % duty-cycle budget")
    save(fig, "duty", series, [ax])

    fig, ax = plt.subplots(figsize=(10, 3.5))
    series = []
    for dev, pts in sorted(rep.heap.items()):
        ax.plot([when(t) for t, _ in pts], [v / 1024 for _, v in pts], ".-", label=label(dev),  # pyright: ignore[reportArgumentType]
                markersize=3)  # (matplotlib draws datetimes; its stubs say arrays)
        series.append(f"heap:{label(dev)}")
    ax.set_title("Free heap")
    if series:
        over_time(ax, "free heap (KB)")
    save(fig, "heap", series, [ax])

    fig, ax = plt.subplots(figsize=(7, 6))
    series = []
    for dev, pts in sorted(rep.positions.items()):
        ax.plot([lon for _, _, lon in pts], [lat for _, lat, _ in pts], ".-", label=label(dev), markersize=4)
        ax.plot([pts[-1][2]], [pts[-1][1]], "o", color=ax.lines[-1].get_color())  # where it was last
        series.append(f"position:{label(dev)}")
    ax.set_title("GPS positions (the last one marked)")
    if series:
        ax.set_xlabel("longitude (°)")
        ax.set_ylabel("latitude (°)")
        ax.set_aspect("equal", adjustable="datalim")
        ax.ticklabel_format(useOffset=False)
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    save(fig, "positions", series, [ax])

    # the coverage map: hotspots at their claimed positions, each witnessed link coloured by its
    # RSSI, a flagged one dashed in red with its flags (loraspot.proofs.witness.coverage)
    fig, ax = plt.subplots(figsize=(7, 6))
    series = []
    if cover and cover["hotspots"]:
        from matplotlib import cm, colors

        pos = cover["hotspots"]
        rssi = [link["rssi"] for link in cover["links"]] or [-120, -60]
        norm = colors.Normalize(vmin=min(rssi), vmax=max(rssi))
        cmap = matplotlib.colormaps["viridis"]
        for link in cover["links"]:
            (la1, lo1), (la2, lo2) = pos[link["from"]], pos[link["to"]]
            name = f"{link['from']}>{link['to']}"
            if link["flags"]:
                ax.plot([lo1, lo2], [la1, la2], "--", color="red", linewidth=1.5, alpha=0.8)
                ax.annotate(",".join(link["flags"]), ((lo1 + lo2) / 2, (la1 + la2) / 2), fontsize=6, color="red")
                series.append(f"flagged:{name}:{link['rssi']}:{'+'.join(link['flags'])}")
            else:
                ax.plot([lo1, lo2], [la1, la2], "-", color=cmap(norm(link["rssi"])), linewidth=2)
                series.append(f"link:{name}:{link['rssi']}")
        for eui, (lat, lon) in sorted(pos.items()):
            ax.plot([lon], [lat], "^", color="black", markersize=9)
            ax.annotate(eui[-6:], (lon, lat), textcoords="offset points", xytext=(5, 5), fontsize=8)
            series.append(f"hotspot:{eui}")
        fig.colorbar(cm.ScalarMappable(norm=norm, cmap=cmap), ax=ax, label="witnessed RSSI (dBm)")
        ax.set_xlabel("longitude (°)")
        ax.set_ylabel("latitude (°)")
        ax.set_aspect("equal", adjustable="datalim")
        ax.ticklabel_format(useOffset=False)
        ax.grid(alpha=0.3)
    ax.set_title("Coverage: hotspots at their claimed positions, witnessed links (flagged ones dashed red)")
    save(fig, "coverage", series, [ax])
    return out


def write_report(source: Path | str, out: Path, cover: dict | None = None) -> dict:
    """The HTML page at `out` and its figures as `out`-stem-NAME.png; returns what was drawn.
    cover: the coverage map's hotspots and links (loraspot.proofs.witness.coverage), if any."""
    from loraspot.store import where

    records = load(source)
    source = where(source)  # a server's URL without its password, in what is printed and written
    if not records:
        raise MonitorError(f"{source}: no events recorded")
    rep = analyse(records)
    figures = _figures(rep, cover)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    pngs = {}
    for name, (png, _, _) in figures.items():
        p = out.with_name(f"{out.stem}-{name}.png")
        p.write_bytes(png)
        pngs[name] = str(p)
    summary = {"source": str(source), "events": len(records), "devices": sorted(rep.devices),
               "series": {name: s for name, (_, s, _) in figures.items()},
               "empty": {name: why for name, (_, _, why) in figures.items() if why}, "png": pngs,
               "names": {d.device: d.label for d in rep.devices.values()}}
    rows = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(v))}</td>" for v in (
            d.label, d.device.upper(), d.role or "-", d.board or "-", d.events, d.boots, d.gaps, d.rx, d.uplinks,
            time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(d.first)),
            time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(d.last)), d.last_error or "")) + "</tr>"
        for d in sorted(rep.devices.values(), key=lambda x: x.label))
    imgs = "".join(
        f'<figure id="fig-{name}"><img alt="{html.escape(name)}: '
        f'{html.escape(", ".join(series) or "no data")}" src="data:image/png;base64,{base64.b64encode(png).decode()}">'
        f'<figcaption>{html.escape("no data: " + why if why else "shows " + ", ".join(series))}</figcaption></figure>'
        for name, (png, series, why) in figures.items())
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>loraspot report</title>
<link rel="icon" href="data:,">
<style>body{{font-family:sans-serif;margin:2em;max-width:1100px}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:3px 8px;font-size:90%}}img{{max-width:100%}}</style></head>
<body><h1>loraspot report</h1>
<p>{len(records)} events from {len(rep.devices)} device(s), {html.escape(str(source))}.</p>
<h2>Devices</h2>
<table><tr><th>device</th><th>MAC</th><th>role</th><th>board</th><th>events</th><th>boots</th><th>gaps</th><th>rx</th>
<th>uplinks</th><th>first</th><th>last</th><th>last error</th></tr>{rows}</table>
<h2>Figures</h2>{imgs}
<script type="application/json" id="summary">{json.dumps(summary)}</script>
</body></html>
"""
    out.write_text(page, encoding="utf-8")
    return summary
