# The hotspot's core under the board heap: the store-and-forward backlog (order, count and age
# bounds, Join-Requests past their windows, every drop counted, nothing allocated per packet), UTC
# from the clock, downlink checks against the band and the board (TX_FREQ, TX_POWER, timing), and
# CRC-failed packets counted and forwarded with stat -1 only when asked.
from fwtest import eq
from hotspot_fakes import FakeConsole, FakeRadio, Src, _hotspot, _packet, _txpk
from spot.clock import MASK, Clock
from spot.hotspot import semtech
from spot.hotspot.backlog import SEC, STAT, THI, TLO, US, Backlog
from spot.hotspot.core import Utc


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



def test_pull_resps_are_read_when_the_heap_has_no_free_1kb_block():
    # A hotspot that has run for a while has a cut-up heap: PULL_RESPs (and the PULL_ACKs on the
    # same socket) must still be read and answered with a TX_ACK, every one of them. The block
    # kept for them is taken again once the downlink it carried has gone out (the clock loop's
    # step, every second).
    import asyncio
    import gc
    import socket

    from spot.hotspot.udp import SemtechUdp

    src, hs = _hotspot()
    src.t = 1000000
    hs.tmst.advance()
    server = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    for port in range(47710, 47800):
        try:
            server.bind(socket.getaddrinfo("127.0.0.1", port)[0][-1])
            break
        except OSError:
            continue
    link = SemtechUdp(hs, b"\x01\x02\x03\xff\xfe\x04\x05\x06", [("127.0.0.1", port)])
    link.resolve()
    link.pull()
    _, gateway = server.recvfrom(64)  # the PULL_DATA: where PULL_RESPs go
    server.setblocking(False)
    body = b'{"txpk":{"imme":true,"freq":868.1,"powe":14,"modu":"LORA","datr":"SF7BW125","codr":"4/5",' \
           b'"ipol":true,"size":12,"data":"YAAAAAAAAAAAAAAA"}}'
    pull_resps = [bytes([2, 0, k, semtech.PULL_RESP]) + body for k in range(1, 6)]
    hs.console.reserve = bytearray(4096)  # the console's own reserve, taken at its start
    # the heap filled with 400-byte blocks, every other one freed again: plenty free, no 1 KB block
    keep = [None] * 400
    n = 0
    try:
        while n < len(keep):
            keep[n] = bytearray(400)
            n += 1
    except MemoryError:
        pass
    for i in range(0, n, 2):
        keep[i] = None
    gc.collect()
    acks = []
    clutter = []

    async def exchange():
        task = asyncio.create_task(link.reader())
        for dgram in pull_resps[:3]:  # one at a time, each sent before the next arrives
            server.sendto(dgram, gateway)
            for _ in range(500):  # the TX_ACK, however long the reader takes
                await asyncio.sleep_ms(2)
                try:
                    acks.append(server.recv(64))
                    break
                except OSError:
                    continue
            sent = hs.jit.take(hs.jit.next())  # transmitted, as the TX loop does
            eq(sent.freq, 868100000)
            sent = None
            link.hold()  # the clock loop's step
            gc.collect()
            for _ in range(4):  # what the rest of the firmware keeps until the next downlink
                clutter.append(bytearray(48))
        # two at once: the second finds the kept block taken by the first (its downlink still
        # queued), and has the console's reserve
        for dgram in pull_resps[3:]:
            server.sendto(dgram, gateway)
        for _ in range(500):
            await asyncio.sleep_ms(2)
            try:
                acks.append(server.recv(64))
            except OSError:
                continue
            if len(acks) == 5:
                break
        task.cancel()

    asyncio.run(exchange())
    keep = clutter = None
    server.close()
    eq([(a[2], a[3]) for a in acks], [(k, semtech.TX_ACK) for k in range(1, 6)])
    # each recv that found no block is counted (it may have cost a datagram: spot.hotspot.udp._recv);
    # here both were read on the retry, from the kept block and from the console's reserve
    eq((hs.stats["down"], hs.stats["nomem"], hs.console.reserve), (5, 2, None))


def test_received_keeps_the_last_frames_for_the_status_page_without_allocating():
    # the ring of recent frames (hooked on received() by the status page only) adds no allocation
    # to the forwarding path; the page decodes DevAddr (sent little-endian), RSSI, SNR and message
    # type from it
    import gc

    from spot.clock import Clock
    from spot.hotspot import status
    from spot.hotspot.core import Hotspot

    def hotspot():
        return Hotspot(FakeRadio(), Clock(), FakeConsole(), 868100000, 7, (863000000, 870000000), queue_size=4,
                       packet_events=False)

    hs = hotspot()
    status.watch(hs)
    frames = [_packet(bytes([0x40, i, 0x02, 0x03, 0x26, 0, i, 0]) + bytes(8), rssi=-60 - i, snr_x4=4 * i)
              for i in range(6)]
    join = _packet(b"\x00" + bytes(22), rssi=-99, snr_x4=-30)
    for p in frames:
        hs.received(p)
    hs.received(join)
    many = frames * 8

    def alloc(h):
        for p in many[:4]:  # warm: the queue full, as it stays on a saturated channel
            h.received(p)
        gc.collect()
        before = gc.mem_alloc()
        for p in many:
            h.received(p)
        return gc.mem_alloc() - before

    plain, hooked = hotspot(), hotspot()
    status.watch(hooked)
    eq(alloc(hooked), alloc(plain))
    eq(hooked.recent_n, len(many) + 4)
    got = status.recent_frames(hs)
    eq(len(got), status.RECENT)
    eq(got[0], {"dev_addr": None, "rssi": -99, "snr": -7.5, "type": "join_request"})
    eq(got[1], {"dev_addr": "26030205", "rssi": -65, "snr": 5.0, "type": "unconfirmed_up"})
    eq([f["rssi"] for f in got[1:]], [-65, -64, -63])
