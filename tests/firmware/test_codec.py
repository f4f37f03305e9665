# Console frame codec (firmware side) against the shared vectors and its line assembler.
import binascii
import json

from fwtest import eq, raises
from spot import codec as frame

VECTORS = "../vectors/console.json"


def _vectors():
    with open(VECTORS) as f:
        return json.load(f)


def test_crc32_check_value():
    v = _vectors()["crc32_check"]
    eq("%08x" % (binascii.crc32(v["input"].encode()) & 0xFFFFFFFF), v["crc"])


def test_decode_vectors():
    for case in _vectors()["frames"]:
        eq(frame.decode(case["line"].encode()), case["obj"], case["line"])


def test_encode_round_trips_and_matches_single_order():
    for case in _vectors()["frames"]:
        line = frame.encode(case["obj"])
        eq(line[-1:], b"\n")
        eq(frame.decode(line[:-1]), case["obj"])
        for b in line[:-1]:
            if not 0x20 <= b < 0x7F:
                raise AssertionError("non-printable byte %d in %r" % (b, line))
        if _single_keys(case["obj"]):  # dict order is not kept by MicroPython beyond one key
            eq(line[:-1], case["line"].encode(), "exact bytes")


def _single_keys(obj):
    if isinstance(obj, dict):
        return len(obj) <= 1 and all(_single_keys(v) for v in obj.values())
    if isinstance(obj, list):
        return all(_single_keys(v) for v in obj)
    return True


def test_invalid_vectors_rejected_with_code():
    for case in _vectors()["invalid"]:
        e = raises(frame.FrameError, frame.decode, case["line"].encode())
        eq(e.code, case["code"], case["line"])


def test_canonical_vectors():
    for case in _vectors()["canonical"]:
        eq(frame.canonical(case["obj"]), case["bytes"].encode())
    raises(frame.FrameError, frame.canonical, {"x": 1.5})


def test_encode_refuses_frames_over_bound():
    raises(frame.FrameError, frame.encode, {"data": "x" * frame.MAX_FRAME})
    ok = frame.encode({"d": "x" * (frame.MAX_FRAME - 19)})
    eq(len(ok), frame.MAX_FRAME)


def _feed_all(asm, chunks):
    lines = []
    for chunk in chunks:
        buf = bytearray(chunk)
        start = 0
        while start < len(buf):
            start, line = asm.feed(buf, start, len(buf))
            if line is frame.LineAssembler.TOO_LONG:
                lines.append("TOO_LONG")
            elif line is not None:
                lines.append(bytes(line))
    return lines


def test_assembler_splits_across_chunks_and_strips_cr():
    asm = frame.LineAssembler(64)
    got = _feed_all(asm, [b"ab", b"c\r\nde", b"f\n\n", b"g"])
    eq(got, [b"abc", b"def", b""])
    eq(_feed_all(asm, [b"h\n"]), [b"gh"])


def test_assembler_drops_overlong_line_then_recovers():
    asm = frame.LineAssembler(16)
    got = _feed_all(asm, [b"x" * 10, b"y" * 10, b"zz\nok\n"])
    eq(got, ["TOO_LONG", b"ok"])


def test_assembler_does_not_allocate_per_byte():
    import gc

    asm = frame.LineAssembler()
    data = bytearray(b"~" + b"a" * 200 + b"\n")
    n = len(data)
    gc.collect()
    before = gc.mem_alloc()
    for _ in range(20):
        start = 0
        while start < n:
            start, line = asm.feed(data, start, n)
    # a few small memoryview objects per line, never a copy of the line
    used = gc.mem_alloc() - before
    if used > 20 * 200:
        raise AssertionError("assembler allocated %d bytes for 20 lines" % used)


def test_unusual_characters_leave_no_heap_behind():
    """Indexing a str on MicroPython interns each distinct character for good (about 27 bytes of
    heap each): a stream of requests with unusual characters in an echoed name, a path or a config
    value would have used the heap up (found by make fuzz). Answers, paths and config values are
    read as UTF-8 bytes instead."""
    import gc

    from spot import ConfigError, fsops, schema

    def text(first):  # 30 CJK characters never seen before, made without chr() (which interns)
        return json.loads('"' + "".join("\\u%04x" % (first + i) for i in range(30)) + '"')

    def use(s):
        frame.encode({"id": 1, "err": {"code": "unknown_op", "msg": "unknown command '%s'" % s}})
        eq(fsops.normalise("/" + s), "/" + s)
        eq(schema.check("name", s[:30]), s[:30])
        raises(ConfigError, schema.check, "dev_eui", s[:16])

    use(text(0x4000))  # warm-up
    gc.collect()
    before = gc.mem_free()
    for k in range(10):
        use(text(0x5000 + 30 * k))
    gc.collect()
    eq(before - gc.mem_free() < 1024, True, "heap kept by 300 new characters: %d" % (before - gc.mem_free()))
    eq(frame.encode({"s": json.loads('"\\u00e9\\ud83d\\ude00"')}).startswith(b'~{"s":"\\u00e9\\ud83d\\ude00"}'), True)
