"""`loraspot report` looked at in a real browser (Debian's Chromium, headless): the page loads
with no console errors, every figure is an image the browser decodes, and says what it shows or
why it has no data; devices by name, role and board, GPS positions drawn. `make test` installs
Chromium when run as root (as CI does); without it this test fails and says how to get it."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from loraspot.monitor.record import JsonlSink, Record
from loraspot.monitor.report import write_report

pytestmark = pytest.mark.e2e
T0 = 1_800_000_000.0
HS, NODE = "24dcc3a1b200", "24dcc3a1b201"


def _chromium() -> str:
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    assert exe, "Chromium is not installed: apt-get install chromium (make test does it when run as root)"
    return exe


def _browse(page: Path, *flags: str) -> subprocess.CompletedProcess:
    return subprocess.run([_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--enable-logging=stderr",
                           "--v=0", "--virtual-time-budget=5000", f"--user-data-dir={page.parent / 'profile'}",
                           *flags, page.as_uri()], capture_output=True, text=True, timeout=120)


def _console_messages(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if ":CONSOLE" in line or "Uncaught" in line]


def _recording(path: Path, gps: bool) -> None:
    recs = [Record(HS, "hello", -1, 0, {"board": "tbeam-v1.1-sx1262", "role": "hotspot", "name": "roof"}, T0, "b1"),
            Record(NODE, "hello", -1, 0, {"board": "ttgo-lora32-v1", "role": "node", "name": "field-7"}, T0, "c1")]
    for i in range(40):  # 20 minutes of a hotspot hearing a node
        recs.append(Record(HS, "rx", i, i, {"rssi": -90 - i % 7, "snr": 5.0 + i % 3}, T0 + i * 30, "b1"))
        recs.append(Record(NODE, "uplink", 2 * i, i, {"airtime_ms": 62}, T0 + i * 30 + 1, "c1"))
        if gps:
            recs.append(Record(NODE, "reading", 2 * i + 1, i, {"sensor": "gps", "values": [52.52 + i * 1e-4,
                                                                                           13.40 + i * 2e-4, 35]},
                               T0 + i * 30 + 2, "c1"))
    recs.append(Record(HS, "stats", 40, 0, {"heap_free": 61000}, T0 + 1200, "b1"))
    sink = JsonlSink(path)
    sink.start()
    for r in recs:
        sink.put(r)
    sink.close()


@pytest.mark.parametrize("gps", [True, False])
def test_the_report_in_chromium(tmp_path, gps):
    _recording(tmp_path / "r.jsonl", gps)
    summary = write_report(tmp_path / "r.jsonl", tmp_path / "report.html")
    page = tmp_path / "report.html"

    shot = _browse(page, f"--screenshot={tmp_path / 'shot.png'}", "--window-size=1200,4000")
    assert shot.returncode == 0 and (tmp_path / "shot.png").stat().st_size > 50_000, shot.stderr[-2000:]
    assert _console_messages(shot.stderr) == []

    # the same page, with a probe that writes what the browser made of each figure into the DOM
    probe = tmp_path / "probe.html"
    probe.write_text(page.read_text().replace("</body>", """<script>
window.addEventListener("load", () => { for (const f of document.querySelectorAll("figure")) {
  const img = f.querySelector("img"); f.dataset.decoded = img.complete ? img.naturalWidth : 0; } });
</script></body>"""))
    dom = _browse(probe, "--dump-dom")
    assert dom.returncode == 0 and _console_messages(dom.stderr) == []
    figures = re.findall(r'<figure id="fig-(\w+)" data-decoded="(\d+)">.*?<figcaption>(.*?)</figcaption>',
                         dom.stdout, re.S)
    assert {name for name, _, _ in figures} == {"signal", "packets", "duty", "heap", "positions", "coverage"}, \
        dom.stdout[:3000]
    for name, decoded, caption in figures:
        assert int(decoded) > 300, name  # an image the browser decoded
        assert caption.startswith("shows ") or caption.startswith("no data: "), (name, caption)
    captions = {name: caption for name, _, caption in figures}
    assert captions["signal"] == "shows rssi:roof, snr:roof"  # devices by their names
    assert ("field-7" in captions["positions"]) == gps
    if not gps:
        assert captions["positions"].startswith("no data: no GPS readings")
    rows = re.findall(r"<tr><td>(.*?)</td><td>(.*?)</td><td>(.*?)</td><td>(.*?)</td><td>\d+</td><td>(\d+)</td>",
                      dom.stdout)
    assert ("roof", HS.upper(), "hotspot", "tbeam-v1.1-sx1262", "1") in rows
    assert ("field-7", NODE.upper(), "node", "ttgo-lora32-v1", "1") in rows
    assert summary["names"] == {HS: "roof", NODE: "field-7"}
    assert captions["coverage"].startswith("no data: no beacons or witnesses given")


def test_the_coverage_map_in_chromium(tmp_path):
    """The coverage map drawn from a ledger of two hotspots' beacons and witnesses: the hotspots at
    their claimed positions, the honest link and the flagged ones, read back from the figure's data
    and decoded by the browser."""
    from loraspot.proofs.ledger import Ledger
    from loraspot.proofs.witness import coverage, parse

    from tests.host.test_witness import A, B, scenario

    _recording(tmp_path / "r.jsonl", gps=True)
    beacons = [b for b in (parse(p) for p in scenario(tmp_path / "l.sqlite")) if b is not None]
    with Ledger(tmp_path / "l.sqlite") as led:
        cover = coverage(led, beacons)
    summary = write_report(tmp_path / "r.jsonl", tmp_path / "report.html", cover)
    a, b = A.hex().upper(), B.hex().upper()
    series = summary["series"]["coverage"]
    assert f"hotspot:{a}" in series and f"hotspot:{b}" in series
    assert [x.rsplit(":", 1)[0] for x in series if x.startswith("link:")] == [f"link:{b}>{a}"]  # A heard B
    assert sorted(x.split(":")[-1] for x in series if x.startswith("flagged:")) == ["duplicate", "duplicate+replayed"]
    dom = _browse(tmp_path / "report.html", "--dump-dom")
    assert dom.returncode == 0 and _console_messages(dom.stderr) == []
    (caption,) = re.findall(r'<figure id="fig-coverage">.*?<figcaption>(.*?)</figcaption>', dom.stdout, re.S)
    assert caption.startswith("shows ") and f"hotspot:{a}" in caption, caption


def test_a_console_error_would_be_seen(tmp_path):
    """The check above can fail: a page that logs an error is caught."""
    bad = tmp_path / "bad.html"
    bad.write_text("<!doctype html><html><body><script>console.error('broken figure')</script></body></html>")
    assert any("broken figure" in m for m in _console_messages(_browse(bad, "--dump-dom").stderr))
