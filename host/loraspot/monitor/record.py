"""Where monitored events go: a JSON-lines file, a database (an SQLite file or a PostgreSQL
server), an MQTT broker, standard output. Each sink has a bounded queue and a thread of its own:
the port readers only put records in queues, so a slow disk or a broker that is away never holds
them up. A full queue loses the record and counts it (`overflow`)."""

from __future__ import annotations

import json
import math
import queue
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO
from urllib.parse import urlsplit

from loraspot.errors import LoraspotError

QUEUE_SIZE = 50_000


class MonitorError(LoraspotError):
    exit_code = 2


@dataclass
class Record:
    """One device event as the monitor saw it."""

    device: str
    kind: str
    seq: int
    t: int  # device milliseconds since boot
    data: dict = field(default_factory=dict)
    host_time: float = 0.0
    boot: str | None = None
    port: str | None = None

    def as_dict(self) -> dict:
        return {"device": self.device, "boot": self.boot, "port": self.port, "host_time": self.host_time,
                "ev": self.kind, "seq": self.seq, "t": self.t, "data": self.data}

    def json(self) -> str:
        return json.dumps(self.as_dict(), separators=(",", ":"), sort_keys=True)

    @classmethod
    def from_dict(cls, d: object) -> Record:
        """A record as a sink wrote it; ValueError names the first field of the wrong type."""
        if not isinstance(d, dict):
            raise ValueError("a record is a JSON object")
        data = d.get("data") or {}
        for key, ok in (("device", isinstance(d.get("device"), str)), ("ev", isinstance(d.get("ev"), str)),
                        ("data", isinstance(data, dict)), ("boot", isinstance(d.get("boot"), (str, type(None)))),
                        ("port", isinstance(d.get("port"), (str, type(None))))):
            if not ok:
                raise ValueError(f"record field '{key}' has the wrong type")
        return cls(d["device"], d["ev"], _whole(d.get("seq"), "seq"), _whole(d.get("t", 0), "t"), data,
                   _finite(d.get("host_time", 0.0), "host_time"), d.get("boot"), d.get("port"))


def number(v: object) -> float | None:
    """A finite number read from JSON, or None for anything else: a bool, text, inf, nan, or an
    integer too large for a float."""
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    try:
        f = float(v)
    except OverflowError:
        return None
    return f if math.isfinite(f) else None


def _finite(v: object, key: str) -> float:
    f = number(v)
    if f is None:
        raise ValueError(f"record field '{key}' is not a finite number")
    return f


def _whole(v: object, key: str) -> int:
    if number(v) is None or v != int(v):  # pyright: ignore[reportArgumentType] (a number here)
        raise ValueError(f"record field '{key}' is not a whole number")
    return int(v)  # pyright: ignore[reportArgumentType]


class Sink:
    """A bounded queue emptied by a thread into write_batch()."""

    name = "sink"

    def __init__(self, size: int = QUEUE_SIZE):
        self.q: queue.Queue[Record | None] = queue.Queue(maxsize=size)
        self.written = 0
        self.overflow = 0
        self.error: str | None = None
        self._thread = threading.Thread(target=self._run, name=f"monitor-{self.name}", daemon=True)
        self._started = False

    def start(self) -> None:
        self._started = True
        self._thread.start()

    def put(self, rec: Record) -> None:
        try:
            self.q.put_nowait(rec)
        except queue.Full:
            self.overflow += 1

    def close(self, timeout: float = 10.0) -> None:
        """Write what is queued, then stop."""
        if not self._started:
            return
        self.q.put(None)
        self._thread.join(timeout)
        self.finish()

    def _run(self) -> None:
        while True:
            first = self.q.get()
            batch = [] if first is None else [first]
            stop = first is None
            while not stop and len(batch) < 1000:
                try:
                    item = self.q.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    stop = True
                else:
                    batch.append(item)
            if batch:
                self._write(batch)
            if stop:
                return

    def _write(self, batch: list[Record]) -> None:
        while True:
            try:
                self.write_batch(batch)
                self.written += len(batch)
                self.error = None
                return
            except Exception as e:  # a full disk, a locked database: keep the batch, try again
                self.error = f"{type(e).__name__}: {e}"
                time.sleep(0.5)

    def write_batch(self, batch: list[Record]) -> None:
        raise NotImplementedError

    def finish(self) -> None:
        pass


class JsonlSink(Sink):
    name = "jsonl"

    def __init__(self, path: Path, size: int = QUEUE_SIZE):
        super().__init__(size)
        self.path = Path(path)
        self.f: IO[str] = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 (closed in finish)

    def write_batch(self, batch: list[Record]) -> None:
        self.f.write("".join(r.json() + "\n" for r in batch))
        self.f.flush()

    def finish(self) -> None:
        self.f.close()


MIGRATIONS = [
    # 1: the events (IF NOT EXISTS: a database an earlier loraspot made has them, at version 0)
    """
    CREATE TABLE IF NOT EXISTS events (
        id INTEGER PRIMARY KEY, device TEXT NOT NULL, boot TEXT, seq INTEGER NOT NULL, t INTEGER,
        kind TEXT NOT NULL, host_time REAL NOT NULL, port TEXT, data TEXT NOT NULL);
    CREATE INDEX IF NOT EXISTS events_device_time ON events(device, host_time);
    CREATE INDEX IF NOT EXISTS events_kind ON events(kind);
    """,
    # 2: an event the device numbered is stored once, however many monitors (or retries of a batch
    # whose commit went unanswered) bring it: (device, boot, seq) is unique; the monitor's own
    # records (seq -1: a hello at each connection) are not the device's, and stay as they come
    """
    DELETE FROM events WHERE seq >= 0 AND id NOT IN (
        SELECT MIN(id) FROM events WHERE seq >= 0 GROUP BY device, COALESCE(boot, ''), seq);
    CREATE UNIQUE INDEX events_once ON events(device, (COALESCE(boot, '')), seq) WHERE seq >= 0;
    """,
]


class DatabaseSink(Sink):
    """Events into a database: an SQLite file, or a PostgreSQL server (a postgresql:// URL) that
    monitors on many machines feed at once. Each device-numbered event once (see MIGRATIONS); a
    batch is one transaction, tried again until the database takes it."""

    name = "database"

    def __init__(self, target: Path | str, size: int = QUEUE_SIZE):
        from loraspot.store import Store, StoreError, is_url, where

        super().__init__(size)
        self.path = target if is_url(target) else Path(target)
        try:
            self.db = Store(self.path, timeout=30)
        except StoreError as e:
            raise MonitorError(str(e)) from None
        try:
            if not self.db.postgres:
                self.db.execute("PRAGMA journal_mode = WAL")
            if self.db.migrate(MIGRATIONS, "monitor") > len(MIGRATIONS):
                raise MonitorError(f"{where(self.path)} was written by a newer loraspot; upgrade loraspot")
        except self.db.errors as e:
            self.db.close()
            raise MonitorError(f"{where(self.path)}: not a monitor database, or damaged "
                               f"({str(e).strip().splitlines()[0]})") from None

    def write_batch(self, batch: list[Record]) -> None:
        with self.db.transaction():
            self.db.executemany(
                "INSERT OR IGNORE INTO events (device, boot, seq, t, kind, host_time, port, data) "
                "VALUES (?,?,?,?,?,?,?,?)",
                [(r.device, r.boot, r.seq, r.t, r.kind, r.host_time, r.port,
                  json.dumps(r.data, separators=(",", ":"))) for r in batch])

    def finish(self) -> None:
        self.db.close()


class StdoutSink(Sink):
    """--json: one event per line on standard output."""

    name = "stdout"

    def __init__(self, out: IO[str] | None = None, size: int = QUEUE_SIZE):
        super().__init__(size)
        self.out = out or sys.stdout

    def write_batch(self, batch: list[Record]) -> None:
        self.out.write("".join(r.json() + "\n" for r in batch))
        self.out.flush()


class MqttSink(Sink):
    """Publishes each event to `{prefix}/{device}/event/{type}` at QoS 1. paho keeps what it could
    not deliver while the broker is away and sends it once reconnected."""

    name = "mqtt"

    def __init__(self, url: str, prefix: str = "loraspot", size: int = QUEUE_SIZE, client_id: str | None = None,
                 connect_timeout: float = 5.0):
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        super().__init__(size)
        u = urlsplit(url)
        if u.scheme not in ("mqtt", "mqtts") or not u.hostname:
            raise MonitorError(f"--mqtt needs mqtt://[user[:password]@]host[:port], got {url!r}")
        self.prefix = prefix
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2,
                                  client_id=client_id or f"loraspot-monitor-{id(self)}", clean_session=False)
        if u.username:
            self.client.username_pw_set(u.username, u.password)
        if u.scheme == "mqtts":
            self.client.tls_set()
        self.client.max_queued_messages_set(0)  # unbounded in paho: our queue bounds the total
        self.client.max_inflight_messages_set(100)
        self.client.reconnect_delay_set(0.2, 2)  # pyright: ignore[reportArgumentType] (paho takes seconds as a float)
        connected = threading.Event()
        refused: list[str] = []

        def on_connect(client, userdata, flags, reason, properties=None):
            if reason.is_failure:
                refused.append(str(reason))
            connected.set()

        self.client.on_connect = on_connect
        host, port = u.hostname, u.port or (8883 if u.scheme == "mqtts" else 1883)
        self.client.connect_async(host, port, keepalive=10)
        self.client.loop_start()
        # a broker that is not there at the start is a mistake to report; later outages are
        # ridden out (paho reconnects and sends what it kept)
        if not connected.wait(connect_timeout) or refused:
            self.client.loop_stop()
            why = refused[0] if refused else f"no answer within {connect_timeout:g} s"
            raise MonitorError(f"MQTT broker {host}:{port}: {why}")

    def write_batch(self, batch: list[Record]) -> None:
        for r in batch:
            topic = f"{self.prefix}/{r.device}/event/{r.kind}"
            self.client.publish(topic, r.json(), qos=1)

    def pending(self) -> int:
        """Messages paho still has to get acknowledged."""
        return len(getattr(self.client, "_out_messages", {}))

    def finish(self) -> None:
        end = time.monotonic() + 10
        while self.pending() and time.monotonic() < end:
            time.sleep(0.05)
        self.client.loop_stop()
        self.client.disconnect()
