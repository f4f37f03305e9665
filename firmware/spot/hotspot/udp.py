# Semtech UDP backhaul (packet forwarder protocol v2): PUSH_DATA batches of rxpk taken from the
# backlog in order and removed only once PUSH_ACK with their token came back (store-and-forward);
# PULL_DATA keepalives that open the downlink path; PULL_RESP accepted from the server's address
# only, answered with TX_ACK; stat every gw_stat_interval. Primary and fallback server: after
# DOWN_AFTER unanswered datagrams the backhaul is down and the other server is tried.
#
# Waiting for an acknowledgement is network time (real milliseconds, ACK_TIMEOUT_MS); retry
# intervals and timers are device time (the clock, faster on a sped-up virtual board).
import asyncio
import gc
import os
import socket
import time

from micropython import const

from spot.aio import readable
from spot.clock import ticks_diff
from spot.hotspot import semtech
from spot.hotspot.backlog import SEC, STAT, THI, TLO, US

ACK_TIMEOUT_MS = const(500)
DOWN_AFTER = const(3)
MAX_BACKOFF_MS = const(8000)
_MAX_BATCH = const(8)



class SemtechUdp:
    def __init__(self, hs, eui, servers, keepalive_s=10, stat_s=30):
        self.hs = hs
        self.clock = hs.clock
        self.console = hs.console
        self.eui = eui
        self.servers = servers  # [(host, port), ...]: primary first
        self.current = 0
        self.addr = None
        self.keepalive_ms = keepalive_s * 1000
        self.stat_ms = stat_s * 1000
        self.w = semtech.Writer()
        self.small = bytearray(64)  # PULL_DATA and TX_ACK
        self.token = int.from_bytes(os.urandom(2), "big")
        self.push_token = -1
        self.ack_flag = asyncio.ThreadSafeFlag()  # set when the PUSH_ACK of the pending push arrives
        self.pull_token = -1
        self.stat_token = -1
        self.last_pull = None  # type: int | None  # when the last PULL_DATA / stat went out
        self.last_stat = None  # type: int | None
        self.early_pull = False  # a PULL_DATA went out before its keepalive (handle_up), once per keepalive
        self.misses = 0
        # Two sockets, as Semtech's forwarder has, both connected to the server (so datagrams from
        # any other address, a PULL_RESP included, are dropped by the network stack): "up" for
        # PUSH_DATA and its PUSH_ACKs, "down" for PULL_DATA / PULL_RESP / TX_ACK. A datagram is read
        # into a block of its own (recv: readinto would join datagrams queued together), so a 1 KB
        # block is kept for the heap that has none left (_recv()).
        self.reserve = bytearray(1100)
        self.up_sock = None
        self.sock = None

    # ---- addresses and state ----------------------------------------------------------------------
    def resolve(self):
        host, port = self.servers[self.current]
        try:
            self.addr = socket.getaddrinfo(host, port, 0, socket.SOCK_DGRAM)[0][-1]
        except OSError as e:
            self.addr = None
            self.console.event("log", {"level": "error", "msg": "cannot resolve %s: %s" % (host, e)})
            return
        if self.up_sock is None:
            self.up_sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            self.up_sock.setblocking(False)
            self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            self.sock.setblocking(False)
        try:
            self.up_sock.connect(self.addr)
            self.sock.connect(self.addr)
        except OSError as e:
            self.console.event("log", {"level": "error", "msg": "cannot reach %s: %s" % (host, e)})

    def _next_token(self):
        self.token = (self.token + 1) & 0xFFFF
        return self.token

    def _send(self, buf, n):
        if self.sock is None or self.addr is None:
            return False
        try:
            self.sock.send(memoryview(buf)[:n])
            return True
        except OSError:
            return False

    def _send_up(self, buf, n):
        if self.up_sock is None or self.addr is None:
            return False
        try:
            self.up_sock.send(memoryview(buf)[:n])
            return True
        except OSError:  # e.g. ECONNREFUSED reported for an earlier datagram: the server is away
            return False

    def _answered(self):
        self.misses = 0
        self.hs.link(True, "udp", self.servers[self.current])  # nothing allocated unless the state changes

    def _missed(self):
        self.misses += 1
        if self.misses < DOWN_AFTER:
            return
        self.misses = 0
        self.hs.link(False, "udp", self.servers[self.current])
        if len(self.servers) > 1:
            self.current = (self.current + 1) % len(self.servers)
            self.resolve()

    # ---- receive ----------------------------------------------------------------------------------
    async def up_reader(self):
        while True:
            sock = self.up_sock
            if sock is None:
                await self.clock.sleep_ms(100)
                continue
            try:  # as Hotspot.rx_loop: a MemoryError, waiting included, is counted and the loop goes on
                await readable(sock)  # pyright: ignore[reportGeneralTypeIssues]  (MicroPython awaits generators)
                data = sock.recv(16)  # a PUSH_ACK is 4 bytes; anything longer is not one
            except OSError:
                continue
            except MemoryError:
                self.hs.out_of_memory()
                await asyncio.sleep_ms(5)
                continue
            self.handle_up(data, len(data))

    def handle_up(self, buf, n):
        """PUSH_ACKs on the up socket (anything else there is counted as bad)."""
        try:
            ident, token, _ = semtech.parse(buf, n)
        except semtech.ProtocolError:
            self.hs.bad_datagram()
            return
        if ident != semtech.PUSH_ACK:
            self.hs.bad_datagram()
        elif token == self.push_token:
            self.ack_flag.set()
            self._acked()
            if self.pull_token >= 0 and not self.early_pull:
                # the server answers, but not the last PULL_DATA (it was away, or started after
                # this hotspot): open the downlink path now, not at the next keepalive, so the
                # answer to this very uplink (a Join-Accept 5 s on) has a way back
                self.early_pull = True
                self.pull_token = -1  # superseded, not missed
                self.last_pull = self.clock.ticks_ms()
                self.pull()
        elif token == self.stat_token:
            self.stat_token = -1
            self._acked()

    async def reader(self):
        while True:
            if self.sock is None:
                await self.clock.sleep_ms(100)
                continue
            try:  # as Hotspot.rx_loop: a MemoryError, waiting included, is counted and the loop goes on
                await readable(self.sock)  # pyright: ignore[reportGeneralTypeIssues]  (MicroPython awaits generators)
                data = self._recv()
                if data is None:
                    continue
                self.handle(data, len(data))
            except MemoryError:
                self.hs.out_of_memory()
                await asyncio.sleep_ms(5)
            data = None
            self.hold()

    def _recv(self):
        """The next datagram, or None. Its 1 KB block comes from the heap; where a cut-up heap has
        none, from the block kept for it, then from the console's reserve (taken again later: a
        downlink has a second to go out). recv may take the datagram before it makes the bytes
        object it returns (the unix port copies it into a second block; the ESP32's needs a small
        one), so each MemoryError of recv is counted (nomem): one may have cost a datagram, which
        the next try cannot tell from the one queued behind it. When every try fails the datagram
        is dropped."""
        for step in range(3):
            try:
                return self.sock.recv(1024)  # a PULL_RESP is at most ~700 bytes
            except OSError:
                return None
            except MemoryError:
                self.hs.out_of_memory()  # collects the heap
                if step == 0 and self.reserve is not None:
                    self.reserve = None
                    gc.collect()
                elif not self.console._release():
                    break
        try:
            self.sock.readinto(self.small)  # drop it
        except OSError:
            pass
        return None

    def hold(self):
        """Take the block kept for datagrams again once the heap has one (after each datagram, and
        on the clock loop's step)."""
        if self.reserve is None:
            gc.collect()
            try:
                self.reserve = bytearray(1100)
            except MemoryError:
                pass

    def handle(self, data, n):
        hs = self.hs
        try:
            ident, token, body = semtech.parse(data, n)
        except semtech.ProtocolError:
            hs.bad_datagram()
            return
        if ident == semtech.PUSH_ACK:
            hs.bad_datagram()  # PUSH_ACKs come on the up socket
            return
        if ident == semtech.PULL_ACK:
            if token == self.pull_token:
                self.pull_token = -1
                self._answered()
            return
        # PULL_RESP (the socket is connected: only the server's reach it)
        try:
            t = semtech.parse_txpk(body)
        except semtech.ProtocolError as e:
            hs.downlink_in(False)
            self.console.event("log", {"level": "warn", "msg": "PULL_RESP dropped: %s" % e})
            return
        hs.downlink_in()
        err = hs.schedule(t)
        n = semtech.tx_ack(self.small, token, self.eui, err)
        self._send(self.small, n)

    def _acked(self):
        self.hs.sent(acked=True)
        self._answered()

    # ---- send -------------------------------------------------------------------------------------
    def _push(self, buf, n):
        self.hs.sent()
        return self._send_up(buf, n)

    def build(self, token):
        """A PUSH_DATA of the oldest usable backlog entries in self.w; (entries covered, rxpk
        written). Entries too old to forward are counted as dropped and skipped."""
        hs, b, w = self.hs, self.hs.backlog, self.w
        semtech.push_start(w, token, self.eui)
        now = self.clock.ticks_ms()
        covered = written = 0
        while covered < len(b) and written < _MAX_BATCH:
            i = b.index(covered)
            if not b.usable(i, now, hs.max_age_ms):
                covered += 1
                continue
            mark = w.n
            if written:
                w.byte(0x2C)
            sec = b.field(i, SEC)
            try:
                semtech.rxpk(w, b.packet(i), b.field(i, THI), b.field(i, TLO), b.field(i, STAT),
                             time.gmtime(sec) if sec >= 0 else None, 0, b.field(i, US))
                w.raw(b"]}")
                w.n -= 2  # room for the closing brackets is kept
            except semtech.ProtocolError:
                w.n = mark
                break
            covered += 1
            written += 1
        semtech.push_end(w)
        return covered, written

    async def pusher(self):
        while True:
            try:
                await self._pusher()
            except MemoryError:  # as Hotspot.rx_loop: counted, the queue kept, go on after a pause
                self.hs.out_of_memory()
                await asyncio.sleep_ms(self.clock.host_ms(100))

    async def _pusher(self):
        hs = self.hs
        backoff = 1000
        while True:
            if not len(hs.backlog):
                await hs.up_flag.wait()
                continue
            token = self._next_token()
            covered, written = self.build(token)
            if not written:
                hs.backlog.pop(covered)
                continue
            self.push_token = token
            self.ack_flag.clear()
            self._push(self.w.buf, self.w.n)
            acked = True
            try:  # the up socket's reader sets the flag: no polling while the server answers
                await asyncio.wait_for_ms(self.ack_flag.wait(), ACK_TIMEOUT_MS)
            except asyncio.TimeoutError:
                acked = False
            self.push_token = -1
            if acked:
                hs.backlog.pop(covered)
                hs.forwarded(written)
                backoff = 1000
                continue
            self._missed()
            await self.clock.sleep_ms(backoff)
            backoff = min(MAX_BACKOFF_MS, backoff * 2)

    def pull(self):
        if self.pull_token >= 0:
            self._missed()  # the last PULL_DATA had no PULL_ACK
        token = self._next_token()
        self.pull_token = token
        n = semtech.header(self.small, token, semtech.PULL_DATA, self.eui)
        self._send(self.small, n)

    def stat(self):
        hs = self.hs
        if self.stat_token >= 0:
            self._missed()
        hs.utc.rebase()
        utc = time.gmtime(hs.utc.sec) if hs.utc.valid else None
        token = self._next_token()
        self.stat_token = token
        counters = hs.take_interval()
        data = semtech.stat_datagram(token, self.eui, counters, utc, hs.position)
        self._push(data, len(data))
        self.console.event("gwstat", counters)

    def step(self, now):
        """Called by the hotspot's clock loop about once a second (device time): PULL_DATA every
        keepalive, stat every stat interval (the first of each at once)."""
        try:
            self.hold()
            if self.addr is None:
                self.resolve()
            if self.last_pull is None or ticks_diff(now, self.last_pull) >= self.keepalive_ms:
                self.last_pull = now
                self.early_pull = False
                self.pull()
            if self.last_stat is None or ticks_diff(now, self.last_stat) >= self.stat_ms:
                self.last_stat = now
                self.stat()
        except MemoryError:
            self.hs.out_of_memory()

    def tasks(self):
        self.resolve()
        return (self.up_reader(), self.reader(), self.pusher())
