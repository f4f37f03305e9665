"""The RF medium of the simulator: virtual radios (spot/radio/virtual.py on virtual boards) send
it their transmissions and receive windows over loopback UDP; it decides who hears what.

Time is world time: the machine's monotonic clock in microseconds times the speed factor, the
same clock every virtual board's firmware reads. A transmission carries its deadline and a receive
window its start, both in world time, so what is heard and when depends on computed times only,
never on how promptly a loaded machine schedules a process. Frames are delivered when their time
on air has elapsed. The wire format is in docs/virtual-board.md ("RF medium").
"""

from __future__ import annotations

import heapq
import itertools
import json
import math
import selectors
import socket
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from loraspot import resources
from loraspot.errors import LoraspotError

CFG = struct.Struct("<IBIBHBBb")  # freq, sf, bw, cr, preamble, flags, sync, power dBm
F_IQ_INVERTED, F_CRC, F_IMPLICIT = 1, 2, 4
TIME = struct.Struct("<q")
WINDOW = struct.Struct("<qH")
DONE = struct.Struct("<qq")
SENSE = struct.Struct("<qI")  # carrier sense: start, duration µs
RX = struct.Struct("<qhh")  # rx-done, rssi dBm, snr in quarter dB
NOW = -1  # "transmit now" instead of a deadline

# Demodulation floor (SNR in dB at which a packet is still received), Semtech SX1276/SX1262
# datasheets; the receiver's noise floor (noise_floor) is -174 dBm/Hz + 10 log10(BW) + a 6 dB noise figure.
SNR_LIMIT = {5: -2.5, 6: -5.0, 7: -7.5, 8: -10.0, 9: -12.5, 10: -15.0, 11: -17.5, 12: -20.0}
NOISE_FIGURE_DB = 6.0
# What the chip reads back for a packet, as opposed to the signal itself: the LoRa demodulator's
# SNR estimate saturates (Semtech AN1200.22 gives -20..+10 dB as the typical range; packets from
# a node next to a gateway read about +10 to +14 dB on SX127x/SX126x, never the register's
# +31.75), and RSSI is the SX127x HF-port reading, -157 dBm + an 8-bit register, here capped at
# 0 dBm (SX126x: RssiPkt = -register/2, 0 .. -127.5 dBm).
SNR_READ_MAX_DB = 13.0
RSSI_READ_DBM = (-157, 0)
CAPTURE_DB = 6.0
LOCK_SYMBOLS = 4  # preamble symbols a receiver needs to lock; a window may open this late
# A radio hands its transmission over well before the deadline on a board (a gateway's concentrator
# holds it in its queue); a process the machine starved may send it after. Deadlines this late (host
# seconds) are still honoured, and a window's outcome is decided this long after it closes, so
# what is heard never depends on how promptly a loaded machine schedules a process.
GRACE_S = 0.25


def noise_floor(bw: int) -> float:
    """The receiver's noise (dBm) over a bandwidth of bw Hz."""
    return -174 + 10 * math.log10(bw) + NOISE_FIGURE_DB


def chip_reading(rssi: float, snr: float) -> tuple[int, float]:
    """(RSSI dBm, SNR dB in quarter dB steps) a receiving chip reports for a packet whose signal
    is (rssi, snr): SNR above 0 dB compresses smoothly towards SNR_READ_MAX_DB (still rising with
    the signal, so nearer is never read as weaker), below 0 dB it is read as it is."""
    if snr > 0:
        snr = SNR_READ_MAX_DB * math.tanh(snr / SNR_READ_MAX_DB)
    low, high = RSSI_READ_DBM
    return max(low, min(high, round(rssi))), max(-32.0, min(31.75, round(snr * 4) / 4))


class MediumError(LoraspotError):
    exit_code = 5


def airtime_module():
    return resources.firmware_module("spot/radio/airtime.py")


@dataclass(frozen=True)
class Cfg:
    freq: int
    sf: int
    bw: int
    cr: int
    preamble: int
    flags: int
    sync: int
    power: int

    @classmethod
    def unpack(cls, data: bytes, offset: int = 0) -> Cfg:
        return cls(*CFG.unpack_from(data, offset))

    def pack(self) -> bytes:
        return CFG.pack(self.freq, self.sf, self.bw, self.cr, self.preamble, self.flags, self.sync, self.power)

    def channel(self) -> tuple:
        """What must match for a receiver to demodulate (IQ polarity and sync word included)."""
        return (self.freq, self.sf, self.bw, self.flags & F_IQ_INVERTED, self.sync)

    def symbol_us(self) -> float:
        return (1 << self.sf) * 1_000_000 / self.bw


@dataclass
class Frame:
    id: int
    sender: str
    cfg: Cfg
    payload: bytes
    start: int  # world µs
    end: int
    lock: int  # when a receiver must be listening to catch the preamble
    heard_by: dict[str, tuple[int, float]] = field(default_factory=dict)  # radio id -> (rssi, snr)
    lost_by: dict[str, str] = field(default_factory=dict)  # radio id -> why


@dataclass
class Segment:
    """A span of world time a radio listened with one configuration."""

    kind: str  # "rx" continuous, "win" single window
    start: int
    cfg: Cfg
    end: int | None = None  # None: still listening
    close: int = 0  # window: when it times out without a preamble
    symbols: int = 0
    locked: Frame | None = None
    done: bool = False


@dataclass
class RadioState:
    id: str
    addr: tuple
    pos: tuple[float, float, float]
    segments: list[Segment] = field(default_factory=list)
    tx_frames: int = 0
    rx_frames: int = 0


class Medium:
    """Routes LoRa frames between virtual radios. Start with start(), stop with stop()."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, speed: int = 1, path_loss_exponent: float = 2.7,
                 keep_frames: int = 10_000):
        if not isinstance(speed, int) or speed < 1:
            raise MediumError("speed must be a whole number >= 1")
        self.speed = speed
        self.exponent = path_loss_exponent
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((host, port))
        self.sock.setblocking(False)
        self.address = self.sock.getsockname()
        self.radios: dict[str, RadioState] = {}
        self.by_addr: dict[tuple, RadioState] = {}
        self.frames: list[Frame] = []  # recent frames, newest last (for tests and status)
        self.keep_frames = keep_frames
        self.errors: list[str] = []  # malformed datagrams, refused registrations
        self._air: list[Frame] = []  # frames whose receivers are not decided yet
        self._events: list = []
        self._seq = itertools.count()
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._airtime = airtime_module()
        self.routed = 0
        # called with each frame once its receivers are decided (heard_by, lost_by): the soak's
        # account of every uplink (never while the medium's lock is held by a caller)
        self.on_frame: Callable[[Frame], None] | None = None

    # ---- clock ------------------------------------------------------------------------------
    def now(self) -> int:
        return time.monotonic_ns() // 1000 * self.speed

    def _host_delay(self, world: int) -> float:
        return max(0.0, (world - self.now()) / self.speed / 1e6)

    # ---- life cycle -------------------------------------------------------------------------
    def start(self) -> Medium:
        self._thread = threading.Thread(target=self._run, name="rf-medium", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        self.sock.close()

    def __enter__(self) -> Medium:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def _run(self) -> None:
        sel = selectors.DefaultSelector()
        sel.register(self.sock, selectors.EVENT_READ)
        try:
            while not self._stop.is_set():
                timeout = 0.05
                if self._events:
                    timeout = min(timeout, self._host_delay(self._events[0][0]))
                for _ in sel.select(timeout):
                    self._drain()
                self._fire_due()
        finally:
            sel.close()

    def _drain(self) -> None:
        while True:
            try:
                data, addr = self.sock.recvfrom(2048)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return
            try:
                self.handle(data, addr)
            except (struct.error, ValueError, KeyError, UnicodeDecodeError) as e:
                self._refuse(addr, f"malformed {data[:1]!r} message ({len(data)} bytes): {e}")

    def _refuse(self, addr, msg: str) -> None:
        self.errors.append(msg)
        self._send(addr, b"E" + msg.encode())

    def _send(self, addr, data: bytes) -> None:
        try:
            self.sock.sendto(data, addr)
        except OSError:
            pass

    def _at(self, world: int, fn, *args) -> None:
        heapq.heappush(self._events, (world, next(self._seq), fn, args))

    def _fire_due(self) -> None:
        while self._events and self._events[0][0] <= self.now():
            _, _, fn, args = heapq.heappop(self._events)
            with self._lock:
                fn(*args)

    # ---- messages -----------------------------------------------------------------------------
    def handle(self, data: bytes, addr) -> None:
        kind = data[:1]
        if kind == b"R":
            self._register(json.loads(data[1:]), addr)
            return
        radio = self.by_addr.get(addr)
        if radio is None:
            self._refuse(addr, "unknown radio: register first")
            return
        now = self.now()
        with self._lock:
            if kind == b"T":
                (deadline,) = TIME.unpack_from(data, 1)
                cfg = Cfg.unpack(data, 9)
                payload = data[9 + CFG.size :]
                self._transmit(radio, cfg, payload, deadline, now)
            elif kind == b"L":
                self._stop_listening(radio, now)
                radio.segments.append(Segment("rx", now, Cfg.unpack(data, 1)))
            elif kind == b"W":
                start, symbols = WINDOW.unpack_from(data, 1)
                cfg = Cfg.unpack(data, 1 + WINDOW.size)
                if not 1 <= symbols <= 1023:
                    raise ValueError("window of %d symbols" % symbols)
                self._stop_listening(radio, now)
                # honoured as given, even when it arrives after its start: a board whose process
                # was starved still opened the window on time, as the chip's timer does
                close = start + round(symbols * cfg.symbol_us())
                seg = Segment("win", start, cfg, end=close, close=close, symbols=symbols)
                radio.segments.append(seg)
                self._at(close + round(GRACE_S * 1e6 * self.speed), self._close_window, radio, seg)
            elif kind == b"Q":
                start, duration = SENSE.unpack_from(data, 1)
                cfg = Cfg.unpack(data, 1 + SENSE.size)
                if not 100 <= duration <= 1_000_000:
                    raise ValueError("carrier sense of %d µs" % duration)
                self._stop_listening(radio, now)
                start = max(start, now)
                self._at(start + duration, self._sense, radio, cfg, start, start + duration)
            elif kind == b"S":
                self._stop_listening(radio, now)
            elif kind == b"B":
                self._stop_listening(radio, now)
                self.radios.pop(radio.id, None)
                self.by_addr.pop(addr, None)
            else:
                raise ValueError("unknown message type")

    def _register(self, msg: dict, addr) -> None:
        rid = str(msg["id"])
        if int(msg.get("speed", 1)) != self.speed:
            err = (f"the medium runs at speed {self.speed}, this board at {msg.get('speed')}: "
                   "start both with the same --speed")
            self._send(addr, b"A" + json.dumps({"error": err}).encode())
            self.errors.append(f"{rid}: speed mismatch")
            return
        x, y, *z = (float(v) for v in msg.get("pos", (0, 0, 0)))
        with self._lock:
            old = self.radios.get(rid)
            if old is not None:
                self.by_addr.pop(old.addr, None)
            radio = RadioState(rid, addr, (x, y, z[0] if z else 0.0))
            self.radios[rid] = radio
            self.by_addr[addr] = radio
        self._send(addr, b"A" + json.dumps({"ok": True, "speed": self.speed}).encode())

    def _stop_listening(self, radio: RadioState, now: int) -> None:
        """The radio leaves receive at `now` (it transmits, listens anew or goes to standby)."""
        for seg in radio.segments:
            if seg.kind == "rx" and seg.end is None:
                seg.end = now
            elif seg.kind == "win" and not seg.done:
                seg.done = True  # aborted: a future window never opens, an open one stops now
                seg.end = seg.start if seg.start > now else now
                seg.locked = None
        horizon = now - 120_000_000
        radio.segments = [g for g in radio.segments if g.end is None or g.end > horizon]

    def _transmit(self, radio: RadioState, cfg: Cfg, payload: bytes, deadline: int, now: int) -> None:
        if not 1 <= len(payload) <= 255:
            raise ValueError("payload of %d bytes (1..255)" % len(payload))
        self._stop_listening(radio, now)
        late_ok = now - round(GRACE_S * 1e6 * self.speed)
        start = now if deadline == NOW or deadline < late_ok else deadline
        implicit = bool(cfg.flags & F_IMPLICIT)
        toa = self._airtime.time_on_air_us(len(payload), cfg.sf, cfg.bw, cfg.cr, cfg.preamble, not implicit,
                                           bool(cfg.flags & F_CRC))
        lock = start + round(max(0, cfg.preamble - LOCK_SYMBOLS) * cfg.symbol_us())
        frame = Frame(next(self._ids), radio.id, cfg, bytes(payload), start, start + toa, lock)
        radio.tx_frames += 1
        self._air.append(frame)
        self.frames.append(frame)
        del self.frames[: -self.keep_frames]
        self._at(frame.end, self._frame_end, frame, radio)

    # ---- propagation ---------------------------------------------------------------------------
    def path_loss_db(self, a: tuple, b: tuple, freq: int) -> float:
        d = max(1.0, math.dist(a, b))
        fspl_1m = 20 * math.log10(freq) - 147.55
        return fspl_1m + 10 * self.exponent * math.log10(d)

    def signal(self, frame: Frame, rx: RadioState) -> tuple[float, float]:
        """(RSSI dBm, SNR dB) of frame at receiver rx."""
        tx = self.radios.get(frame.sender)
        pos = tx.pos if tx is not None else rx.pos
        rssi = frame.cfg.power - self.path_loss_db(pos, rx.pos, frame.cfg.freq)
        return rssi, rssi - noise_floor(frame.cfg.bw)

    def _catches(self, seg: Segment, frame: Frame) -> bool:
        """Was seg listening the way that lets it lock on frame's preamble and keep it to the end?"""
        if seg.cfg.channel() != frame.cfg.channel():
            return False
        if seg.kind == "rx":
            return seg.start <= frame.lock and (seg.end is None or seg.end >= frame.end)
        # a window: open while the preamble can still be locked, and before it timed out
        if seg.done or seg.locked not in (None, frame):
            return False
        return seg.start <= frame.lock and frame.start < seg.close

    def _close_window(self, radio: RadioState, seg: Segment) -> None:
        if seg.done:
            return
        for frame in self._air:
            if self._catches(seg, frame) and self._audible(frame, radio):
                seg.locked = frame
                seg.end = frame.end  # the chip stays in RX until the packet ends
                if frame.end <= self.now():  # a window asked for late: the frame has ended already
                    self._deliver(frame, radio, seg)
                return
        seg.done = True
        self._send(radio.addr, b"O" + TIME.pack(seg.close))

    def _sense(self, radio: RadioState, cfg: Cfg, start: int, end: int) -> None:
        """Answer a carrier sense: the strongest frame on freq overlapping [start, end] at radio."""
        best = round(noise_floor(cfg.bw))  # a quiet channel reads its noise
        for f in self.frames[-200:]:
            if f.sender != radio.id and f.cfg.freq == cfg.freq and f.start < end and f.end > start:
                best = max(best, round(self.signal(f, radio)[0]))
        self._send(radio.addr, b"Q" + struct.pack("<h", best))

    def _audible(self, frame: Frame, radio: RadioState) -> bool:
        return self.signal(frame, radio)[1] >= SNR_LIMIT.get(frame.cfg.sf, 0.0)

    def _frame_end(self, frame: Frame, sender: RadioState) -> None:
        self._send(sender.addr, b"D" + DONE.pack(frame.start, frame.end))
        for radio in list(self.radios.values()):
            if radio.id == frame.sender:
                continue
            seg = next((g for g in radio.segments if self._catches(g, frame)), None)
            if seg is not None:
                self._deliver(frame, radio, seg)
        horizon = frame.end - 60_000_000 * self.speed
        self._air = [f for f in self._air if f is not frame and f.end > horizon]
        if self.on_frame is not None:
            self.on_frame(frame)

    def _deliver(self, frame: Frame, radio: RadioState, seg: Segment) -> None:
        """The ended frame to a radio whose segment caught it, or its loss (and a window's end)."""
        why = self._loss(frame, radio)
        if why:
            frame.lost_by[radio.id] = why
            if seg.kind == "win" and seg.locked is frame:
                seg.done = True
                self._send(radio.addr, b"O" + TIME.pack(frame.end))
            return
        rssi, snr = self.signal(frame, radio)
        frame.heard_by[radio.id] = (round(rssi), snr)
        if seg.kind == "win":
            seg.done = True
        radio.rx_frames += 1
        self.routed += 1
        read_rssi, read_snr = chip_reading(rssi, snr)
        self._send(radio.addr, b"P" + RX.pack(frame.end, read_rssi, round(read_snr * 4)) + frame.cfg.pack()
                   + frame.payload)

    def _loss(self, frame: Frame, radio: RadioState) -> str:
        rssi, snr = self.signal(frame, radio)
        if snr < SNR_LIMIT.get(frame.cfg.sf, 0.0):
            return "below sensitivity"
        for other in self.frames[-200:]:
            if other is frame or other.sender == radio.id:
                continue
            if other.start >= frame.end or other.end <= frame.start:
                continue
            if (other.cfg.freq, other.cfg.sf, other.cfg.bw) != (frame.cfg.freq, frame.cfg.sf, frame.cfg.bw):
                continue
            if rssi - self.signal(other, radio)[0] < CAPTURE_DB:
                return f"collision with frame {other.id}"
        return ""

    # ---- status --------------------------------------------------------------------------------
    def status(self) -> dict:
        return {"address": list(self.address), "speed": self.speed, "radios": len(self.radios),
                "frames": len(self.frames), "routed": self.routed}


@dataclass
class Reception:
    rx_done: int  # world µs
    rssi: int
    snr_x4: int
    cfg: Cfg
    payload: bytes


class MediumClient:
    """A radio on the medium driven from CPython (tests, tools): the same wire format as
    spot/radio/virtual.py."""

    def __init__(self, medium_addr: tuple, radio_id: str, pos=(0.0, 0.0, 0.0), speed: int = 1):
        self.addr = tuple(medium_addr)
        self.speed = speed
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.connect(self.addr)
        self.sock.settimeout(5)
        self.sock.send(b"R" + json.dumps({"id": radio_id, "pos": list(pos), "speed": speed}).encode())
        reply = self._expect(b"A")
        info = json.loads(reply[1:])
        if "error" in info:
            raise MediumError(info["error"])

    def now(self) -> int:
        return time.monotonic_ns() // 1000 * self.speed

    def close(self) -> None:
        try:
            self.sock.send(b"B")
        except OSError:
            pass
        self.sock.close()

    def _expect(self, *kinds: bytes, timeout: float = 5.0) -> bytes:
        self.sock.settimeout(timeout)
        while True:
            data = self.sock.recv(2048)
            if data[:1] == b"E":
                raise MediumError(data[1:].decode())
            if data[:1] in kinds:
                return data

    def transmit(self, payload: bytes, cfg: Cfg, deadline: int = NOW) -> None:
        self.sock.send(b"T" + TIME.pack(deadline) + cfg.pack() + payload)

    def tx_done(self, timeout: float = 10.0) -> tuple[int, int]:
        return DONE.unpack_from(self._expect(b"D", timeout=timeout), 1)

    def listen(self, cfg: Cfg) -> None:
        self.sock.send(b"L" + cfg.pack())

    def window(self, start: int, symbols: int, cfg: Cfg) -> None:
        self.sock.send(b"W" + WINDOW.pack(start, symbols) + cfg.pack())

    def standby(self) -> None:
        self.sock.send(b"S")

    def sense(self, freq: int, start: int, duration_us: int) -> int:
        """Carrier sense (listen before talk): strongest RSSI on freq in [start, start + duration]."""
        self.sock.send(b"Q" + SENSE.pack(start, duration_us) + Cfg(freq, 7, 125_000, 5, 8, 0, 0x34, 0).pack())
        return struct.unpack_from("<h", self._expect(b"Q"), 1)[0]

    def receive(self, timeout: float = 10.0) -> Reception | int | None:
        """A Reception, the world time of a window timeout (int), or None when nothing came."""
        try:
            data = self._expect(b"P", b"O", timeout=timeout)
        except TimeoutError:
            return None
        if data[:1] == b"O":
            return TIME.unpack_from(data, 1)[0]
        rx_done, rssi, snr = RX.unpack_from(data, 1)
        cfg = Cfg.unpack(data, 1 + RX.size)
        return Reception(rx_done, rssi, snr, cfg, data[1 + RX.size + CFG.size :])
