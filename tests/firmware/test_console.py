# The device console: dispatch, errors with codes, events with sequence numbers, and chunked file
# transfer with SHA-256 check and atomic replace, through a scripted port.
import asyncio
import binascii
import hashlib
import os

from fwtest import RamFlash, eq, mount
from spot import codec
from spot.clock import Clock
from spot.console import CommandError, Console, arg
from spot.fsops import FileOps


class ScriptPort:
    """Feeds scripted input in small pieces, records output frames."""

    def __init__(self, data, piece=7):
        self.data = data
        self.piece = piece
        self.out = bytearray()

    async def readinto(self, buf):
        if not self.data:
            await asyncio.sleep_ms(10_000)
            return 0
        n = min(self.piece, len(buf), len(self.data))
        buf[:n] = self.data[:n]
        self.data = self.data[n:]
        await asyncio.sleep_ms(0)
        return n

    def write(self, data):
        self.out += data

    def frames(self):
        out = []
        for line in bytes(self.out).split(b"\n"):
            if line:
                out.append(codec.decode(line))
        return out


def _console(data, piece=7):
    port = ScriptPort(data, piece)
    c = Console(port, Clock())

    async def echo(args):
        return {"n": arg(args, "n", int)}

    async def boom(args):
        raise ZeroDivisionError("bug")

    async def refuse(args):
        raise CommandError("denied", "no")

    c.register("echo", echo)
    c.register("boom", boom)
    c.register("refuse", refuse)
    return c, port


def _serve(c, ms=200):
    async def main():
        t = asyncio.create_task(c.serve())
        await asyncio.sleep_ms(ms)
        t.cancel()

    asyncio.run(main())


def _req(rid, op, args=None):
    msg = {"id": rid, "op": op}
    if args is not None:
        msg["args"] = args
    return codec.encode(msg)


def test_requests_answered_in_order_across_small_reads():
    data = _req(1, "echo", {"n": 5}) + b"boot noise\r\n" + _req(2, "echo", {"n": 6})
    c, port = _console(data)
    _serve(c)
    eq(port.frames(), [{"id": 1, "ok": {"n": 5}}, {"id": 2, "ok": {"n": 6}}])
    eq(c.counters["rx_lines"], 1)


def test_errors_carry_codes_and_console_survives():
    bad_crc = bytearray(_req(3, "echo", {"n": 1}))
    bad_crc[-3] = ord("0") if bad_crc[-3] != ord("0") else ord("1")
    too_long = b"~{" + b"x" * 2000 + b"\n"
    data = (_req(1, "nosuch") + bytes(bad_crc) + too_long + _req(2, "echo", {"n": "5"})
            + _req(4, "boom") + _req(5, "refuse") + codec.encode({"op": "echo"}) + _req(6, "echo", {"n": 9}))
    c, port = _console(data, piece=64)
    _serve(c, 400)
    got = port.frames()
    codes = [(m.get("id"), m["err"]["code"]) for m in got if "err" in m]
    eq(codes, [(1, "unknown_op"), (None, "bad_crc"), (None, "too_long"), (2, "bad_args"), (4, "internal"),
               (5, "denied"), (None, "bad_request")])
    eq(got[-1], {"id": 6, "ok": {"n": 9}})


def _sized(rid, total):
    """An echo request whose line is exactly `total` bytes with its LF."""
    line = _req(rid, "echo", {"n": 1, "pad": ""})
    return _req(rid, "echo", {"n": 1, "pad": "x" * (total - len(line))})


def test_the_request_bound_counts_the_line_feed_and_ids_are_1_to_2_24_minus_1():
    """docs/console-protocol.md: at most 256 bytes from '~' to LF inclusive; ids 1..2^24-1."""
    fit, over = _sized(1, codec.MAX_REQUEST), _sized(2, codec.MAX_REQUEST + 1)
    eq((len(fit), len(over)), (256, 257))
    data = fit + over + b"".join(_req(rid, "echo", {"n": 2}) for rid in (0, -1, 1 << 24, 10 ** 20, True))
    data += _req(0xFFFFFF, "echo", {"n": 3})
    c, port = _console(data, piece=64)
    _serve(c, 400)
    got = port.frames()
    eq(got[0], {"id": 1, "ok": {"n": 1}})
    eq([(m.get("id"), m["err"]["code"]) for m in got[1:-1]], [(None, "too_long")] + [(None, "bad_request")] * 5)
    eq(got[-1], {"id": 0xFFFFFF, "ok": {"n": 3}})


def test_events_are_numbered():
    c, port = _console(b"")
    c.event("boot", {"x": 1})
    c.event("stats")
    c.events_enabled = False
    c.event("stats")  # muted, but still counted so the host sees the gap
    c.event("fault", {"e": "x"})
    got = port.frames()
    eq([(m["ev"], m["seq"]) for m in got], [("boot", 0), ("stats", 1), ("fault", 3)])


_flash = []


def _fs():
    flash = RamFlash(16)
    _flash.append(flash)
    mount(flash, "/f", mkfs=True)


def _run(coro):
    return asyncio.run(coro)


def _put(ops, path, data, chunk=None, corrupt=False):
    digest = binascii.hexlify(hashlib.sha256(data).digest()).decode()
    res = _run(ops.put({"path": path, "size": len(data), "sha256": digest}))
    chunk = chunk or res["chunk"]
    off = 0
    while off < len(data):
        piece = data[off : off + chunk]
        if corrupt and off == 0:
            piece = b"\x00" + piece[1:]
        off = _run(ops.write({"off": off, "data": binascii.b2a_base64(piece).decode().rstrip()}))["off"]
    return _run(ops.end({}))


def test_put_get_stat_round_trip_and_listing():
    _fs()
    ops = FileOps()
    data = bytes(range(256)) * 9
    eq(_put(ops, "/f/a.bin", data), {"size": len(data)})
    st = _run(ops.stat({"path": "/f/a.bin"}))
    eq(st["size"], len(data))
    eq(st["sha256"], binascii.hexlify(hashlib.sha256(data).digest()).decode())
    back = b""
    while len(back) < len(data):
        r = _run(ops.get({"path": "/f/a.bin", "off": len(back)}))
        back += binascii.a2b_base64(r["data"])
    eq(back, data)
    eq(r["eof"], True)
    names = [e[0] for e in _run(ops.ls({"path": "/f"}))["entries"]]
    eq(names, ["a.bin"])


def test_bad_hash_keeps_old_file_and_leaves_no_part():
    _fs()
    ops = FileOps()
    _put(ops, "/f/cfg", b"old content")
    try:
        _put(ops, "/f/cfg", b"new content!", corrupt=True)
        raise AssertionError("hash mismatch not detected")
    except CommandError as e:
        eq(e.code, "hash_mismatch")
    with open("/f/cfg", "rb") as f:
        eq(f.read(), b"old content")
    eq(sorted(os.listdir("/f")), ["cfg"])


def test_interrupted_put_leaves_old_file():
    _fs()
    ops = FileOps()
    _put(ops, "/f/x", b"v1")
    digest = binascii.hexlify(hashlib.sha256(b"v2 longer").digest()).decode()
    _run(ops.put({"path": "/f/x", "size": 9, "sha256": digest}))
    _run(ops.write({"off": 0, "data": binascii.b2a_base64(b"v2 ").decode().rstrip()}))
    ops2 = FileOps()  # as after a reset: the transfer is gone
    from spot.fsnames import sweep_parts

    ops.abort()
    sweep_parts("/f")
    with open("/f/x", "rb") as f:
        eq(f.read(), b"v1")
    eq(os.listdir("/f"), ["x"])
    try:
        _run(ops2.write({"off": 0, "data": ""}))
    except CommandError as e:
        eq(e.code, "no_transfer")


def test_wrong_offset_and_protected_paths():
    _fs()
    ops = FileOps()
    digest = binascii.hexlify(hashlib.sha256(b"abcdef").digest()).decode()
    _run(ops.put({"path": "/f/y", "size": 6, "sha256": digest}))
    _run(ops.write({"off": 0, "data": binascii.b2a_base64(b"abc").decode().rstrip()}))
    for args, code in (({"off": 0, "data": "YWJj"}, "bad_offset"), ({"off": 3, "data": "!!!!"}, "bad_args"),
                       ({"off": 3, "data": "YWJ"}, "bad_args"), ({"off": 3, "data": 5}, "bad_args")):
        try:
            _run(ops.write(args))
            raise AssertionError("accepted %r" % args)
        except CommandError as e:
            eq(e.code, code)
    for path, code in (("/secrets.json", "denied"), ("rel/path", "bad_args"), ("/a/../b", "bad_args"),
                       ("/f/y.part", "denied")):
        try:
            _run(ops.stat({"path": path}))
            raise AssertionError("accepted %s" % path)
        except CommandError as e:
            eq(e.code, code)
    try:
        _run(ops.stat({"path": "/f/missing"}))
    except CommandError as e:
        eq(e.code, "not_found")


def teardown_module():
    import vfs

    vfs.umount("/f")
    while _flash:
        _flash.pop().close()



def test_out_of_memory_answer_is_a_refusal_not_a_crash():
    import spot.console as console_mod

    real = codec.body
    fails = [0]

    def tight(obj):  # the heap at its peak: the full answer (and the event) cannot be built
        if "ok" in obj or "ev" in obj:
            fails[0] += 1
            raise MemoryError("memory allocation failed")
        return real(obj)

    c, port = _console(b"")
    console_mod.codec.body = tight
    try:
        c.send({"id": 5, "ok": {"big": "x" * 400}})
        c.event("stats", {"x": 1})
    finally:
        console_mod.codec.body = real
    eq(port.frames(), [{"id": 5, "err": {"code": "no_memory", "msg": "out of memory: retry"}}])
    eq(fails[0], 4)  # each tried again after a collection
    eq(c.counters["tx_no_memory"], 2)
    eq(c.seq, 1)  # the lost event still took its number: the host sees the gap
