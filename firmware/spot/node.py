# The node role: read the sensors, send them as Cayenne LPP uplinks on a schedule (confirmed every
# Nth, retried with back-off when the ACK is missing, rejoined after a long silence, within the
# duty cycle), act on commands from the network, and sleep between uplinks. With `sleep: deep`
# the board powers down; what the next wake needs (FCntUp, MAC state, duty-cycle off-times, the
# schedule) is kept in RTC memory, which survives deep sleep but not a power cut; after a power
# cut the session and counters come back from flash (spot.lorawan.store) and the rest restarts.
import os
from binascii import hexlify

from spot import lpp
from spot.clock import ticks_diff
from spot.lorawan import ChannelBusy, JoinFailed
from spot.lorawan.dutycycle import DutyCycleError
from spot.radio import RETRY_MAX_MS, RETRY_MS, RadioError
from spot.sensors import SensorError

try:
    from typing import Any  # noqa: F401 (for the type checker only)
except ImportError:
    pass

AWAKE_AFTER_CONSOLE_MS = 30000  # a console request keeps a deep-sleeping node awake this long
JOIN_RETRY_MS = 15000
HOUR_MS = 3600000

# LPP types of each sensor's values (GPS: one value of three numbers)
KINDS = {"bme280": (lpp.TEMPERATURE, lpp.HUMIDITY, lpp.BAROMETER), "sht31": (lpp.TEMPERATURE, lpp.HUMIDITY),
         "aht20": (lpp.TEMPERATURE, lpp.HUMIDITY), "ds18b20": (lpp.TEMPERATURE,), "battery": (lpp.ANALOG_IN,),
         "gps": (lpp.GPS,)}


def channels(sensors):
    """First LPP channel of each sensor: numbered from 1 in config order, one per value, so a
    sensor that fails to read never shifts the channels of the others."""
    out = []
    ch = 1
    for s in sensors:
        out.append(ch)
        ch += len(KINDS[s.NAME])
    return out


def _round(v):
    return round(v, 4) if isinstance(v, float) else v


class Node:
    def __init__(self, board, config, clock, console, lw, sensors):
        self.board = board
        self.config = config
        self.clock = clock
        self.console = console
        self.lw = lw
        self.sensors = sensors
        self.channels = channels(sensors)
        self.payload = lpp.Payload()
        self.readings = [None] * len(sensors)  # type: list[Any]
        self.count = 0  # uplink cycles since the session started (for "confirmed every Nth")
        self.missed = 0  # confirmed uplinks in a row without an ACK
        self.last_down = 0  # node time (ms) of the last downlink
        self.base_ms = 0  # node time at this boot: time before it (deep sleeps included)
        self.hour_start = 0
        self.hour_used_ms = 0
        self.status_due = False
        self.rejoin_asked = False
        self.radio_fault = None  # what the radio last failed with, None while it works
        self.radio_faults = 0
        self._radio_wait = RETRY_MS
        self.notes = []  # (kind, data) of events from its start, sent by report_start()

    # ---- time and state -------------------------------------------------------------------------
    def now(self):
        """Node time in ms: monotonic across deep sleeps (uptime plus the time slept before)."""
        return self.base_ms + self.clock.uptime_ms()

    def restore_rtc(self, data):
        """Resume from the RTC record written before deep sleep; False when there is none that
        matches the stored session (then flash alone is used, as after a power cut)."""
        return _aux("nodesleep").restore_rtc(self, data)

    def rtc_record(self, sleep_ms):
        return _aux("nodesleep").rtc_record(self, sleep_ms)

    # ---- activation -------------------------------------------------------------------------------
    async def activate(self, rejoin=False):
        """Resume the stored session or join (OTAA), retrying until joined; with `activation: abp`
        the session is the configured DevAddr and session keys (no join, never a rejoin)."""
        lw = self.lw
        if self.config.get("activation") == "abp":
            while lw.session is None:
                addr = self.config.get("dev_addr")
                nwk, app = lw.secrets.get("nwk_s_key"), lw.secrets.get("app_s_key")
                if addr and nwk and app:
                    lw.activate_abp(addr, nwk, app)
                    self.console.event("join", {"ok": True, "abp": True, "devaddr": self.devaddr()})
                    self.last_down = self.now()
                    return
                self.console.event("join", {"ok": False, "abp": True,
                                            "error": "ABP needs dev_addr and the keys nwk_s_key, app_s_key"})
                await self.clock.sleep_ms(JOIN_RETRY_MS)
            return
        if not rejoin and (lw.session is not None or lw.restore()):
            return
        attempt = 0
        while True:
            attempt += 1
            if self.lw.radio is None:
                await self.radio_ready()
            try:
                ok = await lw.join(self.join_dr(attempt))
            except RadioError as e:
                self.radio_lost(e)
                ok = False
            except (JoinFailed, DutyCycleError, ChannelBusy, ValueError, OSError) as e:
                self.console.event("join", {"ok": False, "attempt": attempt, "error": str(e)})
                ok = False
            if ok:
                self.console.event("join", {"ok": True, "attempt": attempt, "devaddr": self.devaddr(),
                                            "dr": lw.mac.dr})
                self.count = self.missed = 0
                self.last_down = self.now()
                return
            self.console.event("join", {"ok": False, "attempt": attempt})
            await self.clock.sleep_ms(JOIN_RETRY_MS + os.urandom(1)[0] * 20)

    # ---- the radio: a fault is a state (reported, counted, retried), never a crash ------------------
    async def radio_ready(self):
        """Return once the stack has a radio: one that is out is opened again with back-off (5 s
        doubling to 5 min) while the console goes on answering."""
        lw = self.lw
        while lw.radio is None:
            try:
                lw.set_radio(self.open_radio())
            except RadioError as e:
                self.radio_lost(e, self._radio_wait)
                await self.clock.sleep_ms(self._radio_wait)
                self._radio_wait = min(2 * self._radio_wait, RETRY_MAX_MS)
                continue
            self._radio_wait = RETRY_MS
            self.radio_fault = None
            self.report_radio()

    def open_radio(self):
        """A fresh driver for the board's radio (RadioError while it is out)."""
        return self.board.radio(self.clock)

    def radio_lost(self, e, retry_ms=0, report=True):
        """The radio failed (absent, silent, timed out): reported and dropped, so that the next
        use opens it again (a fresh reset of the chip)."""
        self.radio_fault = str(e) or type(e).__name__
        self.radio_faults += 1
        lw = self.lw
        if lw.radio is not None:
            close = getattr(lw.radio, "close", None)
            if close is not None:
                close()
            lw.set_radio(None)
        if report:
            self.report_radio(retry_ms)

    def report_start(self):
        """What the node's start found (power rails, sensors), then its radio, as events: sent once
        the boot event is out."""
        for kind, data in self.notes:
            self.console.event(kind, data)
        self.notes = []
        self.report_radio()

    def report_radio(self, retry_ms=0):
        """The radio's state as a `radio` event (what provisioning waits for after a restart)."""
        if self.radio_fault is None:
            self.console.event("radio", {"ok": True, "chip": self.lw.radio.profile["chip"]})
            return
        ev = {"ok": False, "error": self.radio_fault, "faults": self.radio_faults}
        if retry_ms:
            ev["retry_ms"] = retry_ms
        self.console.event("radio", ev)

    def radio_status(self):
        if self.radio_fault is not None:
            return "fault: " + self.radio_fault
        return "ok" if self.lw.radio is not None else "starting"

    def join_dr(self, attempt):
        """The configured data rate, or automatic: the region's own rule where it has one (US915,
        single channel), else the fastest 125 kHz DR first, one step slower every two failures."""
        dr = self.config.get("data_rate")
        if dr >= 0:
            return dr
        r = self.lw.region
        if r.name in ("US915", "SINGLE"):
            return None
        # never below the slowest DR that carries a payload (AS923 with the uplink dwell time: DR2)
        return max(r.min_dr(self.lw.mac.uplink_dwell), 5 - (attempt - 1) // 2)

    def devaddr(self):
        return hexlify(bytes(reversed(self.lw.devaddr))).decode()

    # ---- one cycle --------------------------------------------------------------------------------
    async def read_sensors(self):
        for i, s in enumerate(self.sensors):
            try:
                v = await s.read()
                v = v if isinstance(v, tuple) else (v,)
                self.readings[i] = v
                self.console.event("reading", {"sensor": s.NAME, "ch": self.channels[i],
                                               "values": [_round(x) for x in v]})
            except SensorError as e:
                self.readings[i] = None
                self.console.event("reading", {"sensor": s.NAME, "error": e.code, "msg": str(e)})

    def build_payload(self):
        p = self.payload
        p.clear()
        for i, s in enumerate(self.sensors):
            v = self.readings[i]
            if v is None:
                continue
            ch = self.channels[i]
            try:
                if s.NAME == "gps":
                    p.gps(ch, v[0], v[1], v[2])
                else:
                    for k, kind in enumerate(KINDS[s.NAME]):
                        p.add(ch + k, kind, v[k])
            except lpp.LppError as e:
                self.console.event("log", {"level": "warn", "msg": "%s not sent: %s" % (s.NAME, e)})
        return p

    def _silent(self):
        after = self.config.get("rejoin_after")
        return bool(after) and self.now() - self.last_down > after * 1000

    def _confirmed(self):
        """Every Nth uplink, and every uplink once the network has been silent for rejoin_after
        (a link check: its missing ACK is what triggers the rejoin)."""
        every = self.config.get("confirm_every")
        return bool(every and self.count % every == every - 1) or self._silent()

    def _spend(self, airtime_us):
        """Count airtime in the current hour (node time), for the duty budget in uplink events."""
        now = self.now()
        if now - self.hour_start >= HOUR_MS:
            self.hour_start, self.hour_used_ms = now - (now - self.hour_start) % HOUR_MS, 0
        self.hour_used_ms += (airtime_us + 999) // 1000

    async def send(self, fport, data, confirmed):
        """One uplink, reported; the Result, or None when it could not be sent."""
        lw = self.lw
        if lw.radio is None:  # checked here: no coroutine made per uplink while the radio works
            await self.radio_ready()
        try:
            r = await lw.send(fport, data, confirmed)
        except (DutyCycleError, RadioError, ChannelBusy, ValueError, OSError) as e:  # reported, not fatal
            self.console.event("uplink", {"fport": fport, "bytes": len(data), "error": str(e)})
            if isinstance(e, RadioError):
                self.radio_lost(e)
            return None
        self._spend(r.airtime_us)
        sf, bw = lw.region.dr(r.dr)
        band = lw.region.duty_band(r.freq)
        ev = {"fcnt": r.fcnt, "fport": fport, "bytes": len(data), "confirmed": confirmed, "ack": r.ack,
              "dr": r.dr, "sf": sf, "bw": bw, "freq": r.freq, "airtime_ms": (r.airtime_us + 999) // 1000}
        if band is not None:
            ev["duty_left_ms"] = max(0, HOUR_MS // band[2] - self.hour_used_ms)
        if lw.region.lbt:
            ev["lbt_dbm"] = lw.lbt_rssi  # the channel was heard free at this level before sending
        self.console.event("uplink", ev)
        if r.downlink is not None:
            self.last_down = self.now()
            self.downlink(r)
        return r

    async def cycle(self):
        """Read, send (split by the data rate's limit), retry a confirmed frame without ACK."""
        await self.read_sensors()
        lw = self.lw
        limit = lw.region.max_payload(lw.mac.dr, lw.mac.uplink_dwell) - min(15, len(lw.pending_answers))
        frames = self.build_payload().frames(limit)
        if self.payload.dropped:
            self.console.event("log", {"level": "warn", "msg": "%d value(s) larger than the %d-byte limit left out"
                                       % (self.payload.dropped, limit)})
        confirmed = self._confirmed()
        fport = self.config.get("fport")
        if not frames:
            frames = [b""]  # nothing read: an empty uplink still keeps the session alive
        for data in frames:  # views of the payload buffer, unchanged until the next cycle
            r = await self.send(fport, data, confirmed)
            tries = 0
            while confirmed and (r is None or not r.ack) and tries < self.config.get("retries"):
                tries += 1
                # exponential back-off with jitter: 2, 4, 8 ... s (+0..1 s), within the duty cycle
                await self.clock.sleep_ms((1000 << tries) + os.urandom(1)[0] * 4)
                r = await self.send(fport, data, confirmed)
            if confirmed:
                self.missed = 0 if r is not None and r.ack else self.missed + 1
        self.count += 1
        if self.status_due:
            self.status_due = False
            await self.send(self.config.get("cmd_port"), _aux("nodecmd").status_frame(self), False)

    def rejoin_due(self):
        if self.config.get("activation") == "abp":
            return False  # an ABP session is for good
        return self.rejoin_asked or (self.missed > 0 and self._silent())

    async def rejoin(self):
        self.console.event("join", {"rejoin": True, "silent_s": (self.now() - self.last_down) // 1000})
        self.rejoin_asked = False
        await self.activate(rejoin=True)

    # ---- downlinks --------------------------------------------------------------------------------
    def downlink(self, r):
        _aux("nodecmd").downlink(self, r)

    # ---- the loop ---------------------------------------------------------------------------------
    async def run(self):
        await self.activate()
        while True:
            start = self.now()
            if self.rejoin_due():
                await self.rejoin()
            await self.cycle()
            wait = self.config.get("uplink_interval") * 1000 - (self.now() - start)
            if self.config.get("sleep") == "deep" and not self._console_active():
                self.sleep(max(0, wait))
            elif wait > 0:
                await self.clock.sleep_ms(wait)

    def _console_active(self):
        last = self.console.last_rx_ms
        return last is not None and ticks_diff(self.clock.ticks_ms(), last) < AWAKE_AFTER_CONSOLE_MS

    def sleep(self, ms):
        _aux("nodesleep").sleep(self, ms)


def _aux(name):
    """A helper module for rare work (commands, the deep-sleep record, start-up), loaded for the
    call and dropped after it: its code takes heap only while it runs."""
    from spot import unload

    mod = __import__("spot." + name, None, None, ("x",))
    unload("spot." + name)
    return mod
