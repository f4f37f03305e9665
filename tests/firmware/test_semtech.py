# Semtech UDP protocol v2 in the firmware: the writer's numbers (tmst up to 2^32 - 1 from halves,
# MHz with Hz precision, SNR tenths, base64), rxpk and stat objects, header parsing, the txpk
# checks (every refusal), TX_ACK, and the gateway EUI.
import gc
import json
from binascii import a2b_base64, b2a_base64, hexlify

from fwtest import eq, raises
from spot.hotspot import semtech as s
from spot.radio.base import Packet


def _text(w):
    return bytes(w.buf[: w.n]).decode()


def _w(fn, *args):
    w = s.Writer(64)
    getattr(w, fn)(*args)
    return _text(w)


def test_writer_numbers():
    for v in (0, 7, 10, 99, 100, 65535, 1 << 29):
        eq(_w("uint", v), str(v))
    eq(_w("int", -35), "-35")
    for hi, lo in ((0, 0), (0, 5), (1, 0), (0x4000, 0), (0xFFFF, 0xFFFF), (0xD159, 0x8A63)):
        eq(_w("u32", hi, lo), str(hi * 65536 + lo), "u32")
    eq(_w("mhz", 868100000), "868.1")
    eq(_w("mhz", 866349812), "866.349812")
    eq(_w("mhz", 869000000), "869")
    eq(_w("mhz", 923200005), "923.200005")
    eq(_w("tenths", 23), "5.8")  # 5.75 dB
    eq(_w("tenths", -30), "-7.5")
    eq(_w("tenths", -1), "-0.3")
    eq(_w("tenths", 0), "0.0")
    eq(_w("tenths", 1), "0.3")
    for n in range(0, 8):
        data = bytes(range(200, 200 + n))
        w = s.Writer(64)
        w.b64(data, n)
        eq(_text(w), b2a_base64(data).decode().strip(), "b64 %d" % n)
    eq(_w("utc", (2013, 3, 31, 16, 21, 17, 528002), True), "2013-03-31T16:21:17.528002Z")
    eq(_w("utc", (2014, 1, 12, 8, 59, 28, 0), False), "2014-01-12 08:59:28 GMT")


def test_writer_refuses_to_overflow_its_buffer():
    w = s.Writer(12)
    w.raw(b"0123456789")
    eq(raises(s.ProtocolError, w.raw, b"abc").code, "full")
    eq(raises(s.ProtocolError, w.u32, 0xFFFF, 0xFFFF).code, "full")
    eq(w.n, 10)  # nothing half-written


def _packet(payload):
    p = Packet()
    p.buf[: len(payload)] = payload
    p.length = len(payload)
    p.freq, p.sf, p.bw, p.cr = 868300000, 9, 125000, 5
    p.rssi, p.snr_x4 = -107, -27
    return p


def test_rxpk_fields_and_types():
    payload = bytes(range(23))
    w = s.Writer()
    n = s.header(w.buf, 0xBEEF, s.PUSH_DATA, s.gateway_eui("024c53115089"))
    w.n = n
    w.raw(b'{"rxpk":[')
    s.rxpk(w, _packet(payload), 0xFFFF, 0xFFF0, utc=(2026, 11, 22, 9, 5, 7, 12))
    w.byte(0x2C)
    s.rxpk(w, _packet(b"\x40"), 0, 17, stat=-1)
    w.raw(b"]}")
    d = w.buf[: w.n]
    eq(bytes(d[:4]), b"\x02\xbe\xef\x00")
    eq(hexlify(d[4:12]).decode(), "024c53fffe115089")
    body = json.loads(bytes(d[12:]))
    a, b = body["rxpk"]
    eq(a["time"], "2026-11-22T09:05:07.000012Z")
    eq(a["tmst"], 0xFFFFFFF0)
    eq((a["chan"], a["rfch"], a["freq"], a["stat"], a["modu"]), (0, 0, 868.3, 1, "LORA"))
    eq((a["datr"], a["codr"], a["rssi"], a["lsnr"], a["size"]), ("SF9BW125", "4/5", -107, -6.8, 23))
    eq(a2b_base64(a["data"]), payload)
    eq("time" in b, False)  # no valid time known: left out
    eq((b["tmst"], b["stat"], b["size"], a2b_base64(b["data"])), (17, -1, 1, b"\x40"))


def test_rxpk_allocates_nothing_once_warm():
    w = s.Writer()
    p = _packet(bytes(51))
    s.rxpk(w, p, 0xD159, 0x8A63)
    gc.collect()
    before = gc.mem_alloc()
    for _ in range(20):
        w.n = 0
        s.rxpk(w, p, 0xD159, 0x8A63)
    used = gc.mem_alloc() - before
    if used >= 20 * 16:  # one heap block per packet would be at least this
        raise AssertionError("rxpk allocated %d bytes for 20 packets" % used)


def test_stat_object():
    c = {"rxnb": 5, "rxok": 4, "rxfw": 4, "ackr": 100.0, "dwnb": 1, "txnb": 1}
    o = s.stat_json(c)
    eq(sorted(o), ["ackr", "dwnb", "rxfw", "rxnb", "rxok", "txnb"])  # no time, no position
    o = s.stat_json(c, utc=(2014, 1, 12, 8, 59, 28, 0), position=(46.24, 3.2523, 145.4))
    eq((o["time"], o["lati"], o["long"], o["alti"]), ("2014-01-12 08:59:28 GMT", 46.24, 3.2523, 145))


def test_parse_headers():
    eq(s.parse(b"\x02\x12\x34\x01"), (s.PUSH_ACK, 0x1234, None))
    eq(s.parse(b"\x02\x00\x07\x04"), (s.PULL_ACK, 7, None))
    ident, token, body = s.parse(b'\x02\xab\xcd\x03{"txpk":{}}')
    eq((ident, token, bytes(body)), (s.PULL_RESP, 0xABCD, b'{"txpk":{}}'))
    eq(raises(s.ProtocolError, s.parse, b"\x02\x00\x01").code, "short")
    eq(raises(s.ProtocolError, s.parse, b"").code, "short")
    eq(raises(s.ProtocolError, s.parse, b"\x01\x00\x01\x01").code, "version")
    eq(raises(s.ProtocolError, s.parse, b"\x02\x00\x01\x00" + bytes(8)).code, "ident")  # PUSH_DATA
    eq(raises(s.ProtocolError, s.parse, b"\x02\x00\x01\x09").code, "ident")
    eq(s.parse(b"\x02\x12\x34\x01garbage", 4), (s.PUSH_ACK, 0x1234, None))


GOOD = {"imme": False, "tmst": 4294967000, "freq": 869.525, "rfch": 0, "powe": 14, "modu": "LORA",
        "datr": "SF12BW125", "codr": "4/5", "ipol": True, "size": 3, "data": "AQID"}


def _txpk(**changes):
    o = dict(GOOD)
    for k, v in changes.items():
        if v is None:
            del o[k]
        else:
            o[k] = v
    return json.dumps({"txpk": o}).encode()


def test_txpk_accepted():
    # no ncrc: sent with a CRC, as Semtech's packet forwarder does (and ChirpStack's downlinks ask)
    t = s.parse_txpk(_txpk())
    eq((t.imme, t.tmst, t.freq, t.power, t.sf, t.bw, t.cr, t.ipol, t.preamble, t.crc, t.data),
       (False, 4294967000, 869525000, 14, 12, 125000, 5, True, 8, True, b"\x01\x02\x03"))
    eq(s.parse_txpk(_txpk(ncrc=True)).crc, False)
    t = s.parse_txpk(_txpk(imme=True, tmst=None, freq=868.1, datr="SF7BW250", codr="4/8", prea=12, ncrc=False,
                           data="AQI", size=2))
    eq((t.imme, t.freq, t.sf, t.bw, t.cr, t.preamble, t.crc, t.data), (True, 868100000, 7, 250000, 8, 12, True,
                                                                      b"\x01\x02"))


def test_txpk_refusals():
    cases = [
        (b"{not json", "json"), (b"42", "json"), (b"null", "json"), (b"\x00", "json"), (b'{"txpk":3}', "json"),
        (b'{"rxpk":{}}', "json"), (_txpk(tmst=None), "txpk"), (_txpk(freq=None), "txpk"), (_txpk(datr=None), "txpk"),
        (_txpk(size=None), "txpk"), (_txpk(data=None), "txpk"), (_txpk(size=4), "txpk"),
        (_txpk(data="A" * 344, size=258), "txpk"), (_txpk(tmst=-1), "txpk"), (_txpk(tmst=1 << 32), "txpk"),
        (_txpk(tmst="5"), "txpk"), (_txpk(imme="yes"), "txpk"), (_txpk(freq=869525000), "txpk"),
        (_txpk(modu="FSK"), "txpk"), (_txpk(datr="SF13BW125"), "txpk"), (_txpk(datr="SF7BW126"), "txpk"),
        (_txpk(datr=50000), "txpk"), (_txpk(codr="4/9"), "txpk"), (_txpk(data="!!!!"), "txpk"),
        (_txpk(prea=2), "txpk"), (_txpk(powe=14.5), "txpk"), (_txpk(size=True), "txpk"),
        # a2b_base64 skips characters outside the alphabet: "YWJj!" would have been b"abc"
        (_txpk(data="YWJj!", size=3), "txpk"), (_txpk(data="YW Jj", size=3), "txpk"),
        (_txpk(data="YW=j", size=1), "txpk"),
    ]
    for body, code in cases:
        e = raises(s.ProtocolError, s.parse_txpk, body)
        eq(e.code, code, "%r" % body[:40])


def test_tx_ack_echoes_the_token():
    buf = bytearray(64)
    eui = s.gateway_eui("024c53115089")
    n = s.tx_ack(buf, 0x0A0B, eui, s.TX_FREQ)
    eq(bytes(buf[:12]), b"\x02\x0a\x0b\x05" + eui)
    eq(json.loads(bytes(buf[12:n])), {"txpk_ack": {"error": "TX_FREQ"}})


def test_gateway_eui_from_mac():
    eq(hexlify(s.gateway_eui("A4CF12345678")).decode(), "a4cf12fffe345678")
