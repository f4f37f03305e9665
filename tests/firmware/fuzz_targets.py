# Seeded fuzzing of the firmware's parsers, run under MicroPython at the board's heap (bench/fuzz.py
# for `make fuzz`, tests/host/test_fuzz.py for a sample in `make test`). Each target makes inputs
# from a deterministic generator (the same on every port) and feeds them to the parser; an
# exception other than the parser's documented refusals is a crash, reported with the input.
# Usage: micropython fuzz_targets.py TARGET SEED COUNT [HEX-INPUT...]  (inputs replay a corpus)
import gc
import json
import sys
import time
from binascii import hexlify, unhexlify


class Rng:
    """xorshift32: the same numbers under MicroPython and CPython."""

    def __init__(self, seed):
        self.s = (seed * 2654435761 + 1) & 0xFFFFFFFF or 1

    def u32(self):
        x = self.s
        x ^= (x << 13) & 0xFFFFFFFF
        x ^= x >> 17
        x ^= (x << 5) & 0xFFFFFFFF
        self.s = x
        return x

    def below(self, n):
        return self.u32() % n

    def bytes(self, n):
        return bytes(self.u32() & 0xFF for _ in range(n))

    def pick(self, seq):
        return seq[self.below(len(seq))]


def mutate(rng, data):
    """A few byte-level edits of data: flips, insertions, deletions, truncation, repeats (bytes
    rebuilt by slicing: a MicroPython bytearray cannot change size through slices)."""
    b = bytes(data)
    for _ in range(1 + rng.below(4)):
        op = rng.below(6)
        i = rng.below(len(b) + 1)
        if op == 0 and i < len(b):
            b = b[:i] + bytes((b[i] ^ (1 << rng.below(8)),)) + b[i + 1 :]
        elif op == 1:
            b = b[:i] + rng.bytes(1 + rng.below(4)) + b[i:]
        elif op == 2:
            b = b[:i] + b[i + 1 + rng.below(4) :]
        elif op == 3:
            b = b[:i]
        elif op == 4 and i < len(b):
            b = b[:i] + bytes((rng.pick(b'"{}[],:0-9.e\\ '),)) + b[i + 1 :]
        elif op == 5 and b:
            j = rng.below(len(b))
            b = b[:i] + b[j : j + 1 + rng.below(8)] + b[i:]
    return b


# ---- targets: gen(rng) -> input bytes; run(input) raises only the allowed exceptions ---------------

REGIONS = ("EU868", "US915", "AS923-1", "AS923-3", "CN470")


def _mac():
    from spot.lorawan import mac, region

    plans = [region.get(n) for n in REGIONS] + [region.get("SINGLE", freq=868100000, sf=9)]
    lens = (2, 4, 1, 4, 0, 5, 1, 1, 4, 0, 0, 0, 0, 5)  # downlink payload sizes of CIDs 2..0x0D
    states = {}

    def gen(rng):
        out = bytearray((rng.below(len(plans)),))
        for _ in range(1 + rng.below(5)):
            cid = 2 + rng.below(12) if rng.below(8) else rng.below(256)
            n = lens[cid - 2] if 2 <= cid <= 0x0D else rng.below(6)
            if not rng.below(10):
                n = rng.below(n + 1)  # truncated
            out.append(cid)
            out += rng.bytes(n)
        return bytes(out)

    def run(data):
        if not data:
            return
        k = data[0] % len(plans)
        st = states.get(k)
        if st is None or len(states) > 64:
            st = states[k] = mac.MacState(plans[k])
        ans = mac.handle(st, data[1:], battery=255, margin=data[-1] - 128)
        mac.fit(ans)
        st.enabled()  # the state stays usable: channels consistent
        if not any(st.channels.on):
            raise AssertionError("every channel off")

    return gen, run, ()


def _join_accept():
    from spot.lorawan import join, region

    plans = [region.get(n) for n in REGIONS]

    def gen(rng):
        return rng.bytes(19)

    def run(data):
        if len(data) < 3:
            return
        r = plans[data[0] % len(plans)]
        st = join.settings(r, data[1], data[2] & 0x0F, data[3:19] if len(data) >= 19 else None)
        if st is not None:
            r.rx1_dr(st.dr, st.rx1_dr_offset, st.downlink_dwell)  # what send() then computes
            if not r.rx_dr_ok(st.rx2_dr):
                raise AssertionError("an unusable RX2 data rate accepted")

    return gen, run, ()


def _downlink():
    from spot.lorawan import crypto, frame

    devaddr = b"\x01\x02\x03\x04"
    session = crypto.Session(bytes(range(16)), bytes(range(16, 32)))
    buf = bytearray(255)

    def gen(rng):
        body = rng.bytes(rng.below(40))
        return bytes((rng.pick((0x60, 0xA0, 0x61, 0x40, rng.below(256))),)) + devaddr + body

    def run(data):
        n = min(len(data), 255)
        buf[:n] = data[:n]
        frame.parse_downlink(buf, n, session, devaddr, -1)

    return gen, run, (frame.FrameError,)


TXPK = (b'{"txpk":{"imme":false,"tmst":3512348611,"freq":869.525,"rfch":0,"powe":14,"modu":"LORA",'
        b'"datr":"SF9BW125","codr":"4/5","ipol":true,"size":12,"data":"YAQDAgGAAQABAgMECg=="}}')


def _semtech():
    from spot.hotspot import semtech

    def gen(rng):
        head = bytes((2, rng.below(256), rng.below(256), rng.pick((3, 3, 3, 1, 4, rng.below(256)))))
        if not rng.below(20):
            head = rng.bytes(rng.below(6))
        return head + mutate(rng, TXPK)

    def run(data):
        ident, _token, body = semtech.parse(data)
        if body is not None:
            semtech.parse_txpk(body)

    return gen, run, (semtech.ProtocolError,)


FRAME = (b'{"downlinkId":3112324445,"gatewayId":"0016c001ff10d3f6","items":[{"phyPayload":"YAQDAgGAAQABAgMECg==",'
         b'"txInfo":{"frequency":868100000,"power":14,"modulation":{"lora":{"bandwidth":125000,'
         b'"spreadingFactor":9,"codeRate":"CR_4_5","polarizationInversion":true}},'
         b'"timing":{"delay":{"delay":"1s"}},"context":"AAAAAA=="}},{"phyPayload":"YAQDAgGAAQABAgMECg==",'
         b'"txInfo":{"frequency":869525000,"modulation":{"lora":{"bandwidth":125000,"spreadingFactor":12}},'
         b'"timing":{"immediately":{}}}}]}')


class _Hs:
    def downlink_in(self, ok=True):
        pass

    def schedule(self, t):
        return "OK" if t.freq else "TX_FREQ"


class _Sink:
    def event(self, kind, data):
        pass

    def publish(self, topic, buf, n):
        json.loads(bytes(buf[:n]))  # the DownlinkTxAck is JSON whatever came in


def _chirpstack():
    from spot.hotspot import mqtt, semtech

    fake = type("F", (), {})()  # what ChirpStackMqtt._downlink uses of its instance
    fake.hs, fake.console, fake.client = _Hs(), _Sink(), _Sink()
    fake.w, fake.gid_b, fake.t_ack = semtech.Writer(768), b"0016c001ff10d3f6", "ack"

    def gen(rng):
        return mutate(rng, FRAME)

    def run(data):
        mqtt.ChirpStackMqtt._downlink(fake, data)  # the handler itself: it must refuse, never raise

    return gen, run, ()


NMEA = (b"$GPGGA,123519,4807.038,N,01131.000,E,1,08,0.9,545.4,M,46.9,M,,*47\r\n"
        b"$GPRMC,123519,A,4807.038,N,01131.000,E,022.4,084.4,230394,003.1,W*6A\r\n")


def _nmea():
    """A node's fix (spot.sensors.gps) and a hotspot's GPS time (spot.sensors.gps), each fed the
    same bytes."""
    from spot.clock import Clock
    from spot.sensors.gps import GpsTime, Nmea

    parser = Nmea()

    class Utc:
        def sync(self, ns=None):
            return isinstance(ns, int)

    class Hs:
        utc = Utc()

    times = GpsTime(Hs(), None, Clock(), 946684800)

    def gen(rng):
        return mutate(rng, NMEA) if rng.below(4) else rng.bytes(rng.below(90))

    def run(data):
        parser.feed(data)
        parser.fix.usable()
        times.feed(data)

    return gen, run, ()


def _config():
    from spot import ConfigError, schema

    keys = sorted(schema.SCHEMA)
    values = (b'0', b'-1', b'1e9', b'"EU868"', b'"x"', b'true', b'null', b'[]', b'{}', b'"0011223344556677"',
              b'"bme280@0x77,gps"', b'868100000', b'"AS923-9"', b'2.5', b'"\\u00ff"')

    def gen(rng):
        v = rng.pick(values)
        return bytes((rng.below(len(keys)),)) + (mutate(rng, v) if rng.below(2) else v)

    def run(data):
        if not data:
            return
        try:
            v = json.loads(data[1:])
        except ValueError:
            return  # not JSON: the console refuses it before the schema sees it
        schema.check(keys[data[0] % len(keys)], v)

    return gen, run, (ConfigError,)


REQUESTS = (b'{"id":1,"op":"echo","args":{"a":[1,2,{"b":"c"}],"n":-0.5}}', b'{"id":77,"op":"config.check","args":'
            b'{"key":"region","value":"EU868"}}', b'{"id":3,"op":"nope","args":{}}', b'{"id":16777215,"op":"echo"}')


_BEFORE_SAMPLE = []  # what a target empties before each sample of the heap (its last answers)


class _Port:
    """The console's serial port: what it writes is kept, one output line at a time."""

    def __init__(self):
        self.out = b""
        _BEFORE_SAMPLE.append(self.empty)  # the last input's answers are not kept state

    def empty(self):
        self.out = b""

    def write(self, b):
        self.out += b.encode() if isinstance(b, str) else bytes(b)  # a UART takes text and bytes


def _feed(con, rx, data):
    """data to the console in pieces of len(rx), as its port delivers them; each whole request
    line handled to its answer (the handlers of these targets never wait)."""
    from spot import codec

    i = 0
    while i < len(data):
        k = min(len(rx), len(data) - i)
        rx[:k] = data[i : i + k]
        start = 0
        while start < k:
            start, line = con._asm.feed(rx, start, k)
            if line is None or line is codec.LineAssembler.TOO_LONG:
                continue
            coro = con.handle_line(line)
            try:
                coro.send(None)
            except StopIteration:
                pass
        i += k


def _console():
    import binascii

    from spot import ConfigError, codec, schema
    from spot.console import CommandError, Console

    class Clk:
        def ticks_ms(self):
            return 0

        def uptime_ms(self):
            return 0

    port = _Port()
    con = Console(port, Clk())

    async def echo(args):
        return args

    async def check(args):
        try:
            schema.check(args.get("key"), args.get("value"))
        except ConfigError as e:
            raise CommandError(e.code, str(e))
        return {}

    con.register("echo", echo)
    con.register("config.check", check)
    rx = bytearray(64)

    def gen(rng):
        body = mutate(rng, rng.pick(REQUESTS)) if rng.below(4) else rng.bytes(rng.below(40))
        crc = b"%08x" % (binascii.crc32(body) & 0xFFFFFFFF) if rng.below(4) else rng.bytes(8)
        line = b"~" + body + b"|" + crc
        if not rng.below(8):
            line = mutate(rng, line)
        return line + b"\n"

    def run(data):
        port.out = b""
        _feed(con, rx, data)
        for out in port.out.split(b"\n")[:-1]:  # every answer is a whole, valid frame
            codec.decode(out)

    return gen, run, ()


# paths a console command might be given, and edits that respell them (each must be refused, or
# reach only the file its one normal spelling names)
PATHS = ("/secrets.json", "/secrets.json.bak", "/secrets.json.tmp", "/lock", "/lock.part", "/config.json",
         "/d/x.txt", "/d", "/", "/app/main.py", "/config.json.part")
SPELL = (b"//", b"/./", b"/d/../", b"/", b".", b"..", b"\\", b"\x00", b"\x7f", b"\xc3\xa9", b"\xf0\x9f\x93\xa1", b" ",
         b".part", b"SECRETS", b"%2e", b"/" * 40, b"a" * 90)
HIDDEN = ("secrets.json", "secrets.json.bak", "secrets.json.tmp", "lock", "lock.part")


def _json_escape(b):
    """A byte string as the inside of a JSON string: quote, backslash and control bytes escaped."""
    out = b""
    for c in b:
        if c in (0x22, 0x5C):
            out += b"\\" + bytes((c,))
        elif c < 0x20 or c == 0x7F:
            out += b"\\u%04x" % c
        else:
            out += bytes((c,))
    return out


SECRET = b'{"app_key":"00112233445566778899aabbccddeeff"}'
_CLEANUP = []


def _paths():
    """Every file command of the console on a littlefs mounted at "/" (the host's file system out
    of reach): a path in any spelling must be refused or name one file; the protected files are
    never read, listed, changed or removed, and no command ends in an internal error."""
    import binascii
    import hashlib
    import os

    import deflate  # noqa: F401  (imported now: nothing is importable once "/" is the board's flash)
    import vfs
    from fwtest import RamFlash
    from spot import codec
    from spot.console import Console
    from spot.fsnames import OPS
    from spot.fsops import FileOps, normalise

    class Clk:
        def ticks_ms(self):
            return 0

        def uptime_ms(self):
            return 0

    flash = RamFlash(16)
    host_file = flash.path
    vfs.umount("/")
    vfs.VfsLfs2.mkfs(flash)
    vfs.mount(vfs.VfsLfs2(flash), "/")

    def restore():
        vfs.umount("/")
        vfs.mount(vfs.VfsPosix(), "/")
        flash.f.close()
        os.remove(host_file)

    _CLEANUP.append(restore)
    os.mkdir("/d")
    os.mkdir("/app")
    for path, data in (("/secrets.json", SECRET), ("/secrets.json.bak", SECRET), ("/lock", b"L"),
                       ("/config.json", b'{"role":"node"}'), ("/d/x.txt", b"x" * 700)):
        with open(path, "wb") as f:
            f.write(data)
    digest = binascii.hexlify(hashlib.sha256(SECRET).digest())
    port = _Port()
    con = Console(port, Clk())
    ops = FileOps(con)
    for op, method, _auth in OPS:
        con.register(op, getattr(ops, method))  # unlocked: every path reaches the file code

    def spelling(rng):
        p = rng.pick(PATHS).encode()
        for _ in range(rng.below(3)):
            i = rng.below(len(p) + 1)
            p = p[:i] + rng.pick(SPELL) + p[i:]
        return p

    def request(rng, rid, op, args):
        body = b'{"id":%d,"op":"%s","args":{%s}}' % (rid, op, b",".join(b'"%s":%s' % kv for kv in args))
        return b"~" + body + b"|" + b"%08x" % (binascii.crc32(body) & 0xFFFFFFFF) + b"\n"

    def gen(rng):
        path = b'"' + _json_escape(spelling(rng)) + b'"'
        k = rng.below(9)
        if k < 6:
            op = rng.pick((b"fs.ls", b"fs.stat", b"fs.get", b"fs.rm", b"fs.mkdir", b"fs.unpack"))
            args = [(b"path", path)]
            if op == b"fs.get" and rng.below(2):
                args.append((b"off", b"%d" % rng.below(800)))
            return request(rng, 1 + rng.below(1000), op, args)
        data = rng.bytes(rng.below(20))
        d = binascii.hexlify(hashlib.sha256(data).digest())
        b64 = binascii.b2a_base64(data).rstrip()
        return (request(rng, 1, b"fs.put", [(b"path", path), (b"size", b"%d" % len(data)), (b"sha256", b'"%s"' % d)])
                + request(rng, 2, b"fs.write", [(b"off", b"0"), (b"data", b'"%s"' % b64)])
                + request(rng, 3, b"fs.end", []))

    rx = bytearray(64)

    def run(data):
        port.out = b""
        _feed(con, rx, data)
        out = port.out
        if b'"internal"' in out:
            raise RuntimeError("a command ended in an internal error: %s" % out[:200])
        if digest in out:
            raise RuntimeError("a protected file was read: %s" % out[:200])
        # the root's listing never shows a protected file ("/d/lock" is a file like any other)
        root_ls = set()
        for line in data.split(b"\n"):
            try:
                req = codec.decode(line)
            except Exception:
                continue
            args = req.get("args")
            if req.get("op") == "fs.ls" and isinstance(args, dict) and isinstance(args.get("path"), str):
                if normalise(args["path"]) == "/":
                    root_ls.add(req.get("id"))
        for line in out.split(b"\n")[:-1]:
            ans = codec.decode(line)
            ok = ans.get("ok")
            if ans.get("id") in root_ls and isinstance(ok, dict) and any(e[0] in HIDDEN for e in ok.get("entries", ())):
                raise RuntimeError("a protected file was listed: %s" % line[:200])
        for path, want in (("/secrets.json", SECRET), ("/secrets.json.bak", SECRET), ("/lock", b"L")):
            with open(path, "rb") as f:
                if f.read() != want:
                    raise RuntimeError("%s was changed" % path)

    return gen, run, ()


TARGETS = {"mac": _mac, "join_accept": _join_accept, "downlink": _downlink, "semtech": _semtech,
           "chirpstack": _chirpstack, "nmea": _nmea, "config": _config, "console": _console, "paths": _paths}


def main(argv):
    name, seed, count = argv[1], int(argv[2]), int(argv[3])
    gen, run, allowed = TARGETS[name]()
    corpus = [unhexlify(h) for h in argv[4:]]
    rng = Rng(seed)
    crashes = 0
    free = []  # free heap at each 10,000 inputs after the warm-up
    gc.collect()
    t0 = time.ticks_ms() if hasattr(time, "ticks_ms") else int(time.time() * 1000)
    total = len(corpus) + count
    for k in range(total):
        data = corpus[k] if k < len(corpus) else gen(rng)
        try:
            run(data)
        except allowed:
            pass
        except Exception as e:
            crashes += 1
            if crashes <= 20:  # each on its own line as found: nothing piles up in the heap
                print(json.dumps({"input": hexlify(data).decode(), "error": "%s: %s" % (type(e).__name__, e)}))
        if (k >= 1000 and (k - 1000) % 10000 == 0) or k == total - 1:
            for empty in _BEFORE_SAMPLE:
                empty()
            gc.collect()
            free.append(gc.mem_free())
    t1 = time.ticks_ms() if hasattr(time, "ticks_ms") else int(time.time() * 1000)
    while _CLEANUP:
        _CLEANUP.pop()()
    ms = max(1, t1 - t0)
    print(json.dumps({"target": name, "inputs": total, "crashes": crashes, "free": free, "ms": ms}))


if __name__ == "__main__":
    main(sys.argv)
