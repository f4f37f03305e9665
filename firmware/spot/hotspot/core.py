# The hotspot's radio side, shared by both backhauls (Semtech UDP, MQTT): continuous receive on
# the one channel, each packet stamped with the 32-bit tmst of its RX-done and queued for the
# backhaul (spot.hotspot.backlog); downlinks checked against the region and the board, put in the
# just-in-time queue and transmitted at their time with the radio back in receive right after.
import asyncio
import gc
import time
from array import array

from micropython import const

from spot.clock import ticks_add, ticks_diff, wall_ns
from spot.hotspot import jit
from spot.hotspot.backlog import Backlog
from spot.hotspot.semtech import GPS_ONLY, GPS_UNLOCKED, NONE, TOO_EARLY, TOO_LATE, TX_FREQ, TX_POWER
from spot.hotspot.tmst import FAR, Tmst, split
from spot.radio import RadioError, airtime

try:
    from typing import Any  # noqa: F401 (for the type checker only)
except ImportError:
    pass

PREP_US = const(20000)  # a queued downlink leaves the queue this long before its start
_IMME_US = const(40000)  # an "immediate" downlink starts this long after it was accepted
TX_ERRORS = const(64)  # TX start errors kept for the figures (µs after the deadline)
_STAT_KEYS = ("rxnb", "rxok", "rxfw", "dwnb", "txnb")


class Utc:
    """UTC of clock ticks: a base (seconds in the port's epoch, µs) at clock ticks, carried
    forward by the clock; unknown (None) until a valid time was set (NTP on a board)."""

    def __init__(self, clock):
        self.clock = clock
        self.valid = False
        self.sec = 0
        self.us = 0
        self.ticks = 0

    def sync(self, ns=None):
        """Take the system time as UTC (after NTP); refused (False) when the clock has clearly
        never been set (before 2025)."""
        if ns is None:
            ns = wall_ns()
        sec = ns // 1000000000
        if time.gmtime(sec)[0] < 2025:
            return False
        self.ticks = self.clock.ticks_us()
        self.sec = sec
        self.us = (ns // 1000) % 1000000
        self.valid = True
        return True

    def rebase(self):
        """Carry the base to now; at least every 9 minutes (tick differences stay in range)."""
        if not self.valid:
            return
        now = self.clock.ticks_us()
        us = self.us + ticks_diff(now, self.ticks)
        self.sec += us // 1000000
        self.us = us % 1000000
        self.ticks = now

    def seconds_at(self, ticks):
        """(seconds, µs) at clock ticks; (-1, 0) when unknown."""
        if not self.valid:
            return -1, 0
        us = self.us + ticks_diff(ticks, self.ticks)
        return self.sec + us // 1000000, us % 1000000


class Hotspot:
    def __init__(self, radio, clock, console, freq, sf, band, *, queue_size=32, max_age_s=3600, forward_crc=False,
                 packet_events=True, limits=None):
        self.radio = radio
        self.clock = clock
        self.console = console
        self.freq = freq
        self.sf = sf
        self.band = band  # (low, high) Hz where downlinks may go: the region's and the radio's
        self.max_age_ms = max_age_s * 1000
        self.forward_crc = forward_crc
        self.packet_events = packet_events
        self.tmst = Tmst(clock)
        self.utc = Utc(clock)
        self.backlog = Backlog(queue_size)
        self.jit = jit.JitQueue(limits=limits)  # with the region's duty cycle, dwell time and EIRP
        # wakes the backhaul's sender: a packet was queued (the backhaul sets it too for news of its own)
        self.up_flag = asyncio.ThreadSafeFlag()
        self.tx_flag = asyncio.ThreadSafeFlag()  # set when a downlink was queued
        self.position = None  # type: tuple | None  # (lat, lon, alt) for the stat object
        # cumulative counters (console stats) and the ones of the current stat interval
        self.stats = {"rx": 0, "rx_crc": 0, "forwarded": 0, "down": 0, "down_bad": 0,
                      "tx": 0, "tx_fail": 0, "tx_refused": 0, "bad_datagrams": 0, "nomem": 0, "up_sent": 0,
                      "up_acked": 0}
        self.interval = {"rxnb": 0, "rxok": 0, "rxfw": 0, "dwnb": 0, "txnb": 0, "up_sent": 0, "up_acked": 0}
        self.tx_errors = array("i", bytes(4 * TX_ERRORS))  # µs; an array: 4 bytes each, no list
        self.tx_error_n = 0
        self.last_rssi = 0
        self.last_snr_x4 = 0
        self.backhaul = "down"

    # ---- receive ----------------------------------------------------------------------------------
    def listen(self):
        """The receive channel, continuous receive: uplinks are upright IQ with CRC."""
        r = self.radio
        r.keep_crc_errors = self.forward_crc
        r.configure(freq=self.freq, sf=self.sf, bw=125000, cr=5, preamble=8, iq_inverted=False, crc=True)
        r.start_receive()

    async def rx_loop(self):
        # A MemoryError anywhere in a step, waiting included (awaiting a coroutine makes an object),
        # is counted and the loop goes on: out of a handler it would end the task for good and leave
        # the hotspot deaf without a word (so tx_loop and the backhaul's loops). The pause after one
        # allocates nothing (asyncio.sleep_ms); no wrapper coroutine: a frame is heap too.
        radio = self.radio
        while True:
            try:
                self.received(await radio.recv())  # queued before anything that could need heap
            except MemoryError:
                self.out_of_memory()
                await asyncio.sleep_ms(5)

    def received(self, p):
        """Count, stamp and queue one received packet (no heap but the UTC seconds)."""
        self.interval["rxnb"] += 1
        self.stats["rx"] += 1
        stat = 1
        if not p.crc_ok:
            self.stats["rx_crc"] += 1
            if not self.forward_crc:
                return
            stat = -1
        else:
            self.interval["rxok"] += 1
        self.last_rssi = p.rssi
        self.last_snr_x4 = p.snr_x4
        hi, lo = self.tmst.at(p.t_us)
        sec, us = self.utc.seconds_at(p.t_us)
        self.backlog.push(p, hi, lo, stat, sec, us, self.clock.ticks_ms())
        self.up_flag.set()
        if self.packet_events:
            self.console.event("rx", {"size": p.length, "rssi": p.rssi, "snr": p.snr_x4 / 4, "crc": stat == 1,
                                      "queued": len(self.backlog)})

    def out_of_memory(self):
        """A step failed for want of a free block: counted, the heap collected; the queue stays."""
        gc.collect()
        self.stats["nomem"] += 1

    # ---- the backhaul interface: what a backhaul (udp.py, mqtt.py) tells the hotspot -------------
    # A backhaul asks the hotspot for what to send (self.backlog: peek, then pop what went out),
    # hands it downlinks (schedule: the TX_ACK result) and tells it what happened through these;
    # the counters and the up/down state are the hotspot's own.
    def link(self, up, kind, server):
        """The backhaul is up or down: one state for every backhaul, an event when it changes.
        server: "host:port" or (host, port), formatted only then."""
        state = "up" if up else "down"
        if state == self.backhaul:
            return
        self.backhaul = state
        if not isinstance(server, str):
            server = "%s:%d" % server
        ev = {"state": state, "kind": kind, "server": server}  # type: dict[str, Any]
        if not up:
            ev["queued"] = len(self.backlog)
        self.console.event("backhaul", ev)

    def forwarded(self, n):
        """n received packets went out to the server (they leave the backlog)."""
        self.stats["forwarded"] += n
        self.interval["rxfw"] += n

    def sent(self, acked=False):
        """An uplink message went out (acked=False), or the server acknowledged one (acked=True)."""
        k = "up_acked" if acked else "up_sent"
        self.stats[k] += 1
        self.interval[k] += 1

    def downlink_in(self, ok=True):
        """A downlink message arrived from the server; ok=False: it could not be read; ok=None:
        an item of one counted already was unusable."""
        if ok is not None:
            self.stats["down"] += 1
            self.interval["dwnb"] += 1
        if not ok:
            self.stats["down_bad"] += 1

    def bad_datagram(self):
        self.stats["bad_datagrams"] += 1

    # ---- downlinks ------------------------------------------------------------------------------
    def start_of(self, t):
        """Clock ticks at which downlink t (a semtech.Txpk) starts, or a TX_ACK error."""
        now = self.clock.ticks_us()
        if t.imme:
            return ticks_add(now, _IMME_US)
        hi, lo = split(t.tmst)
        self.tmst.advance(now)
        start, d = self.tmst.ticks_at(hi, lo)
        if d >= FAR:
            return TOO_EARLY
        if d <= -FAR:
            return TOO_LATE
        return start

    def schedule(self, t, start=None):
        """Check downlink t and queue it for clock ticks `start` (default: from its tmst or imme);
        the TX_ACK error (NONE when queued). Refusals are counted; nothing is sent for them."""
        if t.tmst == GPS_ONLY and not t.imme:
            start = GPS_UNLOCKED  # this gateway keeps no GPS time
        elif start is None:
            start = self.start_of(t)
        if isinstance(start, str):
            err = start
        elif not self.band[0] <= t.freq <= self.band[1]:
            err = TX_FREQ
        elif t.power > self.radio.max_power or t.power < self.radio.MIN_POWER:
            err = TX_POWER
        elif t.bw not in self.radio.BW or not self.radio.MIN_SF <= t.sf <= 12:
            err = TX_FREQ  # no datarate error code exists: this TX chain cannot send it
        else:
            air = airtime.time_on_air_us(len(t.data), t.sf, t.bw, t.cr, t.preamble, True, t.crc,
                                         airtime.ldro_needed(t.sf, t.bw), self.radio.CHIP)
            err = self.jit.add(self.clock.ticks_us(), start, air, t, self.clock.uptime_ms())
        if err == NONE:
            self.tx_flag.set()
        else:
            self.stats["tx_refused"] += 1
        if self.packet_events or err != NONE:
            self.console.event("downlink", {"size": len(t.data), "freq": t.freq, "sf": t.sf, "result": err})
        return err

    async def tx_loop(self):
        q = self.jit
        while True:
            try:  # as rx_loop: a MemoryError anywhere, waiting included, is counted and the loop goes on
                i = q.next()
                if i < 0:
                    await self.tx_flag.wait()
                    continue
                start = q.start[i]
                left = ticks_diff(start, self.clock.ticks_us())
                if left > PREP_US:
                    # poll in steps shorter than the queue's lead: a newer entry may start earlier
                    await asyncio.sleep_ms(self.clock.host_ms(min(10, (left - PREP_US) // 1000 + 1)))
                    continue
                await self.transmit(q.take(i), start)
            except MemoryError:
                self.out_of_memory()
                await asyncio.sleep_ms(5)

    async def transmit(self, t, start):
        r = self.radio
        try:
            r.configure(freq=t.freq, sf=t.sf, bw=t.bw, cr=t.cr, preamble=t.preamble, iq_inverted=t.ipol, crc=t.crc,
                        power=t.power)
            began, _ = await r.transmit_at(t.data, start)
            err = ticks_diff(began, start)
            self.tx_errors[self.tx_error_n % TX_ERRORS] = err
            self.tx_error_n += 1
            self.stats["tx"] += 1
            self.interval["txnb"] += 1
            if self.packet_events:
                self.console.event("tx", {"size": len(t.data), "freq": t.freq, "sf": t.sf, "late_us": err})
        except (ValueError, OSError, RadioError) as e:
            self.stats["tx_fail"] += 1
            self.console.event("log", {"level": "error", "msg": "downlink not sent: %s" % e})
        finally:
            try:
                self.listen()
            except (ValueError, OSError, RadioError) as e:
                self.console.event("log", {"level": "error", "msg": "receive not restarted: %s" % e})

    # ---- figures ----------------------------------------------------------------------------------
    def take_interval(self):
        """The stat object's counters for the interval that ends now (then started afresh)."""
        iv = self.interval
        out = {k: iv[k] for k in _STAT_KEYS}  # type: dict[str, Any]
        sent = iv["up_sent"]
        out["ackr"] = round(100.0 * iv["up_acked"] / sent, 1) if sent else 0.0
        for k in iv:
            iv[k] = 0
        return out

    def stats_data(self):
        d = dict(self.stats)  # type: dict[str, Any]
        d["queued"] = len(self.backlog)
        d["dropped"] = dict(self.backlog.dropped)
        d["backhaul"] = self.backhaul
        d["last_rssi"] = self.last_rssi
        d["last_snr"] = self.last_snr_x4 / 4
        d["downlinks_queued"] = len(self.jit)
        d["tx_rules"] = self.jit.refused  # downlinks refused by the region's limits, by TX_ACK error
        return d
