"""`loraspot monitor`: one reader thread per board, a device found again after an unplug (under
whatever port name it comes back), events to the sinks, and the state the live view draws.

Opening a port never resets the board (DTR and RTS as the OS leaves them, see transport). What
arrives before the first request is answered (boot text, half lines) is shown as log text.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable

from loraspot import transport
from loraspot.console.client import ConsoleClient, Event
from loraspot.errors import LoraspotError
from loraspot.monitor.fleet import DeviceState, Fleet
from loraspot.monitor.record import Record, Sink

FIND_EVERY = 0.5  # s between looks for a board that is gone
DISCOVER_EVERY = 2.0  # s between looks for new boards (--all)
EARLY_EVENTS = 1000  # events kept from a board that has not yet said who it is (hello)


HELLO_KEYS = ("board", "chip", "role", "name", "fw", "boot", "reset", "micropython")


class Watcher(threading.Thread):
    """Follows one board: reads it while it is there, finds it again when it comes back."""

    def __init__(self, mon: Monitor, port: str):
        super().__init__(name=f"monitor-{port}", daemon=True)
        self.mon = mon
        self.port = port
        self.dev: DeviceState | None = None
        self.client: ConsoleClient | None = None
        self._early: deque[Event] = deque(maxlen=EARLY_EVENTS)
        self._lock = threading.Lock()

    # --- callbacks from the client's reader thread ---------------------------------------------
    def _on_event(self, ev: Event) -> None:
        with self._lock:
            if self.dev is None:
                self._early.append(ev)
                return
        self._take(ev)

    def _on_log(self, text: str) -> None:
        d = self.dev
        if d is not None:
            d.log_lines += 1
        self.mon.fleet.add_log(d.device if d else self.port, text)

    def _take(self, ev: Event) -> None:
        d = self.dev
        assert d is not None
        rec = Record(d.device, ev.kind, ev.seq, ev.t, ev.data, ev.host_time, d.boot, self.port)
        with self.mon.fleet.lock:
            fresh = self.mon.fleet.event(d, rec)
        if fresh:
            self.mon.emit(rec)

    # --- the thread ------------------------------------------------------------------------------
    def run(self) -> None:
        port = self.port
        while not self.mon.stopping.is_set():
            if port is None:
                port = self._find()
                if port is None:
                    self.mon.stopping.wait(FIND_EVERY)
                    continue
            if not self._serve(port) and self.dev is None:  # never knew it: try the same port again
                self.mon.stopping.wait(1.0)
                continue
            if self.mon.stopping.is_set():
                return
            if self.dev is not None:
                self.dev.state = "gone"
                self.mon.fleet.add_log(self.dev.device, f"[gone] {port}")
                self.mon.claimed.discard(port)
            port = None

    def _serve(self, port: str) -> bool:
        """Read the board on `port` until it goes; False when it could not be opened or greeted."""
        try:
            client = ConsoleClient(transport.open_port(port, self.mon.baud), on_log=self._on_log,
                                   on_event=self._on_event, timeout=2.0, keep_events=False)
        except LoraspotError as e:
            if self.dev is None:
                self.mon.fleet.add_log(port, f"[error] {e}")
            return False
        self.client = client
        try:
            hello = None
            while hello is None:
                try:
                    hello = client.hello()
                except LoraspotError:
                    # not (yet) answering: booting, at the REPL, not loraspot. Its text is shown
                    # meanwhile (the reader goes on); ask again now and then.
                    if client.gone or self.mon.stopping.wait(2.0):
                        return False
            d = self.mon.fleet.device(str(hello.get("id", port)))
            info = transport.port_info(port)
            if info is not None and info.serial_number:
                d.serial_number = info.serial_number
            if d.state == "gone":
                d.reconnects += 1
                self.mon.fleet.add_log(d.device, f"[back] on {port}")
            self.mon.fleet.hello(d, hello, port)
            # who the board is, in the recording itself (a board met after its boot event would
            # be nameless there): not numbered by the device (seq -1)
            self.mon.emit(Record(d.device, "hello", -1, 0, {k: hello[k] for k in HELLO_KEYS if k in hello},
                                 time.time(), d.boot, port))
            self.port = port
            self.mon.claimed.add(port)
            with self._lock:
                self.dev = d
                early, self._early = self._early, deque(maxlen=EARLY_EVENTS)
            for ev in early:
                self._take(ev)
            try:  # uptime, heap and counters now rather than at the next stats event
                stats = client.request("stats")
                with self.mon.fleet.lock:
                    self.mon.fleet.stats(d, stats)
            except LoraspotError:
                pass
            while not client.gone and not self.mon.stopping.is_set():
                self.mon.stopping.wait(0.1)
            return True
        finally:
            client.close()
            self.client = None

    def _find(self) -> str | None:
        """The board's port now: a virtual board by its registration, a USB board by its serial
        number, else by asking each unclaimed port that could be a board who it is."""
        d = self.dev
        if d is None:
            return None
        ports = transport.list_ports()
        for p in ports:  # a port with a serial number is found by it (a virtual board's is its id)
            if d.serial_number and p.serial_number == d.serial_number:
                return p.url
        if d.serial_number:
            return None
        for p in ports:
            if p.serial_number or not p.boards or p.url in self.mon.claimed:
                continue
            try:
                client = ConsoleClient(transport.open_port(p.url, self.mon.baud), timeout=1.0, keep_events=False)
            except LoraspotError:
                continue
            with client:
                try:
                    if str(client.hello().get("id")) == d.device:
                        return p.url
                except LoraspotError:
                    continue
        return None


class Monitor:
    def __init__(self, ports: list[str], every: bool = False, baud: int = transport.DEFAULT_BAUD,
                 sinks: list[Sink] | None = None, on_record: Callable[[Record], None] | None = None):
        self.ports = list(ports)
        self.every = every
        self.baud = baud
        self.sinks = sinks or []
        self.on_record = on_record
        self.fleet = Fleet()
        self.stopping = threading.Event()
        self.claimed: set[str] = set()
        self.watchers: list[Watcher] = []
        self.records = 0
        self._discover: threading.Thread | None = None

    def emit(self, rec: Record) -> None:
        self.records += 1
        for s in self.sinks:
            s.put(rec)
        if self.on_record is not None:
            self.on_record(rec)

    def start(self) -> Monitor:
        for s in self.sinks:
            s.start()
        for port in self.ports:
            self._watch(port)
        if self.every:
            self._discover = threading.Thread(target=self._discovery, name="monitor-discover", daemon=True)
            self._discover.start()
        return self

    def _watch(self, port: str) -> None:
        self.claimed.add(port)
        w = Watcher(self, port)
        self.watchers.append(w)
        w.start()

    def _discovery(self) -> None:
        """--all: boards that appear later are watched too (once: a known device is found again
        by its own watcher)."""
        while not self.stopping.is_set():
            serials = {d.serial_number for d in self.fleet.devices.values() if d.serial_number}
            for p in transport.list_ports():
                if not p.boards or p.url in self.claimed or (p.reset_url and p.reset_url in self.claimed):
                    continue
                if p.serial_number and p.serial_number in serials:
                    continue
                self._watch(p.url)
            self.stopping.wait(DISCOVER_EVERY)

    def stop(self) -> None:
        self.stopping.set()
        for w in self.watchers:
            w.join(5)
        if self._discover is not None:
            self._discover.join(5)
        for s in self.sinks:
            s.close()

    def __enter__(self) -> Monitor:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def overflow(self) -> int:
        return sum(s.overflow for s in self.sinks)
