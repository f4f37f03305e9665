# MQTT backhaul in ChirpStack Gateway Bridge JSON (the protobuf JSON mapping of chirpstack-api's
# gw messages): uplinks to {prefix}/gateway/{id}/event/up (QoS 1: taken off the backlog on their
# PUBACK, so an outage loses nothing the queue holds), stats to .../event/stats, ONLINE/OFFLINE to
# .../state/conn (retained, OFFLINE as the last will), downlinks from .../command/down acknowledged
# on .../event/ack item by item, over the board's MQTT client (spot.mqttc).
import asyncio
import json
import os
import time
from binascii import hexlify

from micropython import const

from spot.b64 import b64decode
from spot.clock import ticks_diff
from spot.hotspot import semtech
from spot.hotspot.backlog import SEC, STAT, THI, TLO, US
from spot.mqttc import KEEPALIVE_S, Client, MqttError  # noqa: F401 (MqttError: raised through here)

try:
    from typing import Any  # noqa: F401 (for the type checker only)
except ImportError:
    pass

ACK_TIMEOUT_MS = const(2000)
POLL_MS = const(10)  # network time: how often the broker's socket is read when idle
MAX_BACKOFF_MS = const(60000)
_CR = ("CR_4_5", "CR_4_6", "CR_4_7", "CR_4_8")
_CRB = (b"CR_4_5", b"CR_4_6", b"CR_4_7", b"CR_4_8")


def _delay_us(text):
    """A protobuf JSON Duration ("1s", "1.500s") in µs."""
    if not isinstance(text, str) or not text.endswith("s"):
        raise ValueError("timing.delay.delay is not a duration")
    whole, _, frac = text[:-1].partition(".")
    us = int(whole) * 1000000
    if frac:
        us += int((frac + "000000")[:6])
    return us


def txpk_of(item):
    """A semtech.Txpk from a ChirpStack DownlinkFrameItem (imme, or tmst = the uplink's context plus
    the delay); ValueError or KeyError when something needed is missing."""
    info = item["txInfo"]
    lora = info["modulation"]["lora"]
    t = semtech.Txpk()
    t.freq = int(info["frequency"])
    t.power = int(info.get("power", 14))
    t.sf = int(lora["spreadingFactor"])
    t.bw = int(lora["bandwidth"])
    cr = lora.get("codeRate", "CR_4_5")
    if cr not in _CR:
        raise ValueError("code rate %s not supported" % cr)
    t.cr = 5 + _CR.index(cr)
    t.ipol = bool(lora.get("polarizationInversion", False))
    t.preamble = int(lora.get("preamble") or 8)
    t.crc = not lora.get("noCrc", True)
    data = b64decode(item["phyPayload"])
    if data is None:
        raise ValueError("phyPayload is not base64")
    if not 1 <= len(data) <= 255:
        raise ValueError("phyPayload of %d bytes" % len(data))
    t.data = data
    timing = info.get("timing") or {}
    if "immediately" in timing:
        t.imme = True
        return t
    ctx = b64decode(info.get("context") or "")
    if ctx is None or len(ctx) != 4:
        raise ValueError("delay timing needs the uplink's 4-byte context")
    base = (ctx[0] << 24) | (ctx[1] << 16) | (ctx[2] << 8) | ctx[3]
    t.tmst = (base + _delay_us(timing["delay"]["delay"])) & 0xFFFFFFFF
    return t


class ChirpStackMqtt:
    def __init__(self, hs, eui, host, port, *, prefix="eu868", user="", password=None, tls=False, stat_s=30):
        self.hs = hs
        self.clock = hs.clock
        self.console = hs.console
        self.gid = hexlify(eui).decode()
        self.gid_b = self.gid.encode()
        base = "%s/gateway/%s/" % (prefix, self.gid)
        self.t_up = (base + "event/up").encode()
        self.t_stats = base + "event/stats"
        self.t_ack = base + "event/ack"
        self.t_conn = base + "state/conn"
        self.t_down = base + "command/down"
        self.server = "%s:%d" % (host, port)
        self.client = Client(host, port, "loraspot-" + self.gid, user, password.decode() if password else None, tls,
                             clock=hs.clock)
        self.client.on_message = self._message
        self.stat_ms = stat_s * 1000
        self.w = semtech.Writer(1024)
        self.uplink_id = int.from_bytes(os.urandom(3), "big")
        self.downlinks = []  # DownlinkFrame JSON received, handled by the run loop
        self.ctx = bytearray(4)

    # ---- connection ---------------------------------------------------------------------------
    def _conn(self, state):
        return json.dumps({"gatewayId": self.gid, "state": state})

    def _set_up(self, up):
        self.hs.link(up, "mqtt", self.server)

    async def _connect(self):
        backoff = 1000
        while True:
            try:
                self.client.connect(self.t_conn, self._conn("OFFLINE"))
                self.client.publish(self.t_conn, self._conn("ONLINE"), retain=True, qos=1)
                self.client.subscribe(self.t_down, 0)
                self._set_up(True)
                return
            except (OSError, IndexError, MemoryError) as e:
                self.client.drop()
                if isinstance(e, MemoryError):
                    self.hs.out_of_memory()
                else:
                    self.console.event("log", {"level": "warn", "msg": "MQTT %s: %s" % (self.server, e)})
            await self.clock.sleep_ms(backoff)
            backoff = min(MAX_BACKOFF_MS, backoff * 2)

    def _lost(self):
        self.client.drop()
        self._set_up(False)

    # ---- incoming -------------------------------------------------------------------------------
    def _message(self, topic, payload):
        if topic == self.t_down.encode():
            self.downlinks.append(bytes(payload))

    def _downlink(self, text):
        hs = self.hs
        try:
            frame = json.loads(text)
            items = frame["items"]
            did = frame.get("downlinkId", 0)
            if not isinstance(items, list) or not items:
                raise ValueError("no items")
        except (ValueError, KeyError, TypeError) as e:
            hs.downlink_in(False)
            self.console.event("log", {"level": "warn", "msg": "downlink dropped: %s" % e})
            return
        hs.downlink_in()
        statuses = []
        done = False
        for item in items:  # RX1 first, RX2 as the fallback: the first one queued wins
            if done:
                statuses.append("IGNORED")
                continue
            try:
                t = txpk_of(item)
            except (ValueError, KeyError, TypeError) as e:
                hs.downlink_in(None)
                self.console.event("log", {"level": "warn", "msg": "downlink item refused: %s" % e})
                statuses.append("INTERNAL_ERROR")
                continue
            err = hs.schedule(t)
            if err == semtech.NONE:
                statuses.append("OK")
                done = True
            else:
                statuses.append(err)
        ack = {"gatewayId": self.gid, "downlinkId": did, "items": [{"status": s} for s in statuses]}
        self.client.publish(self.t_ack, json.dumps(ack))

    # ---- outgoing -------------------------------------------------------------------------------
    def uplink_json(self, b, i):
        """One UplinkFrame (ChirpStack JSON) of backlog entry i, written into self.w."""
        w = self.w
        p = b.packet(i)
        w.n = 0
        w.raw(b'{"phyPayload":"')
        w.b64(p.buf, p.length)
        w.raw(b'","txInfo":{"frequency":')
        w.uint(p.freq)
        w.raw(b',"modulation":{"lora":{"bandwidth":')
        w.uint(p.bw)
        w.raw(b',"spreadingFactor":')
        w.uint(p.sf)
        w.raw(b',"codeRate":"')
        w.raw(_CRB[p.cr - 5])
        w.raw(b'"}}},"rxInfo":{"gatewayId":"')
        w.raw(self.gid_b)
        w.raw(b'","uplinkId":')
        self.uplink_id = (self.uplink_id + 1) & 0x3FFFFFFF
        w.uint(self.uplink_id)
        sec = b.field(i, SEC)
        if sec >= 0:
            w.raw(b',"gwTime":"')
            w.utc(time.gmtime(sec), True, b.field(i, US))
            w.byte(0x22)
        w.raw(b',"rssi":')
        w.int(p.rssi)
        w.raw(b',"snr":')
        w.tenths(p.snr_x4)
        w.raw(b',"channel":0,"rfChain":0,"context":"')
        hi, lo = b.field(i, THI), b.field(i, TLO)
        ctx = self.ctx
        ctx[0], ctx[1], ctx[2], ctx[3] = hi >> 8, hi & 0xFF, lo >> 8, lo & 0xFF
        w.b64(ctx, 4)
        w.raw(b'","crcStatus":"')
        w.raw(b"CRC_OK" if b.field(i, STAT) == 1 else b"BAD_CRC")
        w.raw(b'"}}')
        return w.n

    def stats_json(self):
        hs = self.hs
        iv = hs.take_interval()
        out = {"gatewayId": self.gid, "rxPacketsReceived": iv["rxnb"], "rxPacketsReceivedOk": iv["rxok"],
               "txPacketsReceived": iv["dwnb"], "txPacketsEmitted": iv["txnb"]}
        hs.utc.rebase()
        if hs.utc.valid:
            w = semtech.Writer(32)
            w.utc(time.gmtime(hs.utc.sec), True, hs.utc.us)
            out["time"] = bytes(w.buf[: w.n]).decode()
        if hs.position is not None:
            lat, lon, alt = hs.position
            out["location"] = {"latitude": lat, "longitude": lon, "altitude": alt}
        self.console.event("gwstat", {"rxnb": iv["rxnb"], "rxok": iv["rxok"], "dwnb": iv["dwnb"], "txnb": iv["txnb"]})
        return json.dumps(out)

    async def _wait_ack(self, pid):
        c = self.client
        for _ in range(ACK_TIMEOUT_MS // 2):
            if c.acked == pid:
                return True
            if not c.feed():
                return False
            await asyncio.sleep_ms(2)
        return False

    async def run(self):
        hs, c, clock = self.hs, self.client, self.clock
        last_stat = clock.ticks_ms()
        while True:
            if c.sock is None:
                await self._connect()
            try:
                if not c.feed():
                    self._lost()
                    continue
                while self.downlinks:
                    self._downlink(self.downlinks.pop(0))
                now = clock.ticks_ms()
                hs.tmst.advance()
                if ticks_diff(now, last_stat) >= self.stat_ms:
                    last_stat = now
                    c.publish(self.t_stats, self.stats_json())
                b = hs.backlog
                if len(b):
                    i = b.index(0)
                    if not b.usable(i, now, hs.max_age_ms):
                        b.pop(1)
                        continue
                    n = self.uplink_json(b, i)
                    hs.sent()
                    pid = c.publish(self.t_up, self.w.buf, n, qos=1)
                    if await self._wait_ack(pid):
                        b.pop(1)
                        hs.forwarded(1)
                        hs.sent(acked=True)
                        continue
                    self._lost()
                    continue
                if ticks_diff(clock.ticks_ms(), c.last_tx) > KEEPALIVE_S * 500:
                    c.ping()
            except (OSError, ValueError) as e:
                self.console.event("log", {"level": "warn", "msg": "MQTT: %s" % e})
                self._lost()
                continue
            except MemoryError:
                # a fragmented heap: keep the connection and the queue, try again shortly
                self.hs.out_of_memory()
                await self.clock.sleep_ms(100)
                continue
            if not len(hs.backlog):
                await asyncio.sleep_ms(POLL_MS)

    def tasks(self):
        return (self.run(),)
