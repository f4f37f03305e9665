# The virtual board's radio: the same interface as the chip drivers, carried out by the RF medium
# of the simulator (host/loraspot/sim/medium.py) over loopback UDP. Deadlines and windows are
# handed to the medium in world time (host monotonic µs x speed), which it honours exactly.
import asyncio
import gc
import json
import socket
import struct

from micropython import const

from spot.aio import readable
from spot.clock import ticks_add, ticks_diff
from spot.radio import BW_SX127X, RadioError, airtime
from spot.radio.base import Radio, timeout_error

_CFG = "<IBIBHBBb"  # freq, sf, bw, cr, preamble, flags, sync, power
_CFG_SIZE = const(15)
_F_IQ = const(1)
_F_CRC = const(2)
_F_IMPLICIT = const(4)
_NOW = const(-1)
_DATAGRAM_MAX = const(1 + 12 + _CFG_SIZE + 255)  # the longest the medium sends: a received frame
_SPARE = const(768)  # the block lent to the heap for recv (sim/mp/vboot.py keeps it)
# The medium answers every request in world time; the backstop only tells a medium that is gone.
# It is host time on top of the world-time limit, so a starved process (the board's or the
# medium's) is never taken for a hung radio: at --speed 10 the world-time limit alone is 0.2 s.
_SLACK_MS = const(10000)

try:
    import _vboard  # pyright: ignore[reportMissingImports]
except ImportError:
    _vboard = None



class VirtualRadio(Radio):
    CHIP = airtime.SX127X
    BW = BW_SX127X
    MIN_SF = 7
    MIN_POWER = -4
    MAX_POWER = 22

    def __init__(self, clock, radio_profile, medium=None, position=None, radio_id=None):
        super().__init__(clock, radio_profile)
        if _vboard is not None:
            medium = medium or getattr(_vboard, "MEDIUM", None)
            position = position or getattr(_vboard, "POSITION", None)
            radio_id = radio_id or getattr(_vboard, "RADIO_ID", None)
        if not medium:
            raise RadioError("this virtual board has no RF medium: start one (loraspot sim medium) and give the "
                             "board --medium HOST:PORT")
        self.speed = clock.speed
        self._msg = bytearray(1 + 8 + 2 + _CFG_SIZE + 255)
        self._reply = None
        self._waiting = None  # b"D", b"Q" or b"W" while an operation waits for the medium
        self._reply_flag = asyncio.ThreadSafeFlag()
        self._expired = False
        self._task = None
        self._spare = _vboard.RADIO_SPARE if _vboard is not None else None  # None: no block to lend
        addr = socket.getaddrinfo(medium[0], medium[1])[0][-1]
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.connect(addr)
        hello = {"id": radio_id or "virtual", "pos": list(position or (0, 0, 0)), "speed": self.speed}
        self.sock.send(b"R" + json.dumps(hello).encode())
        self.sock.settimeout(3)
        try:
            data = self.sock.recv(512)
        except OSError:
            raise RadioError("no RF medium answers at %s:%d" % (medium[0], medium[1]))
        self.sock.setblocking(False)
        info = json.loads(data[1:]) if data[:1] == b"A" else {"error": data[1:].decode()}
        if "error" in info:
            raise RadioError("RF medium refused this radio: " + info["error"])

    # ---- world time ---------------------------------------------------------------------------
    def world(self, ticks):
        raw = self.clock.raw_us()
        return raw * self.speed + ticks_diff(ticks, self.clock.from_raw_us(raw))

    def ticks(self, world):
        raw = self.clock.raw_us()
        return ticks_add(self.clock.from_raw_us(raw), world - raw * self.speed)

    # ---- messages -----------------------------------------------------------------------------
    def _pack_cfg(self, offset):
        s = self.s
        flags = (_F_IQ if s.iq_inverted else 0) | (_F_CRC if s.crc else 0) | (_F_IMPLICIT if s.implicit_len else 0)
        struct.pack_into(_CFG, self._msg, offset, s.freq, s.sf, s.bw, s.cr, s.preamble, flags, s.sync, s.power)
        return offset + _CFG_SIZE

    def _send(self, n):
        self.sock.send(memoryview(self._msg)[:n])

    def _ensure_reader(self):
        if self._task is None:
            self._task = asyncio.create_task(self._reader())

    async def _reader(self):
        while True:
            try:
                await readable(self.sock)  # pyright: ignore[reportGeneralTypeIssues]  (MicroPython awaits generators)
                data = self.sock.recv(_DATAGRAM_MAX)
            except MemoryError:
                # waiting (a generator, asyncio's entry) and recv allocate, where a chip's FIFO needs
                # no heap: the datagram stays queued. The block vboot keeps for this (out of the
                # board's heap) is lent to the heap, which is collected, and the datagram read
                # again; on a cut-up heap a collection alone found no room for as long as the
                # transmission's end was awaited, and a MemoryError in the wait ended this task
                spare = self._spare
                if spare:
                    spare.pop()
                gc.collect()
                continue
            except OSError:
                continue
            if self._spare is not None and not self._spare:
                try:
                    self._spare.append(bytearray(_SPARE))  # taken back while the heap has room
                except MemoryError:
                    pass
            kind = data[0]
            w = self._waiting
            # the answer to what is awaited: D (transmit done), Q (carrier sense), P or O (a window's
            # packet or its end); E (the medium's error) for any of them
            if w is not None and (kind == 0x45 or kind == w[0] or (w == b"W" and kind in (0x50, 0x4F))):
                self._reply = data
                self._reply_flag.set()
            elif kind == 0x50 and (self.receiving or w is not None):
                # a packet of continuous receive, also when it comes while a transmit or a carrier
                # sense waits for its answer: the medium sent it before it took that command, so the
                # frame ended while the chip still listened (taken as the answer, it was lost)
                p = self._slot()
                if p is not None and self._fill(p, data):
                    self._commit(p)

    def _fill(self, p, data):
        n = len(data) - 1 - 12 - _CFG_SIZE
        if not 1 <= n <= 255:
            self.stats["rx_bad"] += 1
            return False
        rx_done, rssi, snr = struct.unpack_from("<qhh", data, 1)
        freq, sf, bw, cr = struct.unpack_from("<IBIB", data, 13)
        p.buf[:n] = memoryview(data)[13 + _CFG_SIZE :]
        p.length = n
        p.rssi, p.snr_x4, p.crc_ok = rssi, snr, True
        p.t_us = self.ticks(rx_done)
        p.freq, p.sf, p.bw, p.cr = freq, sf, bw, cr
        return True

    async def _await_reply(self, kind, limit_us):
        self._waiting = kind
        self._reply = None
        self._reply_flag.clear()
        self._ensure_reader()
        self._expired = False
        alarm = asyncio.create_task(self._alarm(self.clock.host_ms(limit_us // 1000) + _SLACK_MS))
        try:
            while self._reply is None:
                if self._expired:
                    self.stats["timeouts"] += 1
                    return None
                await self._reply_flag.wait()
            data = self._reply
            if data[0] == 0x45:
                raise RadioError("RF medium: " + bytes(data[1:]).decode())
            return data
        finally:
            alarm.cancel()
            self._waiting = None

    async def _alarm(self, ms):
        await asyncio.sleep_ms(ms)
        self._expired = True
        self._reply_flag.set()

    # ---- the interface ------------------------------------------------------------------------
    def _hw_configure(self):
        if self.receiving:
            self._hw_receive()

    def standby(self):
        self.receiving = False
        self._msg[0] = 0x53  # "S"
        self._send(1)

    def sleep(self):
        self.standby()

    async def _hw_transmit(self, data, deadline):
        m = self._msg
        m[0] = 0x54  # "T"
        struct.pack_into("<q", m, 1, self.world(deadline) if deadline is not None else _NOW)
        off = self._pack_cfg(9)
        n = len(data)
        m[off : off + n] = data
        self._ensure_reader()
        self._waiting = b"D"
        self._send(off + n)
        wait_us = (ticks_diff(deadline, self.clock.ticks_us()) if deadline is not None else 0)
        reply = await self._await_reply(b"D", max(0, wait_us) + self.airtime_us(n) + 2000000)
        if reply is None:
            raise timeout_error("transmit (no answer from the RF medium)")
        start, end = struct.unpack_from("<qq", reply, 1)
        return self.ticks(start), self.ticks(end)

    async def _hw_rssi(self, duration_us):
        m = self._msg
        m[0] = 0x51  # "Q": strongest signal on this channel over the next duration_us
        struct.pack_into("<qI", m, 1, self.world(self.clock.ticks_us()), duration_us)
        self._ensure_reader()
        self._waiting = b"Q"
        self._send(self._pack_cfg(13))
        reply = await self._await_reply(b"Q", duration_us + 2000000)
        if reply is None:
            raise timeout_error("carrier sense (no answer from the RF medium)")
        return struct.unpack_from("<h", reply, 1)[0]

    def _hw_receive(self):
        self._msg[0] = 0x4C  # "L"
        self._send(self._pack_cfg(1))
        self._ensure_reader()

    async def _hw_window(self, start, symbols):
        m = self._msg
        m[0] = 0x57  # "W"
        struct.pack_into("<qH", m, 1, self.world(start), symbols)
        self._ensure_reader()
        self._waiting = b"W"
        self._send(self._pack_cfg(11))
        limit = ticks_diff(start, self.clock.ticks_us()) + self.window_limit_us(symbols) + 2000000
        reply = await self._await_reply(b"W", limit)
        if reply is None:
            raise timeout_error("receive window (no answer from the RF medium)")
        if reply[0] == 0x4F:
            return None
        p = self.win_packet
        if not self._fill(p, reply):
            return None
        self.stats["rx"] += 1
        return p

    def close(self):
        if self._task is not None:
            self._task.cancel()
            self._task = None
        try:
            self._msg[0] = 0x42  # "B"
            self._send(1)
        except OSError:
            pass
        self.sock.close()
