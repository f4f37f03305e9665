# The gateway's 32-bit microsecond counter ("tmst" in rxpk and txpk), built on the clock's 2^30
# ticks. It wraps at 2^32 (every 71.6 minutes) and is kept as two 16-bit halves, so no integer of
# 2^30 or more is ever made (on an ESP32 that would be a heap object on the receive path).
# advance() must run at least every 2^29 µs (about 9 minutes); the hotspot's stat timer does.
from micropython import const

from spot.clock import ticks_add, ticks_diff

FAR = const(0x1FFFFFFF)  # |difference| returned for counter values too far apart to matter


def split(value):
    """(hi, lo) halves of a 32-bit value (a txpk's tmst)."""
    return (value >> 16) & 0xFFFF, value & 0xFFFF


def diff(hi_a, lo_a, hi_b, lo_b):
    """a - b in µs modulo 2^32 as a signed value, or ±FAR when it is beyond ±2^29."""
    dh = (hi_a - hi_b) & 0xFFFF
    if dh >= 0x8000:
        dh -= 0x10000
    if dh >= 0x2000 or dh < -0x2000:
        return FAR if dh > 0 else -FAR
    d = dh * 0x10000 + (lo_a - lo_b)
    if d > FAR:
        return FAR
    if d < -FAR:
        return -FAR
    return d


class Tmst:
    def __init__(self, clock, start_hi=0, start_lo=0):
        """start_hi/start_lo place the counter anywhere in its period (tests start near 2^32)."""
        self.clock = clock
        self.ticks = clock.ticks_us()  # clock ticks of the counter value (hi, lo)
        self.hi = start_hi & 0xFFFF
        self.lo = start_lo & 0xFFFF

    def _add(self, d):
        lo = self.lo + d
        self.hi = (self.hi + (lo >> 16)) & 0xFFFF
        self.lo = lo & 0xFFFF

    def advance(self, ticks=None):
        """Move the counter to `ticks` (default: now) when that is not older than the last value."""
        if ticks is None:
            ticks = self.clock.ticks_us()
        d = ticks_diff(ticks, self.ticks)
        if d > 0:
            self._add(d)
            self.ticks = ticks
        return self.hi, self.lo

    def at(self, ticks):
        """(hi, lo) of the counter at clock `ticks` (an RX-done time, possibly a little in the
        past), advancing the counter when `ticks` is newer."""
        d = ticks_diff(ticks, self.ticks)
        if d >= 0:
            return self.advance(ticks)
        lo = self.lo + d
        return (self.hi + (lo >> 16)) & 0xFFFF, lo & 0xFFFF

    def ticks_at(self, hi, lo):
        """Clock ticks at which the counter reads (hi, lo), and the µs from the last advance to
        then (negative: already past; ±FAR: too far to schedule)."""
        d = diff(hi, lo, self.hi, self.lo)
        return ticks_add(self.ticks, d), d
