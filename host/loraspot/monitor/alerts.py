"""Alerts on a fleet's store of events (`loraspot alerts --db ...`: the database that one or many
`loraspot monitor --db` processes feed): a board that has stopped reporting for a while, and a
hotspot whose drop counters jump. Each is raised once when it starts and once when it clears
(`back`), never again on every check in between; published to an MQTT broker (retained-free, QoS
1, `PREFIX/DEVICE/alert`) and, where given, POSTed as JSON to a webhook. A broker or a webhook
that fails is said on stderr and tried again at the next alert; the watch goes on."""

from __future__ import annotations

import json
import sys
import threading
import time
import urllib.error
import urllib.request
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from loraspot.monitor.record import MonitorError


@dataclass
class Alert:
    device: str
    kind: str  # "offline", "back", "drops"
    at: float
    detail: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {"device": self.device, "alert": self.kind, "at": round(self.at, 3), **self.detail}


def _dropped_total(data: object) -> int | None:
    dropped = data.get("dropped") if isinstance(data, dict) else None
    if not isinstance(dropped, dict):
        return None
    return sum(v for v in dropped.values() if isinstance(v, int) and not isinstance(v, bool))


class Watch:
    """The alert rules over the events table. `check()` reads what came since the last check and
    returns the alerts it raises; the clock is `now` (host time, as the monitors' host_time)."""

    def __init__(self, target: Path | str, offline_after: float = 600.0, drops: int = 20) -> None:
        from loraspot.store import Store, StoreError

        self.offline_after = offline_after
        self.drops = drops
        try:
            self.db = Store(target)
        except StoreError as e:
            raise MonitorError(str(e)) from None
        self.where = str(target)
        self.last_seen: dict[str, float] = {}
        self.offline: set[str] = set()
        self.dropped: dict[tuple[str, str | None], int] = {}  # (device, boot) -> total at its last stats
        self.seen: deque[tuple] = deque(maxlen=100_000)  # stats events already taken (by key)
        self._seen_keys: set[tuple] = set()
        self.since = 0.0  # host time up to which the stats were read (less a margin for late batches)
        self._known()

    def _rows(self, sql: str, args: tuple = ()) -> list:
        from loraspot.store import StoreError

        try:
            return self.db.execute(sql, args).fetchall()
        except StoreError as e:  # the server gone: connecting again failed
            raise MonitorError(str(e)) from None
        except self.db.errors as e:
            if "events" in str(e) and ("no such table" in str(e) or "does not exist" in str(e)):
                return []  # no monitor has written yet
            raise MonitorError(f"{self.where}: {str(e).strip().splitlines()[0]}") from None

    def _known(self) -> None:
        """Every device the store has events of, and when it last reported: the watch begins there."""
        for device, last in self._rows("SELECT device, MAX(host_time) FROM events GROUP BY device"):
            self.last_seen[device] = float(last or 0)
        self.since = max(self.last_seen.values(), default=0.0) - 60

    def check(self, now: float | None = None) -> list[Alert]:
        now = time.time() if now is None else now
        out: list[Alert] = []
        margin = 60.0  # a monitor's batch may land this late: read again, known events skipped by key
        for device, last in self._rows("SELECT device, MAX(host_time) FROM events WHERE host_time > ? "
                                       "GROUP BY device", (self.since - margin,)):
            last = float(last or 0)
            if last > self.last_seen.get(device, 0.0):
                self.last_seen[device] = last
        stats = self._rows("SELECT device, boot, seq, host_time, data FROM events WHERE kind = 'stats' AND seq >= 0 "
                           "AND host_time > ? ORDER BY host_time, seq", (self.since - margin,))
        for device, boot, seq, host_time, data in stats:
            key = (device, boot, seq)
            if key in self._seen_keys:
                continue
            if len(self.seen) == self.seen.maxlen:
                self._seen_keys.discard(self.seen[0])
            self.seen.append(key)
            self._seen_keys.add(key)
            self.since = max(self.since, float(host_time))
            try:
                total = _dropped_total(json.loads(data))
            except ValueError:
                continue
            if total is None:
                continue
            before = self.dropped.get((device, boot))
            self.dropped[(device, boot)] = total
            if before is not None and total - before >= self.drops:
                out.append(Alert(device, "drops", float(host_time), {"dropped": total - before, "total": total}))
        self.since = max([self.since, *(t for t in self.last_seen.values())])
        for device, last in sorted(self.last_seen.items()):
            silent = now - last
            if silent >= self.offline_after and device not in self.offline:
                self.offline.add(device)
                out.append(Alert(device, "offline", now, {"silent_s": round(silent, 1), "last_seen": last}))
            elif silent < self.offline_after and device in self.offline:
                self.offline.discard(device)
                out.append(Alert(device, "back", now, {"last_seen": last}))
        return out

    def close(self) -> None:
        self.db.close()


class Publisher:
    """Where alerts go: an MQTT broker, a webhook, a stream (stdout); each failure said, none fatal."""

    def __init__(self, mqtt_url: str | None = None, prefix: str = "loraspot", webhook: str | None = None,
                 out: IO[str] | None = None, err: IO[str] | None = None) -> None:
        from loraspot.monitor.record import MqttSink

        self.prefix = prefix
        self.webhook = webhook
        self.out = out
        self.err = err or sys.stderr
        self.mqtt = MqttSink(mqtt_url, prefix, client_id=f"loraspot-alerts-{id(self)}") if mqtt_url else None
        if webhook is not None and not webhook.startswith(("http://", "https://")):
            raise MonitorError(f"--webhook needs an http:// or https:// URL, got {webhook!r}")
        self.sent = 0
        self._lock = threading.Lock()

    def publish(self, alert: Alert) -> None:
        body = json.dumps(alert.as_dict(), separators=(",", ":"), sort_keys=True)
        if self.out is not None:
            self.out.write(body + "\n")
            self.out.flush()
        if self.mqtt is not None:
            self.mqtt.client.publish(f"{self.prefix}/{alert.device}/alert", body, qos=1)
        if self.webhook is not None:
            req = urllib.request.Request(self.webhook, data=body.encode(), method="POST",
                                         headers={"Content-Type": "application/json"})
            try:
                with urllib.request.urlopen(req, timeout=10) as r:
                    r.read()
            except (urllib.error.URLError, OSError, ValueError) as e:
                self.err.write(f"alerts: webhook {self.webhook}: {getattr(e, 'reason', e)}\n")
        with self._lock:
            self.sent += 1

    def close(self) -> None:
        if self.mqtt is not None:
            self.mqtt.finish()
