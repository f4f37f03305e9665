# The 32-bit tmst counter on the 2^30 clock: started just before both wraps (the clock's 2^30 and
# the counter's 2^32), it counts on without a jump, values in the past are answered, differences
# are right across the 2^32 wrap, and scheduling gives the clock ticks of a future tmst.
from fwtest import eq
from spot.clock import MASK, Clock
from spot.hotspot.tmst import FAR, Tmst, diff, split


class Source:
    def __init__(self):
        self.t = 0

    def __call__(self):
        return self.t & MASK


def _setup(start_tmst):
    src = Source()
    clock = Clock(start_us=MASK - 5000, us_source=src, ms_source=lambda: 0)
    hi, lo = split(start_tmst)
    return src, Tmst(clock, hi, lo)


def _value(hl):
    return hl[0] * 65536 + hl[1]  # test side only: CPython-sized ints are fine in a test


def test_counts_across_both_wraps():
    src, t = _setup(0xFFFFFFFF - 3000)
    start = _value((t.hi, t.lo))
    for step in (1000, 1999, 2, 1, 500000, 1 << 28, 1 << 28, 1 << 28):
        before = _value((t.hi, t.lo))
        src.t += step
        now = _value(t.advance())
        eq((now - before) % (1 << 32), step, "step %d" % step)
    eq(_value((t.hi, t.lo)), (start + 1000 + 1999 + 2 + 1 + 500000 + 3 * (1 << 28)) % (1 << 32))


def test_values_in_the_past_and_the_future():
    src, t = _setup(0xFFFFFF00)
    rx_done = t.clock.ticks_us()
    src.t += 300  # the counter moves on (e.g. the stat timer) before the packet is handled
    t.advance()
    eq(_value(t.at(rx_done)), 0xFFFFFF00)  # not the later value
    eq(_value((t.hi, t.lo)), (0xFFFFFF00 + 300) % (1 << 32))  # and the counter did not go back
    eq(_value(t.at(t.clock.ticks_us())), 44)


def test_diff_across_the_wrap_and_far_values():
    eq(diff(*split(5), *split(0xFFFFFFFB)), 10)
    eq(diff(*split(0xFFFFFFFB), *split(5)), -10)
    eq(diff(*split(1000000), *split(0)), 1000000)
    eq(diff(*split(0x80000000), *split(0)), -FAR)
    eq(diff(*split(0x30000000), *split(0)), FAR)


def test_ticks_of_a_future_tmst():
    src, t = _setup(0xFFFFF000)
    target = split((0xFFFFF000 + 1000000) % (1 << 32))  # RX1: 1 s after, beyond the 2^32 wrap
    ticks, d = t.ticks_at(*target)
    eq(d, 1000000)
    src.t += 1000000
    eq(ticks, t.clock.ticks_us())  # the clock reads that value when the counter reaches it
    eq(t.ticks_at(*split(0xFFFFF000 - 20))[1], -20)  # already past
