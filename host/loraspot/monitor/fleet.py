"""What the monitor knows of each device: identity, health, radio and role counters, the last
error, and its event sequence (gaps and repeats)."""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass, field

from loraspot.monitor.record import Record

LOG_LINES = 500  # the scrolling log keeps this many


@dataclass
class DeviceState:
    device: str
    port: str = ""
    board: str = ""
    role: str = ""
    fw: str = ""
    serial_number: str | None = None
    state: str = "connecting"  # connecting, live, gone
    boot: str | None = None
    last_seen: float = 0.0
    up_ms: int | None = None
    heap_free: int | None = None
    rssi: float | None = None
    snr: float | None = None
    rx: int = 0
    forwarded: int = 0
    dropped: int = 0
    uplinks: int = 0
    duty_left_ms: int | None = None
    backhaul: str = ""
    last_error: str = ""
    events: int = 0
    gaps: int = 0  # events the device numbered that never arrived
    repeats: int = 0  # events that arrived twice (not recorded again)
    last_seq: int = -1
    reconnects: int = 0
    log_lines: int = 0

    def row(self) -> dict:
        return dict(self.__dict__)


@dataclass
class Fleet:
    devices: dict[str, DeviceState] = field(default_factory=dict)
    log: deque = field(default_factory=lambda: deque(maxlen=LOG_LINES))
    lock: threading.Lock = field(default_factory=threading.Lock)
    log_total: int = 0  # lines ever added to the log

    def device(self, device_id: str) -> DeviceState:
        with self.lock:
            d = self.devices.get(device_id)
            if d is None:
                d = self.devices[device_id] = DeviceState(device_id)
            return d

    def add_log(self, who: str, text: str) -> None:
        self.log.append((time.time(), who, text))
        self.log_total += 1

    def hello(self, d: DeviceState, hello: dict, port: str) -> None:
        d.port, d.board, d.role, d.fw = port, str(hello.get("board", "")), str(hello.get("role", "")), \
            str(hello.get("fw", ""))
        if d.boot is not None and hello.get("boot") != d.boot:
            d.last_seq = -1  # rebooted while we were away: a new numbering
        d.boot = hello.get("boot")
        d.state = "live"
        d.last_seen = time.time()
        crash = hello.get("crash")
        if isinstance(crash, dict) and crash.get("error"):
            d.last_error = f"crash: {crash['error']}"

    def stats(self, d: DeviceState, stats: dict) -> None:
        """A stats answer (not an event: nothing recorded) fills the row at once."""
        self._apply(d, Record(d.device, "stats", -1, 0, stats, time.time(), d.boot))

    def event(self, d: DeviceState, rec: Record) -> bool:
        """Take one event into the state; False for a repeat (already seen: not to be recorded)."""
        d.last_seen = rec.host_time
        if rec.kind == "boot":
            d.boot = rec.data.get("boot", d.boot)
            d.last_seq = -1
            crash = rec.data.get("crash")
            if isinstance(crash, dict) and crash.get("error"):
                d.last_error = f"crash: {crash['error']}"
        if 0 <= rec.seq <= d.last_seq:
            d.repeats += 1
            return False
        if d.last_seq >= 0 and rec.seq > d.last_seq + 1:
            missing = rec.seq - d.last_seq - 1
            d.gaps += missing
            self.add_log(d.device, f"[gap] {missing} event(s) lost before #{rec.seq}")
        d.last_seq = max(d.last_seq, rec.seq)
        d.events += 1
        rec.boot = d.boot
        self._apply(d, rec)
        return True

    def _apply(self, d: DeviceState, rec: Record) -> None:
        data = rec.data
        k = rec.kind
        if k == "stats":
            d.up_ms = data.get("up_ms", d.up_ms)
            d.heap_free = data.get("heap_free", d.heap_free)
            if "rx" in data:
                d.rx = data["rx"]
                d.forwarded = data.get("forwarded", d.forwarded)
                dropped = data.get("dropped")
                d.dropped = sum(dropped.values()) if isinstance(dropped, dict) else d.dropped
            if data.get("backhaul"):
                d.backhaul = str(data["backhaul"])
            if data.get("last_rssi") is not None and data.get("rx"):
                d.rssi, d.snr = data.get("last_rssi"), data.get("last_snr")
        elif k == "rx":
            d.rx += 1
            d.rssi, d.snr = data.get("rssi"), data.get("snr")
        elif k == "uplink":
            if "error" in data:
                d.last_error = f"uplink: {data['error']}"
            else:
                d.uplinks += 1
                if "duty_left_ms" in data:
                    d.duty_left_ms = data["duty_left_ms"]
        elif k == "downlink":
            if data.get("rssi") is not None:
                d.rssi, d.snr = data.get("rssi"), data.get("snr")
        elif k == "backhaul":
            d.backhaul = f"{data.get('kind', '')} {data.get('state', '')}".strip()
        elif k == "join":
            if data.get("ok") is False and data.get("error"):
                d.last_error = f"join: {data['error']}"
        elif k == "fault":
            d.last_error = str(data.get("error", "fault"))
        elif k == "ota" and "rolled_back" in data:  # an update that failed its trial: the board went back
            d.last_error = f"update rolled back: {data.get('rolled_back') or 'no reason given'}"
        elif k == "log" and data.get("level") in ("error", "warn"):
            d.last_error = str(data.get("msg", ""))
        if k in ("log", "fault"):
            self.add_log(d.device, f"[{data.get('level', k)}] {data.get('msg') or data.get('error', '')}")
        elif k not in ("stats",):
            self.add_log(d.device, f"{k} {_short(data)}")


def _short(data: dict) -> str:
    parts = []
    for k, v in data.items():
        if isinstance(v, dict | list):
            continue
        parts.append(f"{k}={v}")
    return " ".join(parts)[:160]
