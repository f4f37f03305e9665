# make bench: the hotspot's forwarding path under the 112K heap. Heap allocated per forwarded
# packet (received and stamped, queued, written as rxpk into a PUSH_DATA, sent on a UDP socket,
# PUSH_ACK read), the free heap over 10,000 forwarded packets, the firmware's time per packet, and
# the TX start error of downlinks through the JIT queue and the SX127x driver against the chip
# model (time of the TX command vs the deadline). Prints JSON lines; run by bench/hotspot.py.
import asyncio
import gc
import json
import socket
import sys
import time

from spot.clock import Clock
from spot.hotspot import semtech
from spot.hotspot.core import Hotspot
from spot.radio.base import Packet

PROFILE = {"chip": "sx1276", "band_mhz": [862, 1020], "max_power_dbm": 20, "pa_boost": True}


class Console:
    def __init__(self):
        self.n = 0

    def event(self, kind, data):
        self.n += 1


class Radio:  # the forwarding path does not touch the radio
    BW = {125000: 7}
    MIN_SF = 7
    MIN_POWER = -4
    CHIP = 0
    max_power = 20


def server_socket(first):
    """The network server's side: a UDP socket on a free port (the unix port has no getsockname())."""
    server = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    for port in range(first, first + 90):
        try:
            server.bind(socket.getaddrinfo("127.0.0.1", port)[0][-1])
            return server, port
        except OSError:
            continue
    raise SystemExit("no free UDP port")


def packet(i):
    p = Packet()
    for k in range(23):
        p.buf[k] = (i + k) & 0xFF
    p.length = 23
    p.rssi, p.snr_x4, p.freq, p.sf, p.bw, p.cr = -90, 27, 868100000, 7, 125000, 5
    return p


def forwarding(n=10000, events=False):
    from spot.hotspot.udp import SemtechUdp

    clock = Clock()
    hs = Hotspot(Radio(), clock, Console(), 868100000, 7, (863000000, 870000000), queue_size=16, packet_events=events)
    hs.utc.sync()
    server, port = server_socket(47810)
    server.setblocking(False)
    link = SemtechUdp(hs, b"\x01\x02\x03\xff\xfe\x04\x05\x06", [("127.0.0.1", port)])
    link.resolve()
    ack = bytearray(4)
    p = packet(0)
    free = []
    total = 0
    start = time.ticks_us()
    for i in range(n):
        gc.collect()
        a = gc.mem_alloc()
        hs.received(p)
        token = link._next_token()
        covered, written = link.build(token)
        link.push_token = token
        link._push(link.w.buf, link.w.n)
        total += gc.mem_alloc() - a
        data, frm = server.recvfrom(2048)  # the server side (not counted)
        semtech.header(ack, token, semtech.PUSH_ACK)
        server.sendto(ack, frm)
        while True:  # the PUSH_ACK reaches the up socket
            try:
                got = link.up_sock.recv(16)
                break
            except OSError:
                pass
        gc.collect()
        a = gc.mem_alloc()
        link.handle_up(got, len(got))
        hs.backlog.pop(covered)
        hs.forwarded(written)
        total += gc.mem_alloc() - a
        del data, frm, got
        if i % 1000 == 0 or i == n - 1:
            gc.collect()
            free.append(gc.mem_free())
    us = time.ticks_diff(time.ticks_us(), start)
    server.close()
    print(json.dumps({"what": "forward", "packets": n, "events": events, "bytes_per_packet": total / n,
                      "free_heap": free, "forwarded": hs.stats["forwarded"], "acked": hs.stats["up_acked"],
                      "us_per_packet_incl_gc": us / n}))


def rate(n=2000):
    """Packets per second the forwarding path handles on this machine's unix port (no collections
    forced, no server delay: the firmware's own cost)."""
    from spot.hotspot.udp import SemtechUdp

    clock = Clock()
    hs = Hotspot(Radio(), clock, Console(), 868100000, 7, (863000000, 870000000), queue_size=16, packet_events=True)
    hs.utc.sync()
    server, port = server_socket(47910)
    link = SemtechUdp(hs, b"\x01\x02\x03\xff\xfe\x04\x05\x06", [("127.0.0.1", port)])
    link.resolve()
    p = packet(1)
    start = time.ticks_us()
    for _ in range(n):
        hs.received(p)
        covered, written = link.build(link._next_token())
        link._push(link.w.buf, link.w.n)
        hs.backlog.pop(covered)
        server.recvfrom(2048)
    us = time.ticks_diff(time.ticks_us(), start)
    server.close()
    print(json.dumps({"what": "rate", "packets": n, "us_per_packet": us / n, "packets_per_s": n * 1e6 / us}))


def tx_error(n=200):
    from fakehw import FakeSPI
    from spot.radio.sx127x import SX127x
    from sx1276_model import SX1276Model

    m = SX1276Model()
    clock = Clock()
    r = SX127x(FakeSPI(m), m.pins(), clock, PROFILE)
    hs = Hotspot(r, clock, Console(), 868100000, 7, (863000000, 870000000), queue_size=4, packet_events=False)
    hs.listen()

    errs = []

    async def go():
        task = asyncio.create_task(hs.tx_loop())
        for i in range(n):
            hs.tmst.advance()
            now = hs.tmst.hi * 65536 + hs.tmst.lo
            t = semtech.Txpk()
            t.freq, t.sf, t.tmst, t.data = 868100000, 7, (now + 100000) & 0xFFFFFFFF, bytes(12)
            err = hs.schedule(t)
            if err != semtech.NONE:
                raise SystemExit("refused: " + err)
            while hs.stats["tx"] + hs.stats["tx_fail"] <= i:
                await asyncio.sleep_ms(5)
            errs.append(hs.tx_errors[(hs.tx_error_n - 1) % len(hs.tx_errors)])
            m.tx_frames.clear()
        task.cancel()

    asyncio.run(go())
    asyncio.new_event_loop()
    errs.sort()
    print(json.dumps({"what": "tx_error", "downlinks": n, "kept": len(errs), "median_us": errs[len(errs) // 2],
                      "p99_us": errs[min(len(errs) - 1, len(errs) * 99 // 100)], "max_us": errs[-1],
                      "min_us": errs[0], "failed": hs.stats["tx_fail"], "late": r.stats["tx_late"]}))


# one measurement per process (the bytecode of both would not fit the heap beside each other here)
what = sys.argv[-1]
if what == "forward":
    forwarding(10000, False)
elif what == "forward-events":
    forwarding(1000, True)
elif what == "rate":
    rate()
else:
    tx_error()
