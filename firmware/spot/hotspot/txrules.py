# The region's limits on the hotspot's own transmissions (loaded by the hotspot's boot with the
# region): duty cycle per sub-band over a rolling hour, the downlink dwell time, EIRP per sub-band.
from micropython import const

from spot.hotspot.semtech import DUTY_CYCLE_OVERFLOW, NONE, TX_FREQ, TX_POWER

SLOT_MS = const(600000)  # the duty-cycle window is an hour of six 10-minute slots


class TxRules:
    """The region's limits on the hotspot's own transmissions: duty cycle per sub-band over a
    rolling hour (an hour's airtime budget of 3600 s / D in a band of duty 1/D), the downlink
    dwell time, and the EIRP per sub-band. check() answers the TX_ACK error a downlink would break,
    or NONE; record() books an accepted one."""

    def __init__(self, duty=(), eirp=(), max_eirp=99, dwell_ms=0):
        self.duty = duty  # ((low, high, D), ...)
        self.eirp = eirp  # ((low, high, dBm), ...) sub-bands with their own limit
        self.max_eirp = max_eirp  # dBm elsewhere in the band
        self.dwell_ms = dwell_ms
        self.used = [[0] * 6 for _ in duty]  # ms on air per slot, per band
        self.slot = [0] * len(duty)  # newest slot number per band
        self.refused = {}  # error -> count

    def _band(self, freq):
        for i in range(len(self.duty)):
            if self.duty[i][0] <= freq < self.duty[i][1]:
                return i
        return -1

    def _roll(self, i, now_ms):
        s = now_ms // SLOT_MS
        for k in range(self.slot[i] + 1, min(s, self.slot[i] + 6) + 1):
            self.used[i][k % 6] = 0
        if s > self.slot[i]:
            self.slot[i] = s

    def limit(self, freq):
        for lo, hi, dbm in self.eirp:
            if lo <= freq < hi:
                return dbm
        return self.max_eirp

    def check(self, freq, power, air_us, now_ms):
        err = NONE
        i = self._band(freq)
        if power > self.limit(freq):
            err = TX_POWER
        elif self.dwell_ms and air_us > self.dwell_ms * 1000:
            err = TX_FREQ  # no dwell-time code exists: this channel cannot carry the frame at this rate
        elif i >= 0:
            self._roll(i, now_ms)
            if sum(self.used[i]) + (air_us + 999) // 1000 > 3600000 // self.duty[i][2]:
                err = DUTY_CYCLE_OVERFLOW
        if err != NONE:
            self.refused[err] = self.refused.get(err, 0) + 1
        return err

    def record(self, freq, air_us, now_ms):
        i = self._band(freq)
        if i >= 0:
            self._roll(i, now_ms)
            self.used[i][self.slot[i] % 6] += (air_us + 999) // 1000

    def budget_left_ms(self, freq, now_ms):
        i = self._band(freq)
        if i < 0:
            return -1
        self._roll(i, now_ms)
        return 3600000 // self.duty[i][2] - sum(self.used[i])
