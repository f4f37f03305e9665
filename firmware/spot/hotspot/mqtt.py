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

from spot.aio import readable
from spot.b64 import b64decode
from spot.clock import ticks_diff
from spot.hotspot import semtech
from spot.hotspot.backlog import SEC, STAT, THI, TLO, US
from spot.mqttc import KEEPALIVE_S, Client, MqttError  # noqa: F401 (MqttError: raised through here)

try:
    from typing import Any  # noqa: F401 (for the type checker only)
except ImportError:
    pass

ACK_TIMEOUT_MS = const(2000)  # network time
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


def frame_items(b):
    """downlinkId and the (start, end) of each item of a DownlinkFrame in JSON b (bytes or a
    memoryview), found in one pass without parsing the items: they are parsed one at a time, and
    those after the one that is queued not at all (json.loads of a whole frame takes more heap than
    a 112 KB board has to spare). ValueError when b is not such a frame."""
    n = len(b)
    depth = did = 0
    key = b""  # the last string read in the top-level object: a key before its value
    spans = []
    start = -1
    listed = False
    i = 0
    while i < n:
        c = b[i]
        if c == 0x22:  # a string, escapes included
            j = i + 1
            while j < n and b[j] != 0x22:
                j += 2 if b[j] == 0x5C else 1
            if j >= n:
                raise ValueError("unterminated string")
            if depth == 1:
                key = bytes(b[i + 1 : j]) if j - i <= 11 else b""
            i = j + 1
            continue
        if c == 0x7B or c == 0x5B:  # { [
            depth += 1
            if depth == 2:
                listed = c == 0x5B and key == b"items"  # the items array, not an object of that name
            elif depth == 3 and c == 0x7B and listed:
                start = i
        elif c == 0x7D or c == 0x5D:  # } ]
            if depth == 3 and c == 0x7D and start >= 0:
                spans.append((start, i + 1))
                start = -1
            depth -= 1
            if depth < 0:
                raise ValueError("unbalanced")
        elif depth == 1 and key == b"downlinkId" and 0x30 <= c <= 0x39:
            did = did * 10 + c - 0x30
        elif depth == 0 and c > 0x20:
            raise ValueError("not a JSON object")
        i += 1
    if depth or not spans:
        raise ValueError("no items" if not depth else "unbalanced")
    return did, spans


def txpk_of(item):
    """A semtech.Txpk from a ChirpStack DownlinkFrameItem (imme, or tmst = the uplink's context plus
    the delay); ValueError, KeyError or TypeError when something needed is missing or of the wrong
    kind, OverflowError for a number JSON gives as infinite."""
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
    t.crc = not lora.get("noCrc", False)  # protobuf JSON leaves false out: a CRC unless noCrc is true
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
    if "gpsEpoch" in timing:  # answered GPS_UNLOCKED: this gateway keeps no GPS time
        t.tmst = semtech.GPS_ONLY
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
        self.t_down = (base + "command/down").encode()
        self.server = "%s:%d" % (host, port)
        self.client = Client(host, port, "loraspot-" + self.gid, user, password.decode() if password else None, tls,
                             clock=hs.clock)
        self.client.on_message = self._message
        self.stat_ms = stat_s * 1000
        self.w = semtech.Writer(768)  # the largest UplinkFrame (a 255-byte PHYPayload) is about 690 bytes
        self.uplink_id = int.from_bytes(os.urandom(3), "big")
        self.ctx = bytearray(4)
        self.pending = -1  # packet id of the uplink waiting for its PUBACK
        self.sent_ms = 0  # when it was published
        self.last_stat = hs.clock.ticks_ms()
        self.rtask = None  # type: Any  # the reader of the current connection

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
        t = self.rtask
        self.rtask = None
        if t is not None:
            t.cancel()  # out of asyncio's poller before its socket is closed
        self.client.drop()
        self._set_up(False)
        self.hs.up_flag.set()  # wake the sender: it reconnects

    # ---- incoming -------------------------------------------------------------------------------
    def _message(self, topic, payload):
        """A PUBLISH of a subscribed topic, payload a view into the client's receive buffer: a
        downlink is scheduled and acknowledged at once (json reads the view; nothing is copied)."""
        if topic == self.t_down:
            try:
                self._downlink(payload)
            except MemoryError:  # a fragmented heap: this downlink is lost, the connection kept
                self.hs.out_of_memory()

    def _downlink(self, text):
        hs = self.hs
        try:
            did, items = frame_items(text)
        except ValueError as e:
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
                try:
                    t = txpk_of(json.loads(text[item[0] : item[1]]))
                except MemoryError:
                    # a downlink has a second to go out: it may use the console's reserve, as a
                    # request does (the console takes it back at its next request)
                    if not self.console._release():
                        raise
                    t = txpk_of(json.loads(text[item[0] : item[1]]))
            except (ValueError, KeyError, TypeError, OverflowError) as e:  # OverflowError: 1e999 Hz
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
        # the DownlinkTxAck written into the uplink buffer (free between two uplinks: nothing awaits
        # while either is written and sent): no dict, no string, no copy for it on the heap
        w = self.w
        w.n = 0
        w.raw(b'{"gatewayId":"')
        w.raw(self.gid_b)
        w.raw(b'","downlinkId":')
        w.uint(did)
        w.raw(b',"items":[')
        for k in range(len(statuses)):
            w.raw(b'{"status":"' if k == 0 else b',{"status":"')
            w.raw(statuses[k].encode())
            w.raw(b'"}')
        w.raw(b"]}")
        self.client.publish(self.t_ack, w.buf, w.n)

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

    async def _reader(self, sock):
        """Park on the broker's socket until it has data, then handle what arrived: the awaited
        PUBACK wakes the sender, downlinks are scheduled at once. One reader per connection; when
        the connection ends the link goes down and the sender is woken to reconnect."""
        c = self.client
        while c.sock is sock:
            await readable(sock)  # pyright: ignore[reportGeneralTypeIssues]  (MicroPython awaits generators)
            try:
                if not c.feed():
                    break
            except (OSError, ValueError) as e:
                self.console.event("log", {"level": "warn", "msg": "MQTT: %s" % e})
                break
            except MemoryError:
                self.hs.out_of_memory()
            if c.acked == self.pending:
                self.hs.up_flag.set()  # wake the sender
        if c.sock is sock:
            self.rtask = None  # this task ends here: nothing to cancel
            self._lost()

    async def run(self):
        """The sender: connects, then publishes the backlog one uplink at a time, each taken off on
        its PUBACK. It sleeps on the hotspot's up flag while the backlog is empty."""
        hs, c, clock = self.hs, self.client, self.clock
        while True:
            if c.sock is None:
                await self._connect()
            if self.rtask is None:
                self.rtask = asyncio.create_task(self._reader(c.sock))
            b = hs.backlog
            if not len(b):
                await hs.up_flag.wait()
                continue
            try:
                i = b.index(0)
                if not b.usable(i, clock.ticks_ms(), hs.max_age_ms):
                    b.pop(1)
                    continue
                n = self.uplink_json(b, i)
                hs.sent()
                self.pending = c.publish(self.t_up, self.w.buf, n, qos=1)
                self.sent_ms = clock.ticks_ms()
            except (OSError, ValueError) as e:
                self.console.event("log", {"level": "warn", "msg": "MQTT: %s" % e})
                self._lost()
                continue
            except MemoryError:
                # a fragmented heap: keep the connection and the queue, try again shortly
                hs.out_of_memory()
                await clock.sleep_ms(100)
                continue
            # the reader sets the flag on the PUBACK; a lost link (found by the reader, or by step()
            # when the PUBACK is overdue) sets it too; so does a packet queued meanwhile
            while c.sock is not None and c.acked != self.pending:
                await hs.up_flag.wait()
            acked = c.acked == self.pending and c.sock is not None
            self.pending = -1
            if acked:
                b.pop(1)
                hs.forwarded(1)
                hs.sent(acked=True)

    def step(self, now):
        """Called by the hotspot's clock loop about once a second (device time): the stats on their
        interval, a ping before the keepalive runs out, and the PUBACK deadline: an uplink
        unacknowledged for ACK_TIMEOUT_MS of network time means the link is lost (the connection
        is dropped; the sender reconnects and sends it again)."""
        c = self.client
        if c.sock is None:
            return
        try:
            if self.pending >= 0 and ticks_diff(now, self.sent_ms) > ACK_TIMEOUT_MS * self.clock.speed:
                self._lost()
                return
            if ticks_diff(now, self.last_stat) >= self.stat_ms:
                self.last_stat = now
                c.publish(self.t_stats, self.stats_json())
            if ticks_diff(now, c.last_tx) > KEEPALIVE_S * 500:
                c.ping()
        except OSError as e:
            self.console.event("log", {"level": "warn", "msg": "MQTT: %s" % e})
            self._lost()
        except MemoryError:
            self.hs.out_of_memory()

    def tasks(self):
        return (self.run(),)
