# Receipts of what this hotspot hears (docs/proofs.md), loaded only when receipts_interval is set.
# Each frame heard with a good CRC becomes a 53-byte record (spot.receipts) appended to the open
# batch on flash as it is heard. At the end of an interval the open batch is closed in steps that
# a power cut may stop anywhere without forking the chain:
#   1. the open file is renamed to <seq>.r (the batch's records, fixed from now on);
#   2. its Merkle root is computed from the file, the header signed with the identity key (in
#      slices: the radio is served between them) and header + signature written to <seq>.h
#      (a temporary file renamed: whole or absent);
#   3. the chain state (next sequence number, hash of this batch) is saved atomically.
# At start-up a step left undone is redone: Ed25519 signatures are deterministic and the header is
# made only of the records and the state, so a redone batch is the same bytes. A closed batch stays
# on flash until the ledger service has taken it (HTTP POST, the batch as its body), or, with the
# MQTT backhaul, until the broker has it (PUBLISH QoS 1, PREFIX/gateway/ID/event/receipts).
import asyncio
import gc
import json
import os
import time
from binascii import hexlify, unhexlify

from spot import ed25519, receipts
from spot.atomic import AtomicJson, exists, remove
from spot.clock import ticks_diff

try:
    from typing import Any  # noqa: F401 (for the type checker only)
except ImportError:
    pass

DIR = "/rc"
OPEN = DIR + "/open"
SIZE = 53  # bytes of a record
MAX_RECORDS = 1024  # a batch is closed early at this many records (54 KB on flash)
# closed batches' records kept while the ledger does not take them (a PSRAM board's filesystem is
# 2 MB; a saturated SF7 channel records 3.3 MB an hour: bench/receipts.py); the oldest go first, counted
HELD_BYTES = 512 * 1024
SLICE_BITS = 4  # bits of the signature's scalar multiplication between two turns of the loop
RETRY_MS = 30000  # after a failed upload
TIMEOUT_MS = 20000
PIECE = 384  # bytes of a batch in one console answer (768 hex digits in a frame of at most 1024)
# A beacon (docs/proofs.md): a LoRaWAN Proprietary frame (MHDR 0xE0: MType 111) the hotspot sends
# on its own channel, upright IQ like an uplink so that the hotspots on that channel hear it, and
# signs: b"LSB1", gateway EUI, beacon number (u32), time (u64: the top byte its source, GPS_SOURCE
# or 0 for NTP; the low 56 bits UTC ms since 1970, 0 unknown), claimed position
# (lat, lon in 1e-7 degrees: i32, i32; alt m: i16), nonce (16), then the Ed25519 signature (64) of
# all before it: 115 bytes. Every hotspot that hears it keeps a receipt of it (a witness); the
# sender keeps one of what it sent, its SF byte's top bit set and its RSSI the power it sent at.
BEACON = b"\xe0LSB1"
SENT = 0x80  # the SF byte of a record of a frame this hotspot sent
GPS_TIME = 0x40  # the SF byte of a record whose time is GPS time (spot.sensors.gps)
GPS_SOURCE = 1  # a beacon's time source: GPS
# the port's epoch in Unix seconds (2000-01-01 on the ESP32 port, 1970 on the unix one): records and
# beacons carry Unix time, as the ledger reads it
EPOCH_S = 946684800 if time.gmtime(0)[0] == 2000 else 0
BEACON_DBM = 14  # a node's usual power: what witnesses measure is what a node there would give


def _size(path):
    try:
        return os.stat(path)[6]
    except OSError:
        return -1


class Chain:
    def __init__(self, app, hs, eui, interval_s, server, mqtt=None):
        self.app = app
        self.hs = hs
        self.eui = eui
        self.interval_ms = interval_s * 1000
        self.server = server  # (host, port) of the ledger service, or None: batches stay on the board
        self.mqtt = mqtt  # (host, port, client id, user, password, tls, topic): the MQTT backhaul's broker
        try:
            os.mkdir(DIR)
        except OSError:
            pass
        self.state = AtomicJson(DIR + "/state.json")
        self.state.cleanup()
        st = self.state.load()[0] or {}
        self.seq = st.get("seq", 0)
        self.beacons = st.get("beacons", 0)  # beacons sent, on across reboots (their numbers never repeat)
        self.prev = unhexlify(st["prev"]) if st.get("prev") else bytes(32)
        self.figures = {"records": 0, "lost": 0, "batches": 0, "sent": 0, "refused": 0, "dropped": 0,
                        "beacons": 0, "beacons_refused": 0, "last_refusal": "", "last_error": ""}
        self.wake = asyncio.ThreadSafeFlag()
        self.sending = asyncio.ThreadSafeFlag()
        self.opened = None  # clock ms at the first record of the open batch (this boot)
        self.gps = None  # type: Any  # spot.sensors.gps.GpsTime on a board with a GPS receiver
        self.open_n = self._whole_records()  # records in the open batch, counted here, not read back
        if self.open_n:
            self.opened = app.clock.ticks_ms()
        hs.receipts = self
        received = hs.received

        def heard(p):
            received(p)
            if p.crc_ok:
                self.heard(p)

        hs.received = heard
        stats = app.role_stats

        def figures():
            d = stats()
            d["receipts"] = self.head()
            return d

        app.role_stats = figures
        self.lock = asyncio.Lock()  # one close at a time (the interval's, the console's)
        app.console.register("receipts", self.op_head)
        app.console.register("receipts.close", self.op_close, True)
        app.console.register("receipts.batch", self.op_batch)
        app.console.register("receipts.taken", self.op_taken, True)
        app.console.register("receipts.beacon", self.op_beacon, True)

    # ---- records ---------------------------------------------------------------------------------
    def _utc_ms(self, ticks):
        """Unix ms at clock ticks, 0 when the time is unknown."""
        sec, us = self.hs.utc.seconds_at(ticks)
        return (sec + EPOCH_S) * 1000 + us // 1000 if sec >= 0 else 0

    def _gps(self):
        """True while the hotspot's time is GPS time."""
        return self.gps is not None and self.gps.fresh()

    def heard(self, p):
        hi, lo = self.hs.tmst.at(p.t_us)
        self._keep(receipts.record(p.payload(), (hi << 16) | lo, self._utc_ms(p.t_us), p.freq,
                                   p.sf | (GPS_TIME if self._gps() else 0), p.rssi, p.snr_x4 / 4))

    def _keep(self, rec):
        try:
            with open(OPEN, "ab") as f:
                f.write(rec)
        except OSError:  # the filesystem full or failing: the frame is still forwarded, its receipt counted lost
            self.figures["lost"] += 1
            return
        self.figures["records"] += 1
        self.open_n += 1
        if self.opened is None:
            self.opened = self.app.clock.ticks_ms()
        if self.open_n >= MAX_RECORDS:
            self.wake.set()

    def _whole_records(self):
        """The open batch's records; one cut by a power cut is dropped, so that the next one starts
        on its boundary."""
        remove(OPEN + ".tmp")
        n = _size(OPEN)
        if n <= 0 or not n % SIZE:
            return max(0, n) // SIZE
        with open(OPEN, "rb") as src, open(OPEN + ".tmp", "wb") as dst:
            left = n - n % SIZE
            while left:
                part = src.read(min(left, 1024))
                dst.write(part)
                left -= len(part)
        os.rename(OPEN + ".tmp", OPEN)
        return n // SIZE

    # ---- closing a batch ---------------------------------------------------------------------------
    def _path(self, seq, kind):
        return "%s/%d.%s" % (DIR, seq, kind)

    async def recover(self):
        """Finish a close that a reset stopped (steps 2 and 3 above), and drop the records of a
        batch the ledger had taken when a reset came between removing its two files."""
        if exists(self._path(self.seq, "r")):
            await self.close()
        for name in os.listdir(DIR):
            if name.endswith(".t") or (name.endswith(".r") and name[:-2].isdigit() and int(name[:-2]) < self.seq
                                       and not exists(DIR + "/" + name[:-2] + ".h")):
                remove(DIR + "/" + name)

    async def close(self):
        """Close the open batch (nothing when no frame was heard). A batch whose close failed
        (its records renamed, not yet signed) is finished first: the open file then waits for the
        next close."""
        async with self.lock:
            await self._close()

    async def _close(self):
        seq = self.seq
        if not exists(self._path(seq, "r")):
            if not self.open_n:
                self.opened = None
                return
            os.rename(OPEN, self._path(seq, "r"))
            self.opened, self.open_n = None, 0
        if not exists(self._path(seq, "h")):
            await self._sign(seq)
        self._advance(seq)
        self._trim()
        self.sending.set()

    async def _sign(self, seq):
        tree = receipts.Tree()
        first = last = 0
        with open(self._path(seq, "r"), "rb") as f:
            rec = bytearray(SIZE)
            while f.readinto(rec) == SIZE:
                tree.add(rec)
                t = int.from_bytes(rec[36:44], "big")
                if t and not first:
                    first = t
                last = t or last
        head = receipts.header(self.eui, seq, first, last, tree.count, tree.root(), self.prev)
        tree = None
        sig = await self._signature(head)
        tmp = self._path(seq, "t")
        with open(tmp, "wb") as f:
            f.write(head)
            f.write(sig)
        os.rename(tmp, self._path(seq, "h"))
        gc.collect()

    async def _signature(self, msg):
        """The identity key's signature of msg, made in slices: the loop runs between them."""
        secrets = self.app.secrets
        out = b""
        for sig in ed25519.signing(secrets.get("identity_key"), msg, secrets.get("identity_pub"), SLICE_BITS):
            if sig is None:
                await asyncio.sleep_ms(0)
            else:
                out = sig
        return out

    def _advance(self, seq):
        with open(self._path(seq, "h"), "rb") as f:
            signed = f.read()
        count = int.from_bytes(signed[33:37], "big")  # the header's count (spot.receipts)
        h = receipts.batch_hash(signed[:101], signed[101:])
        self.state.save({"seq": seq + 1, "prev": hexlify(h).decode(), "beacons": self.beacons})
        self.seq, self.prev = seq + 1, h
        self.figures["batches"] += 1
        self.app.console.event("receipts", {"seq": seq, "count": count, "head": hexlify(h).decode()})

    def _closed(self):
        """Sequence numbers of the closed batches still on the board, oldest first."""
        out = []
        for name in os.listdir(DIR):
            if name.endswith(".h") and name[:-2].isdigit():
                out.append(int(name[:-2]))
        out.sort()
        return out

    def _trim(self):
        held = self._closed()
        total = 0
        for seq in held:
            total += max(0, _size(self._path(seq, "r")))
        while held and total > HELD_BYTES:
            seq = held.pop(0)
            total -= max(0, _size(self._path(seq, "r")))
            self._forget(seq)
            self.figures["dropped"] += 1

    def _forget(self, seq):
        remove(self._path(seq, "h"))
        remove(self._path(seq, "r"))

    def head(self):
        """The chain head for the status page and the console."""
        out = dict(self.figures)
        out["seq"] = self.seq
        out["head"] = hexlify(self.prev).decode()
        out["held"] = len(self._closed())  # closed batches the ledger does not have yet
        out["open"] = self.open_n  # records in the open batch
        out["time"] = ("gps" if self._gps() else "ntp") if self.hs.utc.valid else None  # the records' time source
        if self.gps is not None:
            out["gps_syncs"] = self.gps.syncs
        return out

    # ---- beacons ---------------------------------------------------------------------------------
    async def beacon(self, nonce=b""):
        """Sign and send a beacon now (nonce: a challenge's 16 bytes, else random), through the
        downlink queue and so within the region's duty cycle; its record kept as sent. The TX_ACK
        code: "NONE" when it was queued."""
        import struct

        from spot.hotspot.semtech import NONE, Txpk

        hs = self.hs
        lat, lon, alt = hs.position or (0.0, 0.0, 0.0)
        nonce = (bytes(nonce) + os.urandom(16))[:16]
        gps = self._gps()
        ms = self._utc_ms(hs.clock.ticks_us())
        body = BEACON + self.eui + struct.pack(">IQiih", self.beacons, (GPS_SOURCE << 56 if gps and ms else 0) | ms,
                                               round(lat * 1e7), round(lon * 1e7), round(alt)) + nonce
        sig = await self._signature(body)
        t = Txpk()
        t.imme = True
        t.freq, t.sf, t.ipol, t.data = hs.freq, hs.sf, False, body + sig
        t.power = BEACON_DBM
        err = hs.schedule(t)
        if err != NONE:
            self.figures["beacons_refused"] += 1
            return err
        self.beacons += 1  # its number is spent from here, whatever follows
        hi, lo = hs.tmst.advance()
        self._keep(receipts.record(t.data, (hi << 16) | lo, self._utc_ms(hs.clock.ticks_us()), hs.freq,
                                   hs.sf | SENT | (GPS_TIME if gps else 0), t.power, 0))
        self.state.save({"seq": self.seq, "prev": hexlify(self.prev).decode(), "beacons": self.beacons})
        self.figures["beacons"] += 1
        self.app.console.event("beacon", {"n": self.beacons - 1, "size": len(t.data)})
        return err

    # ---- console ---------------------------------------------------------------------------------
    async def op_beacon(self, args):
        """receipts.beacon: send a signed beacon now; "nonce" (hex, 16 bytes): a challenge's."""
        from spot.console import CommandError, arg

        nonce = b""
        if "nonce" in args:
            try:
                nonce = unhexlify(arg(args, "nonce", str))
            except ValueError:
                raise CommandError("bad_args", "nonce must be hex")
            if len(nonce) != 16:
                raise CommandError("bad_args", "nonce must be 16 bytes")
        return {"result": await self.beacon(nonce), "n": self.beacons - 1}

    async def op_head(self, args):
        """receipts: the chain head and the figures."""
        return self.head()

    async def op_close(self, args):
        """receipts.close: close the open batch now (and send it), not at the interval's end."""
        await self.close()
        return self.head()

    def _held(self):
        return [s for s in self._closed() if s < self.seq]

    async def op_batch(self, args):
        """receipts.batch: the closed batches the ledger does not have yet ({"held": [seq, ...]});
        with "seq", PIECE bytes of that one from "offset" (hex), for a host that takes them over
        the console (loraspot ledger pull)."""
        from spot.console import CommandError, arg

        if "seq" not in args:
            return {"held": self._held()}
        seq = arg(args, "seq", int)
        off = arg(args, "offset", int, 0, False)
        if seq not in self._held():
            raise CommandError("no_batch", "batch %d is not held on this board" % seq)
        head = _size(self._path(seq, "h"))
        size = self._batch_size(seq)
        if not 0 <= off <= size:
            raise CommandError("bad_args", "offset out of range")
        path, at = (self._path(seq, "h"), off) if off < head else (self._path(seq, "r"), off - head)
        with open(path, "rb") as f:
            f.seek(at)
            data = f.read(PIECE)
        return {"seq": seq, "size": size, "offset": off, "data": hexlify(data).decode()}

    async def op_taken(self, args):
        """receipts.taken: the host's ledger has batch "seq": it leaves the board."""
        from spot.console import CommandError, arg

        seq = arg(args, "seq", int)
        if seq not in self._held():
            raise CommandError("no_batch", "batch %d is not held on this board" % seq)
        self._forget(seq)
        self.figures["sent"] += 1
        return self.head()

    # ---- tasks -----------------------------------------------------------------------------------
    async def beacons_loop(self, every_s):
        """A beacon every every_s seconds (and a random part of it, so that hotspots set alike do
        not beacon together)."""
        clock = self.app.clock
        while True:
            await clock.sleep_ms(every_s * 1000 + int.from_bytes(os.urandom(2), "big") % (every_s * 250 + 1))
            await self._beacon_or_say(b"")

    async def _beacon_or_say(self, nonce):
        """A beacon from a task: a failure is said (a log event, last_error), the task goes on. The
        heap short at a peak (a batch being uploaded) is waited out, up to three tries: a
        challenge is answered once."""
        for i in range(3):
            n = self.beacons
            try:
                await self.beacon(nonce)
                return
            except MemoryError as e:
                err = e
                if self.beacons != n:  # it was queued: not sent twice
                    break
                gc.collect()
                await self.app.clock.sleep_ms(RETRY_MS // 10)
            except (OSError, ValueError) as e:
                err = e
                break
        self._failed(err)  # pyright: ignore[reportPossiblyUnbound]

    async def run(self):
        clock = self.app.clock
        try:
            await self.recover()
        except (OSError, MemoryError) as e:
            self._failed(e)
        while True:
            opened = self.opened
            left = self.interval_ms
            if opened is not None:
                left -= ticks_diff(clock.ticks_ms(), opened)
            if left <= 0 or self.open_n >= MAX_RECORDS:
                try:
                    await self.close()
                except (OSError, MemoryError) as e:  # tried again an interval later; forwarding goes on
                    self._failed(e)
                    self.opened = clock.ticks_ms()
                continue
            try:
                await asyncio.wait_for_ms(self.wake.wait(), max(left, 50))
            except asyncio.TimeoutError:
                pass

    def _failed(self, e):
        gc.collect()
        self.figures["last_error"] = "%s: %s" % (type(e).__name__, e)
        self.app.console.event("log", {"level": "error", "msg": "receipts: " + self.figures["last_error"][:60]})

    async def send_loop(self):
        while True:
            held = self._held()
            if not held or (self.server is None and self.mqtt is None):
                await self.sending.wait()
                continue
            ok = False
            try:
                ok = await self._upload(held[0])
            except (OSError, MemoryError, ValueError, asyncio.TimeoutError) as e:
                self.figures["last_refusal"] = "upload: %s" % (e,)
                gc.collect()
            if not ok:
                try:
                    await asyncio.wait_for_ms(self.sending.wait(), RETRY_MS)
                except asyncio.TimeoutError:
                    pass

    def _batch_size(self, seq):
        return _size(self._path(seq, "h")) + _size(self._path(seq, "r"))

    async def _write_batch(self, stream, seq):
        """A closed batch as the ledger takes it (header, signature, records) into a stream, a
        piece at a time."""
        buf = bytearray(512)
        for path in (self._path(seq, "h"), self._path(seq, "r")):
            with open(path, "rb") as f:
                while True:
                    n = f.readinto(buf)
                    if not n:
                        break
                    stream.write(buf[:n])
                    await stream.drain()

    async def _publish(self, seq):
        """One batch over MQTT (the hotspot's broker, a connection of its own beside the Gateway
        Bridge's): PUBLISH QoS 1 to PREFIX/gateway/GATEWAY_ID/event/receipts, the batch as the
        payload, written a piece at a time; True on the broker's PUBACK (the ledger service
        subscribes with a persistent session, so the broker keeps it while the ledger is away)."""
        from spot.mqttc import Client, _remaining  # pyright: ignore[reportPrivateUsage]

        cfg = self.mqtt
        c = Client(cfg[0], cfg[1], cfg[2], cfg[3], cfg[4], cfg[5], clock=self.app.clock)
        c.connect()
        try:
            topic = cfg[6]
            head = bytearray(5)
            head[0] = 0x32  # PUBLISH, QoS 1
            n = _remaining(head, 2 + len(topic) + 2 + self._batch_size(seq))
            stream = asyncio.StreamReader(c.sock)  # type: Any  # MicroPython's one Stream class: reads and writes
            stream.write(bytes(head[:n]) + bytes((len(topic) >> 8, len(topic) & 0xFF)) + topic + b"\x00\x01")
            await self._write_batch(stream, seq)
            ack = await asyncio.wait_for_ms(stream.readexactly(4), TIMEOUT_MS)
        finally:
            c.close()
        if ack[0] != 0x40 or ack[2:4] != b"\x00\x01":
            return False
        self._forget(seq)
        self.figures["sent"] += 1
        return True

    async def _upload(self, seq):
        """POST one batch to the ledger service; True when it was taken (or had it already)."""
        if self.mqtt is not None:
            return await self._publish(seq)
        host, port = self.server
        size = self._batch_size(seq)
        reader, writer = await asyncio.wait_for_ms(asyncio.open_connection(host, port), TIMEOUT_MS)
        try:
            writer.write(b"POST /batches HTTP/1.0\r\nHost: %s\r\nContent-Type: application/octet-stream\r\n"
                         b"Content-Length: %d\r\n\r\n" % (host.encode(), size))
            await self._write_batch(writer, seq)
            status = await asyncio.wait_for_ms(reader.readline(), TIMEOUT_MS)
            while True:  # the headers
                line = await asyncio.wait_for_ms(reader.readline(), TIMEOUT_MS)
                if not line or line == b"\r\n":
                    break
            body = await asyncio.wait_for_ms(reader.read(200), TIMEOUT_MS)
        finally:
            writer.close()
            await writer.wait_closed()
        parts = status.split()
        code = int(parts[1]) if len(parts) > 1 else 0  # 0: no answer (kept, sent again)
        if code == 200 or b'"replayed"' in body:
            self._forget(seq)
            self.figures["sent"] += 1
            if b'"challenge"' in body:  # the ledger service asks for a beacon carrying its nonce
                try:
                    nonce = unhexlify(json.loads(body)["challenge"])
                except (ValueError, KeyError, TypeError):
                    nonce = b""
                if len(nonce) == 16:
                    asyncio.create_task(self._beacon_or_say(nonce))
            return True
        if not 400 <= code < 500:
            return False
        self.figures["last_refusal"] = "%d %s" % (code, bytes(body[:60]).decode())
        self.app.console.event("receipts", {"seq": seq, "refused": self.figures["last_refusal"]})
        if b'"unknown_gateway"' in body or b'"out_of_order"' in body:
            return False  # a ledger that does not know this gateway yet, or misses an earlier batch, may take it later
        self._forget(seq)  # refused for good (its reason kept): not sent again
        self.figures["refused"] += 1
        return True


def start(app, hs, eui):
    """The chain's tasks, when receipts_interval is set (by boot.start)."""
    config = app.config
    if not app.secrets.has("identity_key"):
        app.console.event("log", {"level": "error", "msg": "receipts: no identity key (loraspot provision makes it)"})
        return None
    host = config.get("ledger_server")
    server = (host, config.get("ledger_server_port")) if host else None
    mqtt = None
    if config.get("backhaul") == "mqtt":  # the batches go to the broker, beside the Gateway Bridge's topics
        gid = hexlify(eui).decode()
        password = app.secrets.get("mqtt_password")
        mqtt = (config.get("mqtt_host"), config.get("mqtt_port"), "loraspot-%s-receipts" % gid,
                config.get("mqtt_user"), password.decode() if password else None, config.get("mqtt_tls"),
                ("%s/gateway/%s/event/receipts" % (config.get("mqtt_prefix"), gid)).encode())
    chain = Chain(app, hs, eui, config.get("receipts_interval"), server, mqtt)
    if app.board.profile.get("gps"):  # GPS time for the records and beacons (a T-Beam)
        from spot.sensors.gps import GpsTime

        gps = chain.gps = GpsTime(hs, app.board.gps_uart(), app.clock, EPOCH_S)
        asyncio.create_task(gps.run())
    asyncio.create_task(chain.run())
    asyncio.create_task(chain.send_loop())
    if config.get("beacon_interval"):
        asyncio.create_task(chain.beacons_loop(config.get("beacon_interval")))
    return chain
