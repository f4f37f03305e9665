# The node role: read the sensors, send them as Cayenne LPP uplinks on a schedule (confirmed every
# Nth, retried with back-off when the ACK is missing, rejoined after a long silence, within the
# duty cycle), act on commands from the network, and sleep between uplinks. With `sleep: deep`
# the board powers down; what the next wake needs (FCntUp, MAC state, duty-cycle off-times, the
# schedule) is kept in RTC memory, which survives deep sleep but not a power cut; after a power
# cut the session and counters come back from flash (spot.lorawan.store) and the rest restarts.
import gc
import json
import os
import struct
from array import array
from binascii import hexlify, unhexlify

from spot import lpp
from spot.clock import ticks_add, ticks_diff
from spot.lorawan import JoinFailed
from spot.lorawan.dutycycle import DutyCycleError
from spot.sensors import SensorError

try:
    from typing import Any  # noqa: F401 (for the type checker only)
except ImportError:
    pass

# downlink commands on the command port (docs/node.md)
CMD_INTERVAL = 0x01  # u32 BE seconds
CMD_STATUS = 0x02  # answer with a status frame on the command port
CMD_CONFIRM = 0x03  # u8: confirm every Nth uplink (0: never)
CMD_REJOIN = 0x04

RTC_MAGIC = b"LSN1"
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

    # ---- time and state -------------------------------------------------------------------------
    def now(self):
        """Node time in ms: monotonic across deep sleeps (uptime plus the time slept before)."""
        return self.base_ms + self.clock.uptime_ms()

    def restore_rtc(self, data):
        """Resume from the RTC record written before deep sleep; False when there is none that
        matches the stored session (then flash alone is used, as after a power cut)."""
        if not data or data[:4] != RTC_MAGIC:
            return False
        try:
            st = json.loads(data[4:])
        except ValueError:
            return False
        lw, c = self.lw, self.lw.counters
        if st.get("addr") != c.devaddr or st.get("res") != c.up_reserved or not st["up"] <= c.up_reserved:
            return False
        c.fcnt_up = st["up"]
        m = lw.mac
        (m.dr, m.tx_power, m.nb_trans, m.rx1_dr_offset, m.rx2_freq, m.rx2_dr, m.rx1_delay, m.max_eirp,
         m.uplink_dwell, m.max_duty) = st["mac"]
        ch = st.get("ch")
        if ch:
            on = unhexlify(ch[0])
            if len(ch) == 1:
                m.channels.on[: len(on)] = on
            else:
                t = m.channels
                t.f, t.dl = array("I", unhexlify(ch[1])), array("I", unhexlify(ch[2]))
                t.lo, t.hi, t.on = bytearray(unhexlify(ch[3])), bytearray(unhexlify(ch[4])), bytearray(on)
        lw.adr_ack_cnt = st["adr"]
        lw.pending_answers = unhexlify(st["ans"])
        m.sticky = unhexlify(st["sticky"])
        slept = st["sleep"]
        now = self.clock.ticks_ms()
        for band, left in st["duty"]:
            if left > slept:
                lw.duty._free[band] = ticks_add(now, left - slept)
        self.base_ms = st["t"] + slept
        self.count, self.missed, self.last_down = st["n"], st["miss"], st["down"]
        self.hour_start, self.hour_used_ms = st["hs"], st["hu"]
        return True

    def rtc_record(self, sleep_ms):
        lw, m = self.lw, self.lw.mac
        now = self.clock.ticks_ms()
        duty = [[band, ticks_diff(free, now)] for band, free in lw.duty._free.items() if ticks_diff(free, now) > 0]
        t = m.channels
        if m.fixed_plan:
            ch = [hexlify(t.on).decode()]
        else:
            ch = [hexlify(x).decode() for x in (t.on, bytes(t.f), bytes(t.dl), t.lo, t.hi)]
        st = {"addr": lw.counters.devaddr, "up": lw.counters.fcnt_up, "res": lw.counters.up_reserved,
              "mac": [m.dr, m.tx_power, m.nb_trans, m.rx1_dr_offset, m.rx2_freq, m.rx2_dr, m.rx1_delay, m.max_eirp,
                      m.uplink_dwell, m.max_duty],
              "ch": ch, "adr": lw.adr_ack_cnt, "ans": hexlify(lw.pending_answers).decode(),
              "sticky": hexlify(m.sticky).decode(), "duty": duty, "t": self.now(), "sleep": sleep_ms,
              "n": self.count, "miss": self.missed, "down": self.last_down, "hs": self.hour_start,
              "hu": self.hour_used_ms}
        data = RTC_MAGIC + json.dumps(st).encode()
        if len(data) > 2000:  # RTC user memory is 2 KB: channels fall back to the defaults
            st["ch"] = None
            data = RTC_MAGIC + json.dumps(st).encode()
        return data

    # ---- activation -------------------------------------------------------------------------------
    async def activate(self, rejoin=False):
        """Resume the stored session or join (OTAA), retrying until joined."""
        lw = self.lw
        if not rejoin and (lw.session is not None or lw.restore()):
            return
        attempt = 0
        while True:
            attempt += 1
            try:
                ok = await lw.join(self.join_dr(attempt))
            except (JoinFailed, DutyCycleError, ValueError, OSError) as e:
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

    def join_dr(self, attempt):
        """The configured data rate, or automatic: the region's own rule where it has one (US915,
        single channel), else the fastest 125 kHz DR first, one step slower every two failures."""
        dr = self.config.get("data_rate")
        if dr >= 0:
            return dr
        r = self.lw.region
        if r.name in ("US915", "SINGLE"):
            return None
        return max(0, 5 - (attempt - 1) // 2)

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
        try:
            r = await lw.send(fport, data, confirmed)
        except (DutyCycleError, ValueError, OSError) as e:
            self.console.event("uplink", {"fport": fport, "bytes": len(data), "error": str(e)})
            return None
        self._spend(r.airtime_us)
        sf, bw = lw.region.dr(r.dr)
        band = lw.region.duty_band(r.freq)
        ev = {"fcnt": r.fcnt, "fport": fport, "bytes": len(data), "confirmed": confirmed, "ack": r.ack,
              "dr": r.dr, "sf": sf, "bw": bw, "freq": r.freq, "airtime_ms": (r.airtime_us + 999) // 1000}
        if band is not None:
            ev["duty_left_ms"] = max(0, HOUR_MS // band[2] - self.hour_used_ms)
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
            await self.send(self.config.get("cmd_port"), self.status_frame(), False)

    def rejoin_due(self):
        return self.rejoin_asked or (self.missed > 0 and self._silent())

    async def rejoin(self):
        self.console.event("join", {"rejoin": True, "silent_s": (self.now() - self.last_down) // 1000})
        self.rejoin_asked = False
        await self.activate(rejoin=True)

    # ---- downlinks --------------------------------------------------------------------------------
    def downlink(self, r):
        d = r.downlink
        ev = {"fcnt": d.fcnt, "fport": d.fport, "bytes": len(d.payload), "window": r.window, "ack": r.ack,
              "snr": self.lw.last_snr}
        if d.fport == self.config.get("cmd_port") and d.payload:
            try:
                ev["cmd"] = self.command(bytes(d.payload))
            except (ValueError, IndexError) as e:
                ev["error"] = str(e) or "malformed command"
        self.console.event("downlink", ev)

    def command(self, p):
        op = p[0]
        if op == CMD_INTERVAL:
            if len(p) != 5:
                raise ValueError("interval: 4 bytes of seconds expected")
            secs = struct.unpack(">I", p[1:])[0]
            self.config.set({"uplink_interval": secs})  # validated (range) and stored atomically
            return {"uplink_interval": secs}
        if op == CMD_STATUS:
            self.status_due = True
            return {"status": True}
        if op == CMD_CONFIRM:
            if len(p) != 2:
                raise ValueError("confirm: 1 byte expected")
            self.config.set({"confirm_every": p[1]})
            return {"confirm_every": p[1]}
        if op == CMD_REJOIN:
            self.rejoin_asked = True
            return {"rejoin": True}
        raise ValueError("unknown command 0x%02x" % op)

    def status_frame(self):
        """0x02, firmware version (3 bytes), interval s (u32), uplinks (u32), last SNR (i8),
        battery mV (u16, 0: none), sensors that failed their last read (u8)."""
        from spot import VERSION

        ver = [int(x) for x in VERSION.split(".")[:3]]
        mv = 0
        failed = 0
        for i, s in enumerate(self.sensors):
            v = self.readings[i]
            if v is None:
                failed += 1
            elif s.NAME == "battery":
                mv = int(v[0] * 1000 + 0.5)
        return struct.pack(">B3BIIbHB", CMD_STATUS, ver[0], ver[1], ver[2], self.config.get("uplink_interval"),
                           self.lw.stats["uplinks"], max(-128, min(127, self.lw.last_snr)), mv, failed)

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
        gc.collect()
        self.board.save_rtc(self.rtc_record(ms))
        self.console.event("sleep", {"ms": ms, "heap_free": gc.mem_free()})
        self.board.deepsleep(ms)


def eui_from_mac(mac_hex):
    """EUI-64 from the board's MAC-48 (FF FE in the middle), the usual default DevEUI."""
    return (mac_hex[:6] + "FFFE" + mac_hex[6:]).upper()


async def start(app):
    """Build the node from the board profile and config, then run it (the App's node task).
    Order matters for the heap: the radio's buffers first, then the LoRaWAN code, then sensors."""
    from spot import unload
    from spot.lorawan import region
    from spot.lorawan.stack import LoRaWAN
    from spot.lorawan.store import Counters

    board, config, clock, console = app.board, app.config, app.clock, app.console
    try:
        board.power_on()
    except (SensorError, OSError, ValueError) as e:
        console.event("log", {"level": "error", "msg": "power rails: %s" % e})
    radio = board.radio(clock)
    plan = region.get(config.get("region"), config.get("sub_band"), freq=config.get("single_freq"),
                      sf=config.get("single_sf"))
    from spot.sensors.setup import build

    sensors, report = build(board, clock, config.get("sensors"))
    unload("spot.sensors.setup")
    console.event("sensors", report)
    lw = LoRaWAN(plan, radio, clock, Counters().load(), app.secrets, config.get("dev_eui") or
                 eui_from_mac(board.device_id()), config.get("join_eui"))
    node = Node(board, config, clock, console, lw, sensors)
    app.node = node
    if app.reset_cause == "deepsleep" and lw.restore():
        node.restore_rtc(board.rtc_data())
        board.save_rtc(b"")  # used once: a later reset falls back to flash
    await node.run()
