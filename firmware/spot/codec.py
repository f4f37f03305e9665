# Console frame codec (device side). Spec: docs/console-protocol.md; vectors: tests/vectors/console.json.
#   frame = "~" body "|" crc "\n"   body: compact JSON object, printable ASCII only
#   crc   = CRC-32 (binascii.crc32) of body, 8 lowercase hex digits
import binascii
import json

from micropython import const

MAX_FRAME = const(1024)  # bytes per frame line the device sends, "~" to "\n" inclusive
# Requests are smaller than the ESP32's ~260-byte console receive buffer: with one request in
# flight, a whole request fits even while the firmware is busy, so nothing can overflow.
MAX_REQUEST = const(256)  # the host sends a line break first: 257 bytes on the wire
_MIN = const(12)  # "~{}|xxxxxxxx"


class FrameError(ValueError):
    def __init__(self, code, msg):
        super().__init__(msg)
        self.code = code


def _ascii(s):
    # json.dumps leaves non-ASCII characters raw on MicroPython; frames are ASCII only. Read as
    # UTF-8 bytes: indexing a str makes each distinct character a permanent interned name (about
    # 27 bytes of heap each), so a stream of unusual characters would have used the heap up.
    b = s.encode()
    out = bytearray()
    i, n = 0, len(b)
    while i < n:
        c = b[i]
        if c < 0x80:
            out.append(c)
            i += 1
            continue
        k = 3 if c >= 0xF0 else 2 if c >= 0xE0 else 1
        c &= 0x07 if k == 3 else 0x0F if k == 2 else 0x1F
        for j in range(i + 1, min(i + 1 + k, n)):
            c = (c << 6) | (b[j] & 0x3F)
        i += 1 + k
        if c < 0x10000:
            out += b"\\u%04x" % c
        else:
            c -= 0x10000
            out += b"\\u%04x\\u%04x" % (0xD800 + (c >> 10), 0xDC00 + (c & 0x3FF))
    return out.decode()


def body(obj):
    """Compact JSON as ASCII text. A str, not bytes: it is checksummed and written as it is (a
    bytes copy would double the largest allocation of an answer)."""
    s = json.dumps(obj, separators=(",", ":"))
    if len(memoryview(s)) != len(s):  # pyright: ignore[reportArgumentType] (MicroPython: UTF-8 bytes vs chars)
        s = _ascii(s)
    return s


def dumps(obj):
    """Compact JSON as ASCII bytes."""
    return body(obj).encode()


def _parts(obj):
    text = body(obj)
    if len(text) + 11 > MAX_FRAME:
        raise FrameError("too_long", "frame of %d bytes exceeds %d" % (len(text) + 11, MAX_FRAME))
    return text, b"|%08x\n" % (binascii.crc32(text) & 0xFFFFFFFF)


def encode(obj):
    """One frame line for a JSON object, or FrameError('too_long') if over MAX_FRAME."""
    text, tail = _parts(obj)
    return b"~" + text.encode() + tail


def write(port, obj):
    """Write the frame of obj in three pieces, without building the line: everything that can
    fail (no heap, too long) fails before the first byte goes out."""
    text, tail = _parts(obj)
    port.write(b"~")
    port.write(text)
    port.write(tail)


def is_frame(line):
    return len(line) >= 2 and line[0] == 0x7E and line[1] == 0x7B  # "~{"


def decode(line):
    """Parse one line (without its line ending) into a dict; raise FrameError with a code."""
    n = len(line)
    if n < _MIN or not is_frame(line) or line[n - 9] != 0x7C:  # "|"
        raise FrameError("bad_frame", "not a frame")
    body = line[1 : n - 9]
    # exactly the 8 lowercase hex digits encode() writes (int() would accept "D" for "d")
    field = bytes(line[n - 8 :])
    if field.strip(b"0123456789abcdef"):
        raise FrameError("bad_frame", "bad CRC field")
    if field != b"%08x" % (binascii.crc32(body) & 0xFFFFFFFF):
        raise FrameError("bad_crc", "CRC mismatch")
    try:
        obj = json.loads(body)
    except ValueError:
        raise FrameError("bad_json", "body is not JSON")
    if not isinstance(obj, dict):
        raise FrameError("bad_json", "body is not a JSON object")
    return obj


def canonical(obj):
    """Sorted-key compact ASCII JSON, byte-identical to CPython's
    json.dumps(obj, sort_keys=True, separators=(",", ":")). Used for signed commands; no floats."""
    if isinstance(obj, dict):
        keys = sorted(obj)
        parts = [dumps(k) + b":" + canonical(obj[k]) for k in keys]
        return b"{" + b",".join(parts) + b"}"
    if isinstance(obj, (list, tuple)):
        return b"[" + b",".join([canonical(v) for v in obj]) + b"]"
    if isinstance(obj, float):
        raise FrameError("bad_args", "floats cannot be signed")
    return dumps(obj)


class LineAssembler:
    """Splits a byte stream into lines of at most MAX_REQUEST bytes with their LF, in one
    preallocated buffer.

    feed(buf, start, end) looks at buf[start:end] (buf a bytearray) and returns (next, line):
    `next` is where to continue, `line` a memoryview valid until the next feed, TOO_LONG when
    a line overflowed the buffer (its bytes were dropped), or None when no line is complete.
    """

    TOO_LONG = const(1)

    def __init__(self, size=MAX_REQUEST):
        self._buf = bytearray(size)
        self._mv = memoryview(self._buf)
        self._n = 0
        self._overflow = False

    def feed(self, buf, start, end):
        i = buf.find(b"\n", start, end)
        stop = end if i < 0 else i
        take = stop - start
        if take and not self._overflow:
            if self._n + take >= len(self._buf):  # the bound counts the LF: size - 1 bytes before it
                self._overflow = True
            else:
                self._mv[self._n : self._n + take] = memoryview(buf)[start:stop]
                self._n += take
        if i < 0:
            return end, None
        n = self._n
        self._n = 0
        if self._overflow:
            self._overflow = False
            return i + 1, LineAssembler.TOO_LONG
        if n and self._buf[n - 1] == 0x0D:  # "\r\n"
            n -= 1
        return i + 1, self._mv[:n]
