# Store-and-forward: received packets waiting for the backhaul, oldest first, in storage allocated
# once (one buffer for the payloads, one array for the numbers: about 320 bytes per entry).
# Bounded by count (the oldest is dropped to make room) and by age (checked when a batch is
# taken); a Join-Request older than its last receive window (JOIN_ACCEPT_DELAY2 less a margin) is
# dropped, as nobody can answer it any more. Every drop is counted by its reason, none is silent.
from array import array

from micropython import const

from spot.clock import ticks_diff

JOIN_MAX_AGE_MS = const(5500)  # a Join-Accept needs the request in the server before RX2 (6 s)
_SLOT = const(255)

# per-entry numbers (array "i": nothing allocated when read or written)
THI = const(0)  # tmst, 16-bit halves
TLO = const(1)
STAT = const(2)  # 1 CRC ok, -1 CRC failed
SEC = const(3)  # UTC seconds in the port's epoch, -1 when unknown
US = const(4)
MS = const(5)  # clock ticks_ms when queued
DEAD = const(6)  # dropped while in the middle of a batch: skipped, removed with it
LEN = const(7)
RSSI = const(8)
SNR = const(9)  # quarter dB
FREQ = const(10)
SF = const(11)
BW = const(12)
CR = const(13)
F = const(14)


class View:
    """One entry seen as a received packet (what semtech.rxpk reads); reused for every entry."""

    def __init__(self):
        self.buf = None  # type: memoryview | None
        self.length = 0
        self.rssi = 0
        self.snr_x4 = 0
        self.freq = 0
        self.sf = 0
        self.bw = 0
        self.cr = 0


class Backlog:
    def __init__(self, size):
        self.size = size
        self.data = bytearray(_SLOT * size)
        mv = memoryview(self.data)
        self.bufs = [mv[i * _SLOT : (i + 1) * _SLOT] for i in range(size)]
        self.meta = array("i", bytes(4 * F * size))
        self.head = 0
        self.count = 0
        self.dropped = {"full": 0, "age": 0, "join": 0}
        self.view = View()

    def __len__(self):
        return self.count

    def push(self, p, thi, tlo, stat, sec, us, now_ms):
        """Queue a copy of radio Packet p; when full, the oldest entry makes room (counted)."""
        if self.count == self.size:
            self.dropped["full"] += 1
            self.head = (self.head + 1) % self.size
            self.count -= 1
        i = (self.head + self.count) % self.size
        n = p.length
        buf = self.bufs[i]
        src = p.buf
        for k in range(n):
            buf[k] = src[k]
        m = self.meta
        b = i * F
        m[b + THI] = thi
        m[b + TLO] = tlo
        m[b + STAT] = stat
        m[b + SEC] = sec
        m[b + US] = us
        m[b + MS] = now_ms
        m[b + DEAD] = 0
        m[b + LEN] = n
        m[b + RSSI] = p.rssi
        m[b + SNR] = p.snr_x4
        m[b + FREQ] = p.freq
        m[b + SF] = p.sf
        m[b + BW] = p.bw
        m[b + CR] = p.cr
        self.count += 1

    def index(self, k):
        """Slot index of the k-th oldest entry."""
        return (self.head + k) % self.size

    def packet(self, i):
        """Slot i as a packet (the one View object, refilled)."""
        v = self.view
        m = self.meta
        b = i * F
        v.buf = self.bufs[i]
        v.length = m[b + LEN]
        v.rssi = m[b + RSSI]
        v.snr_x4 = m[b + SNR]
        v.freq = m[b + FREQ]
        v.sf = m[b + SF]
        v.bw = m[b + BW]
        v.cr = m[b + CR]
        return v

    def usable(self, i, now_ms, max_age_ms):
        """False (and the drop counted) when slot i is too old to forward."""
        m = self.meta
        b = i * F
        if m[b + DEAD]:
            return False
        age = ticks_diff(now_ms, m[b + MS])
        reason = None
        if age > max_age_ms:
            reason = "age"
        elif age > JOIN_MAX_AGE_MS and m[b + LEN] and self.bufs[i][0] >> 5 == 0:
            reason = "join"
        if reason is None:
            return True
        self.dropped[reason] += 1
        m[b + DEAD] = 1
        return False

    def field(self, i, f):
        return self.meta[i * F + f]

    def pop(self, k):
        """Remove the k oldest entries (a batch the server acknowledged)."""
        k = min(k, self.count)
        self.head = (self.head + k) % self.size
        self.count -= k
