"""Monitor pieces without boards: sequence gaps and repeats, bounded sinks that lose and count
rather than block, recordings read back, bad recordings refused."""

from __future__ import annotations

import json
import threading

import pytest
from loraspot.monitor.fleet import Fleet
from loraspot.monitor.record import DatabaseSink, JsonlSink, MonitorError, Record, Sink
from loraspot.monitor.report import analyse, load, write_report


def rec(seq, kind="log", data=None, t=0.0, dev="aa"):
    return Record(dev, kind, seq, seq * 10, data or {"level": "info", "msg": f"m{seq}"}, 1_800_000_000.0 + t)


def test_gaps_repeats_and_a_new_boot():
    f = Fleet()
    d = f.device("aa")
    assert [f.event(d, rec(s)) for s in (0, 1, 2, 2, 5, 6, 4)] == [True, True, True, False, True, True, False]
    assert (d.gaps, d.repeats, d.events) == (2, 2, 5)
    assert any("2 event(s) lost before #5" in t for _, _, t in f.log)
    assert f.event(d, rec(0, "boot", {"boot": "b2", "crash": {"error": "MemoryError"}}))  # numbering starts again
    assert d.boot == "b2" and d.last_error == "crash: MemoryError" and d.gaps == 2
    f.event(d, rec(1, "uplink", {"fcnt": 0, "duty_left_ms": 35000, "airtime_ms": 60}))
    f.event(d, rec(2, "rx", {"rssi": -97, "snr": 7.5}))
    f.event(d, rec(3, "stats", {"up_ms": 5000, "heap_free": 30000, "rx": 9, "forwarded": 8,
                                "dropped": {"old": 1}, "backhaul": "up"}))
    assert (d.uplinks, d.duty_left_ms, d.rssi, d.snr, d.rx, d.forwarded, d.dropped, d.heap_free, d.backhaul) == \
        (1, 35000, -97, 7.5, 9, 8, 1, 30000, "up")


def test_an_update_rolled_back_is_the_boards_last_error_and_in_the_log():
    f = Fleet()
    d = f.device("hs")
    f.event(d, rec(0, "boot", {"boot": "b1"}))
    f.event(d, rec(1, "ota", {"rolled_back": "no health check passed in 5 minutes: backhaul", "app": "a1",
                              "from": "b2"}))
    assert d.last_error == "update rolled back: no health check passed in 5 minutes: backhaul"
    assert any("rolled_back" in t for _, _, t in f.log)


class SlowSink(Sink):
    name = "slow"

    def __init__(self, size):
        super().__init__(size)
        self.release = threading.Event()
        self.got = []

    def write_batch(self, batch):
        self.release.wait(10)
        self.got.extend(batch)


def test_a_slow_sink_loses_and_counts_but_never_blocks():
    s = SlowSink(size=10)
    s.start()
    for i in range(100):
        s.put(rec(i))  # returns at once: the queue is bounded, the rest is counted
    assert s.overflow >= 89
    s.release.set()
    s.close()
    assert s.written == len(s.got) and s.written + s.overflow == 100


def test_recordings_round_trip_and_feed_the_report(tmp_path):
    records = [Record("hs", "hello", -1, 0, {"role": "hotspot", "board": "tbeam-v1.1-sx1262", "name": "roof"},
                      1_800_000_000.0, "h1"), rec(0, "boot", {"boot": "b1", "board": "virtual"}, 0)]
    records += [rec(i, "rx", {"rssi": -90 - i, "snr": 5.0}, i * 60.0, dev="hs") for i in range(1, 30)]
    records += [rec(i, "uplink", {"airtime_ms": 62, "duty_left_ms": 30000}, i * 120.0) for i in range(1, 10)]
    records += [rec(12, "stats", {"heap_free": 40000}, 900.0)]
    for sink in (JsonlSink(tmp_path / "r.jsonl"), DatabaseSink(tmp_path / "r.sqlite")):
        sink.start()
        for r in records:
            sink.put(r)
        sink.close()
        back = load(sink.path)
        assert [(r.device, r.kind, r.seq, r.data) for r in back] == [(r.device, r.kind, r.seq, r.data) for r in records]
    rep = analyse(load(tmp_path / "r.jsonl"))
    assert rep.devices["hs"].rx == 29 and rep.devices["aa"].uplinks == 9 and rep.devices["aa"].gaps == 2  # 9 -> 12
    assert sum(rep.airtime["aa"].values()) == 9 * 62
    summary = write_report(tmp_path / "r.sqlite", tmp_path / "out" / "r.html")
    # the hotspot by its name (from the monitor's hello record), the node by its MAC
    assert summary["series"]["signal"] == ["rssi:roof", "snr:roof"] and summary["series"]["duty"] == ["duty:AA"]
    assert summary["empty"] == {"positions": "no GPS readings recorded (boards with a GPS, such as the T-Beam, "
                                             "report them)",
                                "coverage": "no beacons or witnesses given (loraspot report --ledger LEDGER --frames "
                                            "FRAMES: docs/proofs.md)"}
    hs = analyse(load(tmp_path / "r.jsonl")).devices["hs"]
    assert (hs.role, hs.board, hs.boots, hs.gaps) == ("hotspot", "tbeam-v1.1-sx1262", 1, 0)  # hello is not numbered
    page = (tmp_path / "out" / "r.html").read_text()
    assert json.loads(page.split('id="summary">')[1].split("</script>")[0])["events"] == len(records)


def test_bad_recordings_are_refused(tmp_path):
    (tmp_path / "bad.jsonl").write_text('{"device": "a", "ev": "x", "seq": 0}\nnot json\n')
    with pytest.raises(MonitorError, match="line 2: not a monitor record"):
        load(tmp_path / "bad.jsonl")
    (tmp_path / "bad.sqlite").write_bytes(b"not a database at all" * 100)
    with pytest.raises(MonitorError, match="not a monitor database"):
        load(tmp_path / "bad.sqlite")
    (tmp_path / "empty.jsonl").write_text("")
    with pytest.raises(MonitorError, match="no events"):
        write_report(tmp_path / "empty.jsonl", tmp_path / "x.html")


class SteadySink(Sink):
    """A disk that takes 20 ms per write: slower than the events come, in bursts."""

    name = "steady"

    def __init__(self):
        super().__init__()
        self.got = []

    def write_batch(self, batch):
        import time

        time.sleep(0.02)
        self.got.extend(batch)


def test_a_slow_disk_loses_nothing_within_the_queue():
    s = SteadySink()
    s.start()
    for i in range(20_000):
        s.put(rec(i))
    s.close()
    assert s.overflow == 0 and [r.seq for r in s.got] == list(range(20_000))


def test_a_recording_with_numbers_no_float_holds_is_refused_in_one_line(tmp_path):
    """JSON allows integers of any size: one too large for a float (host_time 10**400) is a bad
    record, not an OverflowError; in an event's data it is left out like any wrong type."""
    from loraspot.monitor import report
    from loraspot.monitor.record import MonitorError

    line = '{"device":"a","ev":"rx","seq":1,"t":0,"host_time":%s,"data":{"rssi":%s}}\n'
    bad = tmp_path / "bad.jsonl"
    bad.write_text(line % ("1" + "0" * 400, "-80"))
    with pytest.raises(MonitorError, match="line 1: not a monitor record"):
        report.load(bad)
    odd = tmp_path / "odd.jsonl"
    odd.write_text(line % ("5.0", "1" + "0" * 400))
    rep = report.analyse(report.load(odd))
    assert rep.devices["a"].rx == 1 and rep.rssi == {}


def test_a_database_keeps_each_numbered_event_once_however_many_monitors_bring_it(store_target, tmp_path):
    """Two monitors (two sinks) bring the same device's events, one of them twice (a batch tried
    again after a commit that went unanswered): each event the device numbered is stored once; each
    monitor's own hello (seq -1, not the device's) stays. Run on SQLite and on a PostgreSQL server."""
    from loraspot.store import Store

    hello = Record("aa", "hello", -1, 0, {"role": "node"}, 1_800_000_000.0, "b1")
    numbered = [Record("aa", "boot", 0, 0, {"boot": "b1"}, 1_800_000_000.0, "b1")]
    numbered += [Record("aa", "stats", i, i * 10, {"events": i}, 1_800_000_000.0 + i, "b1") for i in range(1, 50)]
    numbered += [Record("bb", "boot", 0, 0, {"boot": "c1"}, 1_800_000_001.0, "c1")]  # another device's own #0
    first, second = DatabaseSink(store_target), DatabaseSink(store_target)
    first.write_batch([hello, *numbered[:30]])
    first.write_batch(numbered[20:40])  # the retried batch, overlapping
    second.write_batch([hello, *numbered[10:]])
    first.finish()
    second.finish()
    back = load(store_target)
    assert [(r.device, r.seq) for r in back if r.seq >= 0] == [(r.device, r.seq) for r in numbered]
    assert sum(r.kind == "hello" for r in back) == 2
    assert analyse(back).devices["aa"].gaps == 0
    store = Store(store_target)
    with pytest.raises(store.integrity_errors):  # the database's own rule, whoever writes
        store.execute("INSERT INTO events (device, boot, seq, t, kind, host_time, port, data) "
                      "VALUES ('aa', 'b1', 3, 0, 'x', 0, NULL, '{}')")
    store.close()
    summary = write_report(store_target, tmp_path / "r.html")
    assert summary["events"] == len(numbered) + 2


def test_a_monitor_database_an_earlier_release_made_is_kept_and_deduplicated(tmp_path):
    import sqlite3

    from loraspot.monitor.record import MIGRATIONS
    from loraspot.store import statements

    path = tmp_path / "old.sqlite"
    db = sqlite3.connect(path, isolation_level=None)
    for s in statements(MIGRATIONS[0]):
        db.execute(s)
    rows = [("aa", "b1", seq, "stats") for seq in (0, 1, 1, 2)] + [("aa", "b1", -1, "hello")] * 2
    db.executemany("INSERT INTO events (device, boot, seq, t, kind, host_time, port, data) "
                   "VALUES (?, ?, ?, 0, ?, 0, NULL, '{}')", rows)
    db.close()
    DatabaseSink(path).finish()
    assert [(r.seq, r.kind) for r in load(path)] == [(0, "stats"), (1, "stats"), (2, "stats"), (-1, "hello"),
                                                       (-1, "hello")]


def test_alerts_offline_back_and_drops_each_once(store_target):
    """The alert rules on a store of events (SQLite and PostgreSQL): a board silent for longer than
    the limit raises `offline` once however often the store is checked, and `back` once when it
    reports again; a jump in a hotspot's drop counters raises `drops`, a slow climb does not."""
    from loraspot.monitor.alerts import Watch

    t0 = 1_800_000_000.0
    sink = DatabaseSink(store_target)

    def stats(dev, seq, at, dropped, boot="b1"):
        return Record(dev, "stats", seq, seq * 1000, {"rx": seq, "dropped": {"full": dropped, "age": 1}}, t0 + at,
                      boot)

    sink.write_batch([stats("hs1", 0, 0, 0), stats("hs2", 0, 0, 0)])
    watch = Watch(store_target, offline_after=30, drops=10)
    assert watch.check(now=t0 + 5) == []
    sink.write_batch([stats("hs1", 1, 10, 3), stats("hs2", 1, 10, 1)])  # +3: a slow climb
    assert watch.check(now=t0 + 15) == []
    sink.write_batch([stats("hs1", 2, 20, 40)])  # +37 at once; hs2 says nothing more
    raised = watch.check(now=t0 + 25)
    assert [(a.device, a.kind, a.detail["dropped"]) for a in raised] == [("hs1", "drops", 37)]
    raised = watch.check(now=t0 + 45)  # hs2 silent for 35 s
    assert [(a.device, a.kind) for a in raised] == [("hs2", "offline")]
    for later in (50, 60, 120):  # checked again and again: no second alert
        sink.write_batch([stats("hs1", 3 + later, later, 40)])
        assert watch.check(now=t0 + later + 1) == []
    sink.write_batch([stats("hs2", 0, 130, 0, boot="b2")])  # back, after a reboot (a new boot's numbering)
    assert [(a.device, a.kind) for a in watch.check(now=t0 + 131)] == [("hs2", "back")]
    sink.finish()
    watch.close()
    # a watch started later knows the devices already in the store, and a silent one is said once
    late = Watch(store_target, offline_after=30, drops=10)
    assert [(a.device, a.kind) for a in late.check(now=t0 + 400)] == [("hs1", "offline"), ("hs2", "offline")]
    assert late.check(now=t0 + 500) == []
    late.close()


def test_alerts_ride_out_a_dropped_server_session(postgres_server):
    """The server drops the watch's session (a restart, an administrator): that check says so in
    an error the command prints and goes on from; the next check connects again and still raises
    each alert once."""
    from loraspot.monitor.alerts import Watch
    from loraspot.store import Store

    url = postgres_server.new_database()
    t0 = 1_800_000_000.0
    sink = DatabaseSink(url)
    sink.write_batch([Record("hs1", "stats", 0, 0, {"dropped": {"full": 0}}, t0, "b1")])
    watch = Watch(url, offline_after=30, drops=10)
    assert watch.check(now=t0 + 1) == []
    admin = Store(url)
    admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() "
                  "AND pid <> pg_backend_pid()")
    admin.close()
    with pytest.raises(MonitorError):
        watch.check(now=t0 + 2)
    sink = DatabaseSink(url)  # the sink's own session went too: a new one, as its retry would
    sink.write_batch([Record("hs1", "stats", 1, 10, {"dropped": {"full": 50}}, t0 + 3, "b1")])
    sink.finish()
    assert [(a.device, a.kind) for a in watch.check(now=t0 + 4)] == [("hs1", "drops")]
    assert [(a.device, a.kind) for a in watch.check(now=t0 + 40)] == [("hs1", "offline")]
    assert watch.check(now=t0 + 50) == []
    watch.close()
