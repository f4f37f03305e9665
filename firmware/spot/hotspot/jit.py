# Just-in-time downlink queue: each accepted downlink has a start and an end in clock ticks; a new
# one is refused TOO_LATE when the radio cannot be programmed before its start, TOO_EARLY when it
# is further ahead than the queue plans, COLLISION_PACKET when it overlaps a queued one (guard
# time included) or the queue is full (as Semtech's packet forwarder reports a full queue).
from micropython import const

from spot.clock import ticks_add, ticks_diff
from spot.hotspot.semtech import COLLISION_PACKET, NONE, TOO_EARLY, TOO_LATE

LEAD_US = const(30000)  # time to take a downlink off the queue and program the radio
GUARD_US = const(1000)  # kept free between two transmissions
MAX_ADVANCE_US = const(30000000)  # class A RX2 is at most 16 s after the uplink
SIZE = const(8)


class JitQueue:
    def __init__(self, size=SIZE):
        self.start = [0] * size
        self.end = [0] * size
        self.item = [None] * size
        self.used = [False] * size

    def add(self, now, start, airtime_us, item):
        """Queue `item` to start at clock ticks `start` (now: the clock ticks when asked);
        returns NONE or the TX_ACK error, and queues nothing on an error."""
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
        self.start[free], self.end[free], self.item[free], self.used[free] = start, end, item, True
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
        self.used[i] = False
        self.item[i] = None
        return item

    def __len__(self):
        return sum(1 for u in self.used if u)

