# Transmit-time regulation: per sub-band duty cycle (after a frame of T on air in a band with duty
# 1/D the band stays closed for T*(D-1)), the uplink dwell-time limit, and the join-request
# back-off of LoRaWAN 1.0.3 section 7 (36 s per hour for the first hour, 36 s per 10 hours for
# the next 10, then 8.7 s per 24 hours). Times are clock ms ticks (2^30 wrap-safe).
from spot.clock import ticks_add, ticks_diff

HOUR_MS = 3600000
_JOIN = ((HOUR_MS, 36000), (10 * HOUR_MS, 36000), (24 * HOUR_MS, 8700))  # (period, airtime budget ms)


class DutyCycleError(ValueError):
    """This transmission may never be made as asked (dwell time, unknown band)."""


class DutyCycle:
    def __init__(self, region):
        self.region = region
        # band low edge -> ms tick when the band opens again; public: the deep-sleep record keeps it
        self.off_until = {}
        self.enforced = True

    def wait_ms(self, freq, airtime_us, now_ms, uplink_dwell=None):
        """0 when a frame of airtime_us may start on freq now, else how long to wait (ms).
        Raises DutyCycleError when it can never go as asked."""
        dwell = self.region.dwell_ms if uplink_dwell is None else uplink_dwell
        if dwell and airtime_us > dwell * 1000:
            raise DutyCycleError("%d ms on air exceeds the %d ms dwell time: use a faster data rate or fewer bytes"
                                 % (airtime_us // 1000, dwell))
        band = self.region.duty_band(freq)
        if band is None or not self.enforced:
            return 0
        free = self.off_until.get(band[0])
        if free is None:
            return 0
        return max(0, ticks_diff(free, now_ms))

    def record(self, freq, airtime_us, end_ms):
        band = self.region.duty_band(freq)
        if band is not None:
            self.off_until[band[0]] = ticks_add(end_ms, ((airtime_us + 999) // 1000) * (band[2] - 1))


class JoinBackoff:
    """Aggregated Join-Request airtime since the first attempt, within the spec's budgets."""

    def __init__(self):
        self.first = None
        self.spent = 0  # ms of airtime in the current window
        self.window_start = None
        self.window = 0

    def _period(self, since_first):
        if since_first < HOUR_MS:
            return 0, 0
        if since_first < 11 * HOUR_MS:
            return 1, HOUR_MS
        return 2, 11 * HOUR_MS + ((since_first - 11 * HOUR_MS) // (24 * HOUR_MS)) * 24 * HOUR_MS

    def wait_ms(self, airtime_us, now_ms):
        if self.first is None:
            return 0
        since = ticks_diff(now_ms, self.first)
        idx, start = self._period(since)
        if idx != self.window or start != self.window_start:
            return 0  # a new window: budget restored
        period, budget = _JOIN[idx]
        if self.spent + (airtime_us + 999) // 1000 <= budget:
            return 0
        return max(1, start + period - since)

    def record(self, airtime_us, now_ms):
        if self.first is None:
            self.first = now_ms
        since = ticks_diff(now_ms, self.first)
        idx, start = self._period(since)
        if idx != self.window or start != self.window_start:
            self.window, self.window_start, self.spent = idx, start, 0
        self.spent += (airtime_us + 999) // 1000
