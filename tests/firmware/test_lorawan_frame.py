# LoRaWAN data frames in the firmware: uplinks built to the vectors' bytes, downlinks parsed, and
# every kind of bad downlink rejected with its code and nothing changed.
import json
from binascii import unhexlify

from fwtest import eq, raises
from spot.lorawan import crypto, frame

VECTORS = "../vectors/lorawan.json"
NWK = unhexlify("44024241ed4ce9a68c6a8bc055233fd3")
APP = unhexlify("ec925802ae430ca77fd3dd73cb2cc588")
DEVADDR = unhexlify("f17dbe49")  # 49BE7DF1 in wire order


def _vectors():
    with open(VECTORS) as f:
        return json.load(f)["data_frames"]


def test_uplinks_built_byte_for_byte_like_the_vectors():
    s = crypto.Session(NWK, APP)
    buf = bytearray(255)
    for c in _vectors():
        if c["dir"] != "up":
            continue
        phy = unhexlify(c["phy"])
        text = c.get("plaintext_ascii", "")
        fport = phy[8] if len(phy) > 12 else None  # (no FOpts in these vectors)
        n = frame.build_uplink(buf, s, DEVADDR, c["fcnt"], fport, text.encode())
        eq(bytes(buf[:n]), unhexlify(c["phy"]), c["phy"])


def test_downlink_vector_parses_with_ack():
    c = next(v for v in _vectors() if v["dir"] == "down")
    s = crypto.Session(NWK, APP)
    buf = bytearray(unhexlify(c["phy"]))
    d = frame.parse_downlink(buf, len(buf), s, DEVADDR, -1)
    eq((d.ack, d.fcnt, d.fport, d.payload, d.confirmed), (True, 2, 1, b"", False))


def _down(s, fcnt, fport=1, payload=b"hi", fopts=b"", devaddr=DEVADDR):
    # a downlink built with the uplink builder, then turned into MType 3 with a downlink MIC
    buf = bytearray(64)
    n = frame.build_uplink(buf, s, devaddr, fcnt, fport, b"", fopts)
    buf[0] = frame.UNCONFIRMED_DOWN << 5
    pos = n - 4
    if fport is not None:
        buf[pos:pos] = payload
        pos += len(payload)
        s.crypt(buf, pos - len(payload), pos, fport, crypto.DOWN, devaddr, fcnt)
    mic = s.mic(memoryview(buf)[:pos], crypto.DOWN, devaddr, fcnt)
    buf[pos : pos + 4] = mic.to_bytes(4, "little")
    return bytes(buf[: pos + 4])


def test_downlink_round_trip_and_fcnt_rollover():
    s = crypto.Session(NWK, APP)
    raw = _down(s, 0x1_0005, fopts=b"\x02\x05\x01")
    buf = bytearray(raw)
    d = frame.parse_downlink(buf, len(buf), s, DEVADDR, 0xFFF0)
    eq((d.fcnt, d.fport, d.payload, d.fopts), (0x1_0005, 1, b"hi", b"\x02\x05\x01"))
    eq(frame.full_fcnt(3, -1), 3)
    eq(frame.full_fcnt(0x0002, 0x2FFFF), 0x30002)


def test_bad_downlinks_rejected_without_touching_the_buffer():
    s = crypto.Session(NWK, APP)
    good = _down(s, 10)
    other = bytearray(DEVADDR)
    other[0] ^= 1
    cases = [
        ("short", good[:11]),
        ("mtype", bytes([0x40]) + good[1:]),
        ("devaddr", _down(s, 10, devaddr=bytes(other))),
        ("mic", good[:-1] + bytes([good[-1] ^ 1])),
        ("fopts", good[:5] + bytes([0x0F]) + good[6:]),
        ("replay", good),
        ("replay", _down(s, 9)),
    ]
    for i, (code, raw) in enumerate(cases):
        buf = bytearray(raw)
        last = 10 if code == "replay" else -1
        e = raises(frame.FrameError, frame.parse_downlink, buf, len(buf), s, DEVADDR, last)
        eq(e.code, code, "case %d" % i)
        eq(bytes(buf), raw, "buffer unchanged, case %d" % i)


def test_uplink_argument_errors():
    s = crypto.Session(NWK, APP)
    buf = bytearray(255)
    raises(ValueError, frame.build_uplink, buf, s, DEVADDR, 1, 0, b"\x02", b"\x02")
    raises(ValueError, frame.build_uplink, buf, s, DEVADDR, 1, 224, b"x")
    raises(ValueError, frame.build_uplink, buf, s, DEVADDR, 1, None, b"x")
    raises(ValueError, frame.build_uplink, buf, s, DEVADDR, 1, 1, bytes(250))
    raises(ValueError, frame.build_uplink, buf, s, DEVADDR, 1, 1, b"", bytes(16))
