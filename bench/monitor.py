"""The monitor's cost: events parsed per second on one core (frames through the console client
into the fleet state and a JSON-lines file), then 16 virtual boards at 921600 baud sending events
as fast as their line carries, monitored at once, with the monitor's CPU use and memory; then the
events per second a database takes from the monitor's database sink (batches of 1000, as the sink
writes them): an SQLite file, and a PostgreSQL server (tests/postgres.py) from one monitor and
from three at once."""

from __future__ import annotations

import functools
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import serial
from loraspot import boards
from loraspot.console import codec
from loraspot.console.client import ConsoleClient
from loraspot.flash import flasher
from loraspot.flash import image as fsimage
from loraspot.monitor.fleet import Fleet
from loraspot.monitor.monitor import EARLY_EVENTS, Monitor
from loraspot.monitor.record import DatabaseSink, JsonlSink, Record

# a board that sends stats-like events without pause (the firmware's own frame encoder)
FLOOD = b"""import sys, select, json, binascii, machine
from spot import codec as frame
out = sys.stdout.buffer
poll = select.poll()
poll.register(sys.stdin, select.POLLIN)
me = binascii.hexlify(machine.unique_id()).decode()
line = b""
n = 0
while True:
    out.write(frame.encode({"ev": "stats", "seq": n, "t": n * 5, "data": {"up_ms": n * 5, "heap_free": 31000,
                            "rx": n, "forwarded": n, "last_rssi": -97, "last_snr": 7.25}}))
    n += 1
    while n % 16 == 0 and poll.poll(0):
        line += sys.stdin.buffer.read(1)
        if line.endswith(b"\\n"):
            if line.startswith(b"~") and b'"hello"' in line:
                rid = json.loads(line[1 : line.rindex(b"|")])["id"]
                out.write(frame.encode({"id": rid, "ok": {"proto": 1, "id": me, "board": "virtual",
                                        "role": "bench", "boot": "flood", "fw": "bench"}}))
            line = b""
"""


class StreamPort(serial.SerialBase):
    """A port that hands out a prepared byte stream, then reports itself gone."""

    def __init__(self, data: bytes):
        self.data = memoryview(data)
        self.pos = 0
        self.done = threading.Event()
        super().__init__()
        self.is_open = True

    def open(self) -> None:
        pass

    @property
    def in_waiting(self) -> int:
        return min(65536, len(self.data) - self.pos)

    def read(self, size: int = 1) -> bytes:
        if self.pos >= len(self.data):
            self.done.set()
            raise serial.SerialException("end of stream")
        out = bytes(self.data[self.pos : self.pos + size])
        self.pos += len(out)
        return out

    def write(self, b) -> int:
        return len(b)

    def close(self) -> None:
        self.is_open = False


def parse_rate(tmp: Path) -> None:
    n = 200_000
    frames = b"".join(codec.encode({"ev": "stats", "seq": i, "t": i, "data": {"up_ms": i, "heap_free": 31000, "rx": i,
                                                                             "forwarded": i, "last_rssi": -97}})
                      for i in range(n))
    fleet = Fleet()
    d = fleet.device("bench")
    sink = JsonlSink(tmp / "parse.jsonl")
    sink.start()

    def take(ev):
        r = Record(d.device, ev.kind, ev.seq, ev.t, ev.data, ev.host_time)
        if fleet.event(d, r):
            sink.put(r)

    port = StreamPort(frames)
    c0, t0 = time.process_time(), time.monotonic()
    client = ConsoleClient(port, on_event=take, keep_events=False)
    port.done.wait()
    client.close()
    cpu, wall = time.process_time() - c0, time.monotonic() - t0
    sink.close()
    print(f"parse: {n} events ({len(frames) / 1e6:.1f} MB) in {wall:.2f} s wall, {cpu:.2f} s CPU: "
          f"{n / cpu:,.0f} events/s per core (frame check, JSON, fleet state, JSON-lines record); "
          f"{d.events} taken, {d.gaps} gaps, {sink.written} written")


def flood_image(path: Path) -> Path:
    profile = boards.get("virtual")
    files = fsimage.app_files(profile, mpy_dir=flasher.compiled_firmware(flasher.resources.cache_dir() / "mpy-cache"))
    files["main.py"] = FLOOD
    fsimage.create_flash_image(path, profile, files)
    return path


def rss_kb() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def sixteen(tmp: Path) -> None:
    procs = []
    try:
        for i in range(16):
            img = flood_image(tmp / f"f{i}.bin")
            p = subprocess.Popen([sys.executable, "-m", "loraspot.cli", "--json", "sim", "board", "--flash", str(img),
                                  "--baud", "921600"], stdout=subprocess.PIPE, text=True)
            assert p.stdout
            procs.append((p, json.loads(p.stdout.readline())))
            threading.Thread(target=p.stdout.read, daemon=True).start()
        time.sleep(2)
        sink = JsonlSink(tmp / "sixteen.jsonl")
        rss0 = rss_kb()
        mon = Monitor([info["pty"] for _, info in procs], baud=921600, sinks=[sink]).start()
        time.sleep(2)
        g0 = sum(d.gaps for d in mon.fleet.devices.values())
        r0, c0, t0 = mon.records, time.process_time(), time.monotonic()
        time.sleep(15)
        r1, c1, t1 = mon.records, time.process_time(), time.monotonic()
        g1 = sum(d.gaps for d in mon.fleet.devices.values())
        rss1 = rss_kb()
        mon.stop()
        rate = (r1 - r0) / (t1 - t0)
        line_rate = 16 * 92160 / len(codec.encode({"ev": "stats", "seq": 12345, "t": 61725, "data": {
            "up_ms": 61725, "heap_free": 31000, "rx": 12345, "forwarded": 12345, "last_rssi": -97, "last_snr": 7.25}}))
        print(f"16 boards at 921600 baud: {rate:,.0f} events/s taken (the 16 lines carry at most {line_rate:,.0f}/s "
              f"while the boards keep up), monitor CPU {100 * (c1 - c0) / (t1 - t0):.0f} % of one core, "
              f"RSS {rss1 / 1024:.0f} MB (+{(rss1 - rss0) / 1024:.0f} MB); {g1 - g0} events lost in the 15 s "
              f"measured ({g0} while the 16 connected: events before a board's hello are kept up to "
              f"{EARLY_EVENTS}), {sink.overflow} not recorded; {len(mon.fleet.devices)} devices")
    finally:
        for p, _ in procs:
            p.terminate()
        for p, _ in procs:
            p.wait(10)


def _ingest(target, device: str, n: int) -> None:
    sink = DatabaseSink(target)
    try:
        for start in range(0, n, 1000):
            sink.write_batch([Record(device, "stats", i, i * 10, {"events": i, "heap_free": 40000, "rx": i // 3},
                                     1_800_000_000.0 + i / 100, "b1", "/dev/ttyUSB0")
                              for i in range(start, min(n, start + 1000))])
    finally:
        sink.finish()


def database_rate(tmp: Path) -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from tests.postgres import PostgresServer, bindir

    n = 60_000
    t = time.monotonic()
    _ingest(tmp / "events.sqlite", "aa", n)
    sqlite_rate = n / (time.monotonic() - t)
    print(f"database sink, SQLite file: {n} events in batches of 1000 = {sqlite_rate:,.0f} events/s")
    if bindir() is None:
        print("database sink, PostgreSQL: skipped, PostgreSQL is not installed (make servers)")
        return
    with PostgresServer() as pg:
        url = pg.new_database()
        t = time.monotonic()
        _ingest(url, "aa", n)
        one = n / (time.monotonic() - t)
        url = pg.new_database()
        DatabaseSink(url).finish()  # the schema, made once before the three start
        threads = [threading.Thread(target=_ingest, args=(url, f"d{k}", n // 3)) for k in range(3)]
        t = time.monotonic()
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        three = n / (time.monotonic() - t)
    print(f"database sink, PostgreSQL: one monitor {one:,.0f} events/s, three at once {three:,.0f} events/s in all "
          f"({three / one:.2f}x one; SQLite file {sqlite_rate / one:.2f}x one)")


def main() -> None:
    global print
    print = functools.partial(print, flush=True)
    os.environ.setdefault("LORASPOT_RUNTIME_DIR", tempfile.mkdtemp())
    with tempfile.TemporaryDirectory() as d:
        parse_rate(Path(d))
        sixteen(Path(d))
        database_rate(Path(d))
    print(f"  bench process peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")


if __name__ == "__main__":
    main()
