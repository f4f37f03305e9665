# Just-in-time downlink queue: each accepted downlink has a start and an end in clock ticks; a new
# one is refused TOO_LATE when the radio cannot be programmed before its start, TOO_EARLY when it
# is further ahead than the queue plans, COLLISION_PACKET when it overlaps a queued one (guard
# time included) or the queue is full (as Semtech's packet forwarder reports a full queue).
# It also keeps the region's limits on the hotspot's own transmissions: duty cycle per sub-band
# over a rolling hour of six 10-minute slots (an hour's airtime budget of 3600 s / D in a band of
# duty 1/D), the downlink dwell time, and the EIRP per sub-band. They live inside add(), with no
# method, module or global name of their own: the MQTT hotspot on a 112 KB board has no heap to
# spare for those (each costs a function object or a larger dict, for good).
from micropython import const

from spot.clock import ticks_add, ticks_diff
from spot.hotspot.semtech import COLLISION_PACKET, NONE, TOO_EARLY, TOO_LATE

LEAD_US = const(30000)  # time to take a downlink off the queue and program the radio
GUARD_US = const(1000)  # kept free between two transmissions
MAX_ADVANCE_US = const(30000000)  # class A RX2 is at most 16 s after the uplink
SIZE = const(8)
_SLOT_MS = const(600000)


class JitQueue:
    def __init__(self, size=SIZE, limits=None):
        from array import array

        self.start = array("I", bytes(4 * size))  # clock ticks (30 bits)
        self.end = array("I", bytes(4 * size))
        self.item = [None] * size
        self.used = bytearray(size)
        # the region's limits (spot.hotspot.boot.channel_band): ((low, high, D), ...) duty-cycle
        # sub-bands, ((low, high, dBm), ...) sub-bands with their own EIRP, the EIRP elsewhere, the
        # downlink dwell time in ms (0: none)
        self.duty, self.eirp, self.max_eirp, self.dwell_ms = limits or ((), (), 99, 0)
        n = len(self.duty)
        self.air = array("I", bytes(24 * n))  # ms on air per slot: band i, slot k at 6 * i + k
        self.slot = array("I", bytes(4 * n))  # newest slot number per band
        self.refused = {}  # TX_ACK error -> downlinks refused by the limits

    def add(self, now, start, airtime_us, item, now_ms=-1):
        """Queue `item` to start at clock ticks `start` (now: the clock ticks when asked);
        returns NONE or the TX_ACK error, and queues nothing on an error. With now_ms (ms since
        start) the region's limits come first: the item's power against the sub-band's EIRP, the
        dwell time, and its sub-band's airtime in the rolling hour (booked once it is queued)."""
        band = -1
        if now_ms >= 0:
            err = NONE
            freq = item.freq
            limit = self.max_eirp
            for lo, hi, dbm in self.eirp:
                if lo <= freq < hi:
                    limit = dbm
            if item.power > limit:
                err = "TX_POWER"
            elif self.dwell_ms and airtime_us > self.dwell_ms * 1000:
                err = "TX_FREQ"  # no dwell-time code exists: this channel cannot carry it at this rate
            else:
                d, air = self.duty, self.air
                for i in range(len(d)):
                    if d[i][0] <= freq < d[i][1]:
                        band = i
                        s, last = now_ms // _SLOT_MS, self.slot[i]
                        for k in range(last + 1, min(s, last + 6) + 1):  # slots that left the hour
                            air[6 * i + k % 6] = 0
                        if s > last:
                            self.slot[i] = s
                        spent = (airtime_us + 999) // 1000
                        for k in range(6 * i, 6 * i + 6):
                            spent += air[k]
                        if spent > 3600000 // d[i][2]:
                            err = "DUTY_CYCLE_OVERFLOW"  # ChirpStack's TxAckStatus name
                        break
                else:
                    if d:
                        err = "TX_FREQ"  # between the region's sub-bands (EU868's gaps): no one may transmit
            if err != NONE:
                self.refused[err] = self.refused.get(err, 0) + 1
                return err
        ahead = ticks_diff(start, now)
        if ahead < LEAD_US:
            return TOO_LATE
        if ahead > MAX_ADVANCE_US:
            return TOO_EARLY
        end = ticks_add(start, airtime_us)
        free = -1
        for i in range(len(self.used)):
            if not self.used[i]:
                if free < 0:
                    free = i
                continue
            if ticks_diff(start, self.end[i]) < GUARD_US and ticks_diff(self.start[i], end) < GUARD_US:
                return COLLISION_PACKET
        if free < 0:
            return COLLISION_PACKET
        self.start[free], self.end[free], self.item[free], self.used[free] = start, end, item, 1
        if band >= 0:
            self.air[6 * band + self.slot[band] % 6] += (airtime_us + 999) // 1000
        return NONE

    def next(self):
        """Index of the queued downlink that starts first, or -1."""
        best = -1
        for i in range(len(self.used)):
            if self.used[i] and (best < 0 or ticks_diff(self.start[i], self.start[best]) < 0):
                best = i
        return best

    def take(self, i):
        """Remove entry i and return its item."""
        item = self.item[i]
        self.used[i] = 0
        self.item[i] = None
        return item

    def __len__(self):
        return sum(1 for u in self.used if u)
