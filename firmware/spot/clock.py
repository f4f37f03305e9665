# The one source of time for firmware code: ESP32 tick semantics (2^30 period) on every port,
# a speed factor and a start offset on the virtual board.
import asyncio
import time

from micropython import const

PERIOD = const(0x40000000)
MASK = const(0x3FFFFFFF)
_HALF = const(0x20000000)


# The raw µs counter, for interrupt handlers: a plain call, nothing allocated. Convert what it
# returned with Clock.from_raw_us() outside the handler.
raw_ticks_us = time.ticks_us


def wall_ns():
    """The system's calendar time in ns (the port's epoch): UTC once NTP has set it."""
    return time.time_ns()


def ticks_add(t, delta):
    return (t + delta) & MASK


def ticks_diff(a, b):
    """a - b as a signed value, correct across the 2^30 wrap (like time.ticks_diff on an ESP32)."""
    return ((a - b + _HALF) & MASK) - _HALF


class Clock:
    """Ticks in µs and ms that wrap at 2^30, running `speed` times faster than the host clock.

    start_us / start_ms place the counters anywhere in their period (tests start them just
    before the wrap). The sources are injectable so the wrap can be driven deterministically.
    """

    def __init__(self, speed=1, start_us=None, start_ms=None, us_source=None, ms_source=None):
        if not isinstance(speed, int) or speed < 1:
            raise ValueError("clock speed must be a whole number >= 1")
        self.speed = speed
        self._us = us_source or time.ticks_us
        self._ms = ms_source or time.ticks_ms
        self._base_us = self._us()
        self._base_ms = self._ms()
        # tick values are plain ints on every port; the stubs type them as opaque
        self._start_us = (self._base_us if start_us is None else start_us) & MASK  # pyright: ignore[reportOperatorIssue]
        self._start_ms = (self._base_ms if start_ms is None else start_ms) & MASK  # pyright: ignore[reportOperatorIssue]
        self._up_ms = 0
        self._up_mark = self._start_ms

    def ticks_us(self):
        d = (self._us() - self._base_us) & MASK  # pyright: ignore[reportOperatorIssue]
        if self.speed != 1:
            d *= self.speed
        return (self._start_us + d) & MASK

    def from_raw_us(self, raw):
        """Clock ticks of a raw time.ticks_us() value (what an IRQ handler records)."""
        d = (raw - self._base_us) & MASK
        if self.speed != 1:
            d *= self.speed
        return (self._start_us + d) & MASK

    def raw_us(self):
        """The raw source's current value (host monotonic microseconds on the unix port)."""
        return self._us()

    def ticks_ms(self):
        d = (self._ms() - self._base_ms) & MASK  # pyright: ignore[reportOperatorIssue]
        if self.speed != 1:
            d *= self.speed
        return (self._start_ms + d) & MASK

    def uptime_ms(self):
        """Milliseconds since start; call at least every 6 days of device time (stats does)."""
        now = self.ticks_ms()
        self._up_ms += ticks_diff(now, self._up_mark)
        self._up_mark = now
        return self._up_ms

    def host_ms(self, device_ms):
        """Host (real) milliseconds that `device_ms` of device time take."""
        return device_ms // self.speed if self.speed != 1 else device_ms

    async def sleep_ms(self, ms):
        await asyncio.sleep_ms(self.host_ms(ms) if ms > 0 else 0)

    async def sleep_until_ms(self, deadline):
        """Sleep until ticks_ms() reaches deadline (a ticks_ms value); returns the lateness in ms."""
        while True:
            left = ticks_diff(deadline, self.ticks_ms())
            if left <= 0:
                return -left
            await asyncio.sleep_ms(max(1, self.host_ms(left)))

    async def sleep_until_us(self, deadline, spin_us=1500):
        """Sleep until ticks_us() reaches deadline: asyncio sleep to within spin_us, then spin.
        Returns the lateness in µs (0 when the deadline was met, >0 when it had already passed)."""
        while True:
            left = ticks_diff(deadline, self.ticks_us())
            if left < spin_us + 1000:  # a whole-ms sleep would eat into the spin margin
                break
            await asyncio.sleep_ms(max(1, self.host_ms((left - spin_us) // 1000)))
        if left < 0:
            return -left
        while ticks_diff(deadline, self.ticks_us()) > 0:
            pass
        return 0
