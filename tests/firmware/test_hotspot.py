# The hotspot's core under the board heap: the store-and-forward backlog (order, count and age
# bounds, Join-Requests past their windows, every drop counted, nothing allocated per packet), UTC
# from the clock, downlink checks against the band and the board (TX_FREQ, TX_POWER, timing), and
# CRC-failed packets counted and forwarded with stat -1 only when asked.
from fwtest import eq
from spot.clock import MASK, Clock
from spot.hotspot import semtech
from spot.hotspot.backlog import SEC, STAT, THI, TLO, US, Backlog
from spot.hotspot.core import Hotspot, Utc
from spot.radio.base import Packet


class Src:
    def __init__(self):
        self.t = 0

    def __call__(self):
        return self.t & MASK


def _packet(data, rssi=-80, snr_x4=22):
    p = Packet()
    p.buf[: len(data)] = data
    p.length = len(data)
    p.rssi, p.snr_x4, p.freq, p.sf, p.bw, p.cr = rssi, snr_x4, 868100000, 7, 125000, 5
    return p


def test_backlog_order_bounds_and_counted_drops():
    b = Backlog(3)
    for i in range(5):
        b.push(_packet(bytes([0x40, i])), 1, i, 1, 1000 + i, 7, 100 * i)
    eq(len(b), 3)
    eq(b.dropped["full"], 2)  # the two oldest made room
    eq([b.packet(b.index(k)).buf[1] for k in range(3)], [2, 3, 4])
    i = b.index(0)
    eq((b.field(i, THI), b.field(i, TLO), b.field(i, STAT), b.field(i, SEC), b.field(i, US)), (1, 2, 1, 1002, 7))
    eq(b.usable(b.index(0), 400, 10000), True)
    eq(b.usable(b.index(0), 200 + 10001, 10000), False)  # too old: counted once, skipped after
    eq(b.usable(b.index(0), 200 + 10001, 10000), False)
    eq(b.dropped["age"], 1)
    b.pop(1)
    eq(len(b), 2)
    # a Join-Request waits at most until its second receive window
    j = Backlog(2)
    j.push(_packet(b"\x00" + bytes(22)), 0, 0, 1, -1, 0, 0)
    j.push(_packet(b"\x40" + bytes(11)), 0, 0, 1, -1, 0, 0)
    eq(j.usable(j.index(0), 5000, 3600000), True)
    eq(j.usable(j.index(0), 6000, 3600000), False)
    eq(j.usable(j.index(1), 6000, 3600000), True)  # a data uplink of the same age still goes
    eq(j.dropped, {"full": 0, "age": 0, "join": 1})


def test_backlog_push_allocates_nothing():
    import gc

    b = Backlog(4)
    p = _packet(bytes(200))
    b.push(p, 1, 2, 1, 3, 4, 5)
    gc.collect()
    before = gc.mem_alloc()
    for i in range(50):
        b.push(p, 1, 2, 1, 3, 4, i)
    eq(gc.mem_alloc() - before, 0)


def test_utc_unknown_until_set_then_carried_by_the_clock():
    src = Src()
    clock = Clock(us_source=src, ms_source=lambda: 0, start_us=MASK - 1000)
    u = Utc(clock)
    eq(u.seconds_at(clock.ticks_us()), (-1, 0))
    eq(u.sync(946684800 * 1000000000), False)  # 2000-01-01: an ESP32 that never had NTP
    eq(u.valid, False)
    eq(u.sync(1795000000 * 1000000000 + 999000000), True)
    t0 = clock.ticks_us()
    src.t += 2500  # across the 2^30 tick wrap
    eq(u.seconds_at(clock.ticks_us()), (1795000001, 1500))
    src.t += 3000000
    u.rebase()
    eq((u.sec, u.us), (1795000004, 1500))
    eq(u.seconds_at(t0), (1795000000, 999000))


class FakeRadio:
    BW = {125000: 7, 250000: 8, 500000: 9}
    MIN_SF = 7
    MIN_POWER = -4
    CHIP = 0
    max_power = 20
    band = (862000000, 1020000000)


class FakeConsole:
    def __init__(self):
        self.events = []

    def event(self, kind, data):
        self.events.append((kind, data))


def _hotspot():
    src = Src()
    clock = Clock(us_source=src, ms_source=lambda: src.t // 1000)
    return src, Hotspot(FakeRadio(), clock, FakeConsole(), 868100000, 7, (863000000, 870000000), queue_size=4)


def _txpk(**kw):
    t = semtech.Txpk()
    t.freq, t.data = 868100000, b"\x60" + bytes(11)
    for k, v in kw.items():
        setattr(t, k, v)
    return t


def test_downlink_checks_and_timing():
    src, hs = _hotspot()
    src.t = 1000000
    hs.tmst.advance()
    now = hs.tmst.hi * 65536 + hs.tmst.lo
    eq(hs.schedule(_txpk(tmst=now + 1000000, freq=915000000)), semtech.TX_FREQ)
    eq(hs.schedule(_txpk(tmst=now + 1000000, power=21)), semtech.TX_POWER)
    eq(hs.schedule(_txpk(tmst=now + 1000000, sf=6)), semtech.TX_FREQ)
    eq(hs.schedule(_txpk(tmst=now + 10000)), semtech.TOO_LATE)
    eq(hs.schedule(_txpk(tmst=now - 5000000)), semtech.TOO_LATE)
    eq(hs.schedule(_txpk(tmst=(now + 31000000) & 0xFFFFFFFF)), semtech.TOO_EARLY)
    eq(hs.schedule(_txpk(tmst=now + 1000000)), semtech.NONE)
    eq(hs.schedule(_txpk(tmst=now + 1000500)), semtech.COLLISION_PACKET)
    eq(hs.schedule(_txpk(imme=True)), semtech.NONE)
    eq(len(hs.jit), 2)
    eq(hs.stats["tx_refused"], 7)
    eq([d["result"] for k, d in hs.console.events if k == "downlink"][-1], semtech.NONE)


def test_interval_counters_and_ackr():
    _, hs = _hotspot()
    hs.interval.update({"rxnb": 3, "rxok": 2, "up_sent": 3, "up_acked": 2})
    eq(hs.take_interval(), {"rxnb": 3, "rxok": 2, "rxfw": 0, "dwnb": 0, "txnb": 0, "ackr": 66.7})
    eq(hs.take_interval()["ackr"], 0.0)



def test_crc_failed_packets_counted_and_forwarded_only_when_asked():
    for forward in (False, True):
        _, hs = _hotspot()
        hs.forward_crc = forward
        hs.received(_packet(b"\x40good"))
        bad = _packet(b"\x40bad!")
        bad.crc_ok = False
        hs.received(bad)
        stats = [hs.backlog.field(hs.backlog.index(k), STAT) for k in range(len(hs.backlog))]
        eq((stats, hs.stats["rx"], hs.stats["rx_crc"], hs.interval["rxnb"], hs.interval["rxok"]),
           ([1, -1] if forward else [1], 2, 1, 2, 1))

