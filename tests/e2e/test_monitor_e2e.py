"""`loraspot monitor` on virtual boards: every event recorded exactly once (JSON lines and SQLite,
checked against the boards' own counters), a board unplugged and back on another pty, garbage
and a flood on the line, MQTT through a real Mosquitto that restarts, and the report."""

from __future__ import annotations

import contextlib
import json
import os
import pty
import select
import sqlite3
import subprocess
import sys
import threading
import time
import tracemalloc

import paho.mqtt.client as mqtt
import pytest
from loraspot import device
from loraspot.listen.server import Listener
from loraspot.monitor.monitor import Monitor
from loraspot.monitor.record import DatabaseSink, JsonlSink, MqttSink
from loraspot.monitor.report import write_report
from loraspot.sim.medium import Medium

from tests.broker import Broker, kinds
from tests.e2e.conftest import bytecode_image
from tests.e2e.hotspot_world import fresh_devices, hotspot_image, node_image, wait

pytestmark = pytest.mark.e2e
SPEED = 10


def _power_cycle(h) -> None:
    """Cut the board's power (its port stays with the monitor: a serial port has one user)."""
    pid = h.board.firmware_pid
    h.board.kill_firmware()
    assert wait(lambda: h.board.firmware_pid not in (None, pid), 10)


def _jsonl(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line]


def _stats_of_latest_boot(rows: list[dict], dev: str) -> int:
    boots = [r["data"]["boot"] for r in rows if r["device"] == dev and r["ev"] == "boot"]
    if not boots:
        return 0
    return sum(r["ev"] == "stats" and r["data"]["events"] > 0 for r in rows
               if r["device"] == dev and r["boot"] == boots[-1])


def test_four_boards_every_event_recorded_once_then_report(make_board, tmp_path):
    devices = fresh_devices(3)
    jsonl, db = tmp_path / "events.jsonl", tmp_path / "events.sqlite"
    with Medium(speed=SPEED) as medium, Listener(devices, port=0, dedup_ms=200 / SPEED) as ls:
        boards = [make_board(hotspot_image(tmp_path / "hs.bin", server_port=ls.address[1], stats_interval=5),
                             speed=SPEED, medium=medium.address, register=False)]
        for i, (eui, key) in enumerate(devices.items()):
            boards.append(make_board(node_image(tmp_path / f"n{i}.bin", eui, key, stats_interval=5), speed=SPEED,
                                     medium=medium.address, register=False, position=(100.0 * (i + 1), 0, 0),
                                     hardware={"seed": i, "bme280": {}}))
        for b in boards:
            b.wait_status("boot")
        mon = Monitor([b.info["pty"] for b in boards], sinks=[JsonlSink(jsonl), DatabaseSink(db)]).start()
        try:
            assert wait(lambda: len(mon.fleet.devices) == 4, 20)
            for b in boards:  # from a fresh boot on, so that every event the board numbers is seen
                _power_cycle(b)
                time.sleep(0.7)
            assert wait(lambda: sum(d.uplinks for d in mon.fleet.devices.values()) >= 6, 90)
            # at least two stats events per board in its latest boot (the one after the power cycle;
            # on a loaded machine the boot before may have sent its own): each carries the board's
            # own count of the events it numbered before it
            assert wait(lambda: all(_stats_of_latest_boot(_jsonl(jsonl), b.board.device_id) >= 2 for b in boards),
                        90)
        finally:
            mon.stop()
    assert mon.overflow() == 0
    rows = _jsonl(jsonl)
    sql = sqlite3.connect(db).execute("SELECT device, boot, seq, kind, data FROM events ORDER BY id").fetchall()
    assert [(r["device"], r["seq"]) for r in rows] == [(x[0], x[2]) for x in sql]
    counters = {}
    for b in boards:
        dev = b.board.device_id
        boot = [r for r in rows if r["device"] == dev and r["ev"] == "boot"][-1]["data"]["boot"]
        mine = [r for r in rows if r["device"] == dev and r["boot"] == boot and r["seq"] >= 0]  # not hello
        n = [r for r in mine if r["ev"] == "stats"][-1]["data"]["events"]  # the board's counter
        counters[dev] = n
        assert [r["seq"] for r in mine][: n + 1] == list(range(n + 1)), (dev, n)  # each one, once, in order
        assert [x[2] for x in sql if x[0] == dev and x[1] == boot and x[2] >= 0][: n + 1] == list(range(n + 1))
        assert mon.fleet.devices[dev].gaps == 0 and mon.fleet.devices[dev].repeats == 0
    kinds = {r["ev"] for r in rows}
    assert {"boot", "stats", "rx", "uplink", "join"} <= kinds
    hs = mon.fleet.devices[boards[0].board.device_id]
    assert hs.role == "hotspot" and hs.rx >= 3 and hs.rssi is not None
    node = mon.fleet.devices[boards[1].board.device_id]
    assert node.role == "node" and node.uplinks >= 1 and node.heap_free

    for src in (jsonl, db):
        out = tmp_path / f"report-{src.suffix[1:]}.html"
        summary = write_report(src, out)
        page = out.read_text()
        assert summary["events"] == len(rows) and set(summary["devices"]) == set(counters)
        names = summary["names"]  # unnamed boards: by their MAC, upper-case hex as everywhere
        assert names == {d: d.upper() for d in counters}
        assert f"rssi:{names[boards[0].board.device_id]}" in summary["series"]["signal"]
        assert {f"packets:{names[d]}" for d in counters} <= set(summary["series"]["packets"])
        assert f"duty:{names[boards[1].board.device_id]}" in summary["series"]["duty"]
        for name, png in summary["png"].items():
            with open(png, "rb") as f:
                data = f.read()
            assert data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 5000, name
        assert page.count("data:image/png;base64,") == len(summary["png"]) == 6 and boards[0].board.device_id in page


def _take_pty(name: str, timeout: float = 10.0) -> tuple[int, ...]:
    """Hold the pty number `name` had, so that the board comes back under another name: wait until
    it is freed (the monitor closes it), then open ptys until one gets it (the kernel hands out the
    lowest free number, and tests running beside this one take and free numbers too)."""
    end = time.monotonic() + timeout
    while os.path.exists(name) and time.monotonic() < end:
        time.sleep(0.02)
    held: list[int] = []
    while len(held) < 512 and not os.path.exists(name):
        master, slave = os.openpty()
        held += [master, slave]
        if os.ttyname(slave) == name:
            break
    return tuple(held)  # ours, or (rarely) taken by another process: either way not the board's


def test_unplug_and_replug_on_another_pty(tmp_path, monkeypatch):
    """A board in its own process is killed and started again (a new pty): shown gone, then back."""
    monkeypatch.setenv("LORASPOT_RUNTIME_DIR", str(tmp_path / "run"))
    flash = tmp_path / "b.bin"

    def start():
        p = subprocess.Popen([sys.executable, "-m", "loraspot.cli", "--json", "sim", "board", "--flash", str(flash)],
                             stdout=subprocess.PIPE, text=True, env=dict(os.environ))
        assert p.stdout
        return p, json.loads(p.stdout.readline())

    proc, info = start()
    hold: tuple[int, ...] = ()
    jsonl = tmp_path / "e.jsonl"
    mon = Monitor([info["pty"]], sinks=[JsonlSink(jsonl)]).start()
    try:
        assert wait(lambda: any(d.state == "live" for d in mon.fleet.devices.values()), 20)
        (dev,) = mon.fleet.devices.values()
        proc.kill()
        proc.wait()
        assert wait(lambda: dev.state == "gone", 10)
        hold = _take_pty(info["pty"])  # the board comes back under another name
        proc, again = start()
        assert again["pty"] != info["pty"] and again["id"] == info["id"]
        assert wait(lambda: dev.state == "live" and dev.port == again["pty"], 20)
        assert dev.reconnects == 1
        # still recording: power-cut the firmware of the new board, its new boot arrives
        assert proc.stdout
        status = json.loads(proc.stdout.readline())
        while status.get("event") != "boot":
            status = json.loads(proc.stdout.readline())
        os.kill(status["pid"], 9)
        assert wait(lambda: any(r["ev"] == "boot" and r["port"] == again["pty"] for r in _jsonl(jsonl)), 20)
    finally:
        mon.stop()
        proc.kill()
        proc.wait()
        for fd in hold:
            os.close(fd)
    assert any("[gone]" in t for _, _, t in mon.fleet.log) and any("[back]" in t for _, _, t in mon.fleet.log)


VOLUME = 230_000  # bytes of flood the monitor must keep up with (5 s of the line at 460800 baud)
LINE_BYTES = len("flood line 12345 " + "x" * 60) + 2


def test_garbage_and_a_flood_do_not_break_or_swamp_the_monitor(make_board, tmp_path):
    flood = (b"import sys\nn = 0\nwhile True:\n    n += 1\n"
             b"    sys.stdout.write('flood line %d ' % n + 'x' * 60 + '\\n')\n")
    # 460800 baud: the line full, without starving the speed-up clocks of tests running beside it
    h = make_board(bytecode_image(tmp_path / "f.bin", flood), baud=460800, pty=True)
    h.wait_status("boot")
    tracemalloc.start()
    mon = Monitor([h.info["pty"]], baud=460800).start()
    try:
        assert wait(lambda: mon.fleet.log_total > 100, 30)
        before_tx, before_lines = h.board.uart.counters["tx_bytes"], mon.fleet.log_total
        # a volume, not a rate: on a loaded machine the board sends more slowly, the check is the same
        assert wait(lambda: h.board.uart.counters["tx_bytes"] - before_tx >= VOLUME, 300)
        sent = h.board.uart.counters["tx_bytes"] - before_tx
        assert wait(lambda: (mon.fleet.log_total - before_lines) * LINE_BYTES > 0.9 * sent, 30)
        lines = mon.fleet.log_total - before_lines
        _, peak = tracemalloc.get_traced_memory()
    finally:
        mon.stop()
        tracemalloc.stop()
    assert len(mon.fleet.log) == mon.fleet.log.maxlen  # the log keeps its bound
    assert lines * LINE_BYTES > 0.9 * sent, (lines, sent)  # the monitor kept up with the line
    assert mon.fleet.log[-1][2].startswith("flood line ")
    assert peak < 40 * 1024 * 1024, peak  # bounded: the log keeps its last lines only

    # Garbage and half frames from a board with a normal console: shown as text, the view goes on.
    ok = make_board(pty=True)
    ok.wait_status("boot")
    mon = Monitor([ok.info["pty"]]).start()
    try:
        assert wait(lambda: any(d.state == "live" for d in mon.fleet.devices.values()), 10)
        time.sleep(0.5)
        assert sum(s["event"] == "boot" for s in ok.status) == 1  # opening the port did not reset the board
        ok.board.uart.emit(b"\x00\xff garbage \x1b[31m\r\n~{\"ev\":\"stats\",\"seq\":1|deadbeef\r\n~{half a fr")
        ok.board.uart.emit(b"ame\r\n")
        _power_cycle(ok)
        assert wait(lambda: any(d.events >= 1 for d in mon.fleet.devices.values()), 10)
        from loraspot.monitor.view import render

        render(mon)  # draws with whatever arrived
    finally:
        mon.stop()
    texts = [t for _, _, t in mon.fleet.log]
    assert any("garbage" in t for t in texts) and any("half a fr" in t for t in texts)


# on every broker this machine has: Mosquitto (as CI installs it) and amqtt, what `make test` uses
# where Mosquitto is not installed; neither present is a failure, not a skip
@pytest.mark.parametrize("kind", kinds() or ["mosquitto"])
def test_mqtt_through_a_restarting_broker(make_board, tmp_path, kind):
    broker = Broker(tmp_path, kind=kind)
    got: list[tuple[str, dict]] = []
    sub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="test-sub", clean_session=False)
    sub.on_connect = lambda c, u, f, rc, p=None: c.subscribe("loraspot/#", qos=1)
    sub.on_message = lambda c, u, m: got.append((m.topic, json.loads(m.payload)))
    sub.reconnect_delay_set(0.2, 1)
    sub.connect("127.0.0.1", broker.port, keepalive=5)
    sub.loop_start()
    h = make_board(pty=True)
    h.wait_status("boot")
    sink = MqttSink(broker.url, client_id="monitor-test")
    mon = Monitor([h.info["pty"]], sinks=[sink]).start()
    try:
        assert wait(lambda: any(d.state == "live" for d in mon.fleet.devices.values()), 10)
        _power_cycle(h)
        assert wait(lambda: any(t.endswith("/event/boot") for t, _ in got), 10)
        dev = next(iter(mon.fleet.devices))
        assert all(t.startswith(f"loraspot/{dev}/event/") for t, _ in got)
        broker.stop()  # the broker goes away; the board goes on, and boots twice while it is away
        state = mon.fleet.devices[dev]
        for _ in range(2):
            boot = state.boot
            _power_cycle(h)
            assert wait(lambda boot=boot: state.boot not in (None, boot), 20)
        broker.start()
        boot_ids = wait(lambda: len({p["boot"] for t, p in got if t.endswith("/event/boot")}) >= 3, 20)
    finally:
        mon.stop()
        sub.loop_stop()
        sub.disconnect()
        broker.stop()
    assert boot_ids, [t for t, _ in got]
    for boot in {p["boot"] for _, p in got}:
        seqs = sorted({p["seq"] for _, p in got if p["boot"] == boot and p["seq"] >= 0})  # hello is not numbered
        if not seqs:  # a boot whose only message was its hello (the last one, as the test stopped)
            continue
        assert seqs == list(range(seqs[0], seqs[-1] + 1)), (boot, seqs)


@contextlib.contextmanager
def _raw_terminal(url: str):
    """`loraspot monitor --raw` in a pseudo-terminal: (pid, fd, read_until); killed if the test fails."""
    pid, fd = pty.fork()
    if pid == 0:  # the child: loraspot in a terminal
        os.execv(sys.executable, [sys.executable, "-m", "loraspot.cli", "monitor", "--raw", "--port", url])
    out = bytearray()

    def read_until(what: bytes, timeout: float = 20) -> bytes:
        end = time.monotonic() + timeout
        while what not in out and time.monotonic() < end:
            if select.select([fd], [], [], 0.2)[0]:
                try:
                    out.extend(os.read(fd, 4096))
                except OSError:  # the terminal closed: the child is gone
                    break
        assert what in out, bytes(out[-500:])
        return bytes(out)

    try:
        yield pid, fd, read_until
    except BaseException:
        os.kill(pid, 9)
        os.waitpid(pid, 0)
        raise


def test_raw_terminal_quits_on_ctrl_bracket(make_board):
    h = make_board(pty=True)
    h.wait_status("boot")
    with _raw_terminal(h.info["url"]) as (pid, fd, read_until):
        read_until(b"Ctrl-] quits")
        _reboot_via(fd)
        read_until(b"rst:")  # the board's boot text came through
        os.write(fd, b"\x1d")
        _, status = os.waitpid(pid, 0)
    assert os.WEXITSTATUS(status) == 0


def test_raw_terminal_puts_a_board_left_at_the_prompt_back_to_its_app(make_board):
    """Ctrl-C in the raw terminal stops the app at the MicroPython prompt (a development board);
    quitting resets it, and it runs its app again."""
    h = make_board(pty=True)
    h.wait_status("boot")
    with _raw_terminal(h.info["url"]) as (pid, fd, read_until):
        read_until(b"Ctrl-] quits")
        os.write(fd, b"\x03")
        read_until(b">>> ")
        os.write(fd, b"\x1d")
        read_until(b"reset, its app runs again")
        _, status = os.waitpid(pid, 0)
    assert os.WEXITSTATUS(status) == 0
    h.wait_status("boot", count=2)
    client, hello = device.connect(h.info["url"])
    client.close()
    assert hello["proto"] == 1


def _reboot_via(fd: int) -> None:
    """Type a console request into the terminal: the board reboots."""
    from loraspot.console import codec

    os.write(fd, b"\n" + codec.encode({"id": 1, "op": "reboot"}))


def test_cli_json_lines_and_report(make_board, tmp_path, capsys):
    from loraspot.cli.main import main

    h = make_board(pty=True)
    h.wait_status("boot")
    threading.Timer(1.5, _power_cycle, (h,)).start()
    jsonl = tmp_path / "cli.jsonl"
    assert main(["--json", "monitor", "--port", h.info["pty"], "--duration", "5", "--record", str(jsonl)]) == 0
    out = capsys.readouterr()
    lines = [json.loads(x) for x in out.out.splitlines() if x.strip()]
    assert any(x["ev"] == "boot" for x in lines) and lines == _jsonl(jsonl)
    assert "events from 1 device(s)" in out.err
    assert main(["--json", "report", str(jsonl), "--out", str(tmp_path / "r.html")]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["devices"] == [h.board.device_id] and (tmp_path / "r-heap.png").exists()


@pytest.mark.long
def test_three_monitor_processes_feed_one_postgresql_store_each_event_once(make_board, postgres_server, tmp_path):
    """Three `loraspot monitor --db postgresql://...` processes (as on three machines), two boards
    each, one server; the server drops every monitor's session in the middle of the run. Every
    event each board numbered is in the store exactly once, in order (checked against the board's
    own count in its stats events), and `loraspot report` reads the store."""
    import signal

    from loraspot.store import Store

    from tests.e2e.hotspot_world import free_udp_port

    url = postgres_server.new_database()
    with Medium(speed=SPEED) as medium:
        boards = [make_board(hotspot_image(tmp_path / f"hs{i}.bin", server_port=free_udp_port(), stats_interval=1),
                             speed=SPEED, medium=medium.address, register=False) for i in range(6)]
        for b in boards:
            b.wait_status("boot")
        logs = [open(tmp_path / f"monitor{k}.log", "w") for k in range(3)]  # noqa: SIM115 (closed below)
        monitors = [subprocess.Popen([sys.executable, "-m", "loraspot.cli", "monitor", "--db", url,
                                      *(a for b in boards[k::3] for a in ("--port", b.info["pty"]))],
                                     stdout=logs[k], stderr=subprocess.STDOUT,
                                     preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
                    for k in range(3)]
        store = Store(url)

        def count(sql: str) -> int:
            try:
                return store.execute(sql).fetchone()[0]
            except store.errors:  # the table not made yet by the first monitor
                return 0

        try:
            assert wait(lambda: count("SELECT count(DISTINCT device) FROM events WHERE kind = 'hello'") == 6, 60)
            for b in boards:  # from a fresh boot on, so that every event the board numbers is seen
                _power_cycle(b)
            ids = [b.board.device_id for b in boards]

            def stats_after_boot(n: int) -> bool:
                rows = store.execute("SELECT device, boot, kind, data FROM events WHERE seq >= 0").fetchall()
                latest = {d: [json.loads(x)["boot"] for dd, _, k, x in rows if dd == d and k == "boot"]
                          for d in ids}
                return all(latest[d] and sum(dd == d and bt == latest[d][-1] and k == "stats"
                                             for dd, bt, k, _ in rows) >= n for d in ids)

            assert wait(lambda: stats_after_boot(2), 90)
            before = count("SELECT count(*) FROM events")
            dropped = count("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                            "WHERE datname = current_database() AND pid <> pg_backend_pid()")
            assert dropped >= 3  # every monitor's session
            assert wait(lambda: count("SELECT count(*) FROM events") > before + 30, 90)  # written again since
            assert wait(lambda: stats_after_boot(5), 90)
        finally:
            for m in monitors:
                m.send_signal(signal.SIGINT)
            codes = [m.wait(60) for m in monitors]
            for f in logs:
                f.close()
        assert codes == [0] * 3, [(tmp_path / f"monitor{k}.log").read_text()[-2000:] for k in range(3)]
        rows = store.execute("SELECT device, boot, seq, kind, data FROM events WHERE seq >= 0 ORDER BY id").fetchall()
        twice = store.execute("SELECT device, boot, seq FROM events WHERE seq >= 0 GROUP BY device, boot, seq "
                              "HAVING count(*) > 1").fetchall()
        store.close()
    assert twice == []
    for d in ids:
        boot = [json.loads(x)["boot"] for dd, _, _, k, x in rows if dd == d and k == "boot"][-1]
        mine = [(s, k, json.loads(x)) for dd, bt, s, k, x in rows if dd == d and bt == boot]
        n = [x for _, k, x in mine if k == "stats"][-1]["events"]  # the board's own count
        assert sorted(s for s, _, _ in mine)[: n + 1] == list(range(n + 1)), (d, n)  # each one, once
    out = tmp_path / "fleet.html"
    r = subprocess.run([sys.executable, "-m", "loraspot.cli", "--json", "report", url, "--out", str(out)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert set(json.loads(r.stdout)["devices"]) == set(ids)


@pytest.mark.long
def test_an_offline_hotspot_raises_one_alert_on_mqtt_and_the_webhook(make_board, tmp_path, postgres_server):
    """Three hotspots monitored into one store; `loraspot alerts` watches it. One hotspot goes off:
    one `offline` alert, on the MQTT broker and on the webhook, however long it stays off; the
    others raise none."""
    import http.server
    import signal

    from loraspot.store import Store

    from tests.e2e.hotspot_world import free_udp_port

    hooks: list[dict] = []

    class Hook(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            hooks.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    web = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=web.serve_forever, daemon=True).start()
    url = postgres_server.new_database()
    published: list[dict] = []
    broker = Broker(tmp_path)
    with contextlib.ExitStack() as stack, Medium(speed=SPEED) as medium:
        stack.callback(broker.stop)
        sub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="alert-watcher")
        sub.on_message = lambda c, u, m: published.append(json.loads(m.payload))
        sub.connect("127.0.0.1", broker.port)
        sub.subscribe("loraspot/+/alert", qos=1)
        sub.loop_start()
        boards = [make_board(hotspot_image(tmp_path / f"hs{i}.bin", server_port=free_udp_port(), stats_interval=1),
                             speed=SPEED, medium=medium.address, register=False) for i in range(3)]
        for b in boards:
            b.wait_status("boot")
        mon = Monitor([b.info["pty"] for b in boards], sinks=[DatabaseSink(url)]).start()
        store = Store(url)
        alerts = None
        try:
            def events(dev: str | None = None) -> int:
                try:
                    if dev is None:
                        return store.execute("SELECT count(*) FROM events").fetchone()[0]
                    return store.execute("SELECT count(*) FROM events WHERE device = ?", (dev,)).fetchone()[0]
                except store.errors:
                    return 0

            ids = [b.board.device_id for b in boards]
            assert wait(lambda: all(events(d) >= 3 for d in ids), 60)
            alerts = subprocess.Popen(
                [sys.executable, "-m", "loraspot.cli", "--json", "alerts", "--db", url, "--offline-after", "5",
                 "--every", "0.2", "--mqtt", broker.url, "--webhook", f"http://127.0.0.1:{web.server_port}/hook"],
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
            off = boards[0].board.device_id
            boards[0].stop()  # the hotspot goes off: nothing more from it
            assert wait(lambda: len(hooks) >= 1 and len(published) >= 1, 60), (hooks, published)
            mark = {d: events(d) for d in ids[1:]}
            # the alerts go on watching while the others go on reporting: several stats events more each
            assert wait(lambda: all(events(d) >= n + 4 for d, n in mark.items()), 90)
        finally:
            if alerts is not None:
                alerts.send_signal(signal.SIGINT)
                out, err = alerts.communicate(timeout=60)
            mon.stop()
            store.close()
            sub.loop_stop()
            web.shutdown()
    assert alerts.returncode == 0, err
    assert [(a["device"], a["alert"]) for a in hooks] == [(off, "offline")]
    assert [(a["device"], a["alert"]) for a in published] == [(off, "offline")]
    assert [json.loads(x)["alert"] for x in out.splitlines()] == ["offline"] and "1 alert(s) raised" in err
