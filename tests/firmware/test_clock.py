# The clock keeps ESP32 tick semantics (2^30 period) on every port; code behaves the same next
# to the wrap as far from it.
from fwtest import eq, raises
from spot import clock
from spot.clock import MASK, PERIOD, Clock, ticks_add, ticks_diff


class FakeSource:
    def __init__(self, start):
        self.now = start

    def __call__(self):
        return self.now


def test_ticks_diff_and_add_across_wrap():
    eq(ticks_add(PERIOD - 10, 25), 15)
    eq(ticks_diff(15, PERIOD - 10), 25)
    eq(ticks_diff(PERIOD - 10, 15), -25)
    eq(ticks_add(0, -1), MASK)
    eq(ticks_diff(0, MASK), 1)


def test_values_stay_small_ints():
    # 32-bit ESP32: small ints hold up to 2^30-1, so tick values never allocate
    for t in (0, MASK, ticks_add(MASK, MASK)):
        if not 0 <= t <= MASK:
            raise AssertionError(t)


def _schedule_trace(start_us, start_ms, speed=1):
    """Run a periodic deadline scheduler on a fake source; return the firing offsets."""
    us, ms = FakeSource(123), FakeSource(456)
    c = Clock(speed=speed, start_us=start_us, start_ms=start_ms, us_source=us, ms_source=ms)
    t0 = c.ticks_ms()
    deadline = ticks_add(t0, 1000)
    fired = []
    for step in range(5000):
        ms.now += 1
        us.now += 1000
        now = c.ticks_ms()
        if ticks_diff(now, deadline) >= 0:
            fired.append(ticks_diff(now, t0))
            deadline = ticks_add(deadline, 1000)
    return fired, c.uptime_ms(), ticks_diff(c.ticks_us(), start_us if start_us is not None else 0)


def test_scheduler_same_near_and_far_from_wrap():
    far = _schedule_trace(1000, 1000)
    near = _schedule_trace(PERIOD - 2500 * 1000, PERIOD - 2500)  # wraps 2.5 s in
    eq(near[0], far[0], "firing times")
    eq(near[1], far[1], "uptime")
    eq(near[2], far[2], "us ticks elapsed")
    eq(len(far[0]), 5)


def test_speed_factor_scales_device_time():
    fired, up, _ = _schedule_trace(PERIOD - 100, PERIOD - 100, speed=10)
    eq(len(fired), 50)
    eq(up, 50000)
    c = Clock(speed=10)
    eq(c.host_ms(5000), 500)


def test_uptime_survives_many_wraps():
    ms = FakeSource(0)
    c = Clock(start_ms=PERIOD - 5, ms_source=ms, us_source=FakeSource(0))
    total = 0
    for _ in range(5):
        ms.now = (ms.now + (1 << 28)) & MASK  # large steps, each under half a period
        total += 1 << 28
        eq(c.uptime_ms(), total)


def test_bad_speed_refused():
    raises(ValueError, Clock, speed=0)
    raises(ValueError, Clock, speed=1.5)


def test_sleep_until_returns_lateness():
    import asyncio

    c = Clock(start_ms=PERIOD - 20)
    late = asyncio.run(c.sleep_until_ms(ticks_add(c.ticks_ms(), 40)))
    if not 0 <= late < 30:
        raise AssertionError("late by %d ms" % late)
    eq(clock.PERIOD, 1 << 30)
