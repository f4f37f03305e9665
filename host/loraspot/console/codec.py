"""Console frame codec (host side); twin of firmware/spot/codec.py, checked by the same vectors.

    frame = "~" body "|" crc "\\n"   body: compact JSON object, printable ASCII only
    crc   = CRC-32 of body as 8 lowercase hex digits
"""

from __future__ import annotations

import json
import zlib

from loraspot.errors import ProtocolError

MAX_FRAME = 1024  # bound of frames from the device
MAX_REQUEST = 256  # bound of requests to the device (fits its console receive buffer)
_MIN = 12


class FrameError(ProtocolError):
    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


def dumps(obj: object) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=True).encode()


def encode(obj: dict, max_frame: int = MAX_FRAME) -> bytes:
    body = dumps(obj)
    if len(body) + 11 > max_frame:
        raise FrameError("too_long", f"frame of {len(body) + 11} bytes exceeds {max_frame}")
    return b"~" + body + b"|%08x\n" % zlib.crc32(body)


_HEX = b"0123456789abcdef"


def is_frame(line: bytes) -> bool:
    return line[:2] == b"~{"


def decode(line: bytes) -> dict:
    n = len(line)
    if n < _MIN or not is_frame(line) or line[n - 9 : n - 8] != b"|":
        raise FrameError("bad_frame", "not a frame")
    body = line[1 : n - 9]
    # the field must be what encode() writes, 8 lowercase hex digits: parsing it as a number
    # would let a changed letter case, a sign or a space through
    field = line[n - 8 :]
    if field.strip(_HEX):
        raise FrameError("bad_frame", "bad CRC field")
    if field != b"%08x" % zlib.crc32(body):
        raise FrameError("bad_crc", "CRC mismatch")
    try:
        obj = json.loads(body)
    except ValueError:
        raise FrameError("bad_json", "body is not JSON") from None
    if not isinstance(obj, dict):
        raise FrameError("bad_json", "body is not a JSON object")
    return obj


def canonical(obj: object) -> bytes:
    """The byte string a signed command's arguments are authenticated over (no floats)."""

    def no_floats(o: object) -> None:
        if isinstance(o, float):
            raise FrameError("bad_args", "floats cannot be signed")
        if isinstance(o, dict):
            for v in o.values():
                no_floats(v)
        elif isinstance(o, list | tuple):
            for v in o:
                no_floats(v)

    no_floats(obj)
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()
