# Just-in-time downlink queue: TOO_LATE / TOO_EARLY / COLLISION_PACKET by the rules, adjacent
# downlinks with the guard time accepted, a full queue refused, order of departure, ticks wrap.
from fwtest import eq
from spot.clock import MASK
from spot.hotspot import jit
from spot.hotspot.semtech import COLLISION_PACKET, NONE, TOO_EARLY, TOO_LATE


def test_rules():
    now = MASK - 100000  # the 2^30 tick wrap falls inside the planned window
    q = jit.JitQueue(size=3)
    eq(q.add(now, now + jit.LEAD_US - 1, 50000, "a"), TOO_LATE)
    eq(q.add(now, now - 5, 50000, "a"), TOO_LATE)
    eq(q.add(now, now + jit.MAX_ADVANCE_US + 1, 50000, "a"), TOO_EARLY)
    eq(len(q), 0)
    rx1 = (now + 1000000) & MASK
    eq(q.add(now, rx1, 50000, "rx1"), NONE)
    eq(q.add(now, (rx1 + 49000) & MASK, 10000, "x"), COLLISION_PACKET)  # overlaps the end
    eq(q.add(now, (rx1 - 10000) & MASK, 10500, "x"), COLLISION_PACKET)  # ends inside the guard
    eq(q.add(now, (rx1 + 50000 + jit.GUARD_US) & MASK, 1000, "after"), NONE)  # adjacent, guard kept
    eq(q.add(now, (rx1 - 12000) & MASK, 11000, "before"), NONE)
    eq(q.add(now, (rx1 + 2000000) & MASK, 1000, "full"), COLLISION_PACKET)
    order = []
    while len(q):
        order.append(q.take(q.next()))
    eq(order, ["before", "rx1", "after"])
    eq(q.next(), -1)
