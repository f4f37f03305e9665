# Semtech UDP packet forwarder protocol, version 2 (Lora-net packet_forwarder PROTOCOL.TXT, v1.3
# of that document): datagram headers, the upstream JSON (rxpk, stat) written into a buffer
# allocated once, the downstream JSON (txpk) checked field by field, and TX_ACK.
#
# Header: byte 0 protocol version (2), bytes 1-2 token, byte 3 identifier, then for PUSH_DATA,
# PULL_DATA and TX_ACK the 8-byte gateway EUI, then JSON (PUSH_DATA, PULL_RESP, TX_ACK).
import json

from micropython import const

from spot.b64 import b64decode

try:
    from typing import Any  # for the type checker only; annotations are not evaluated on the board
except ImportError:
    pass

VERSION = const(2)
PUSH_DATA = const(0x00)
PUSH_ACK = const(0x01)
PULL_DATA = const(0x02)
PULL_RESP = const(0x03)
PULL_ACK = const(0x04)
TX_ACK = const(0x05)
MAX_DATAGRAM = const(2048)

# txpk_ack.error values (PROTOCOL.TXT section 6)
NONE = "NONE"
TOO_LATE = "TOO_LATE"
TOO_EARLY = "TOO_EARLY"
COLLISION_PACKET = "COLLISION_PACKET"
TX_FREQ = "TX_FREQ"
TX_POWER = "TX_POWER"
GPS_UNLOCKED = "GPS_UNLOCKED"  # timed by GPS time (tmms, gpsEpoch), which this gateway does not keep
GPS_ONLY = const(-1)  # Txpk.tmst of a downlink timed by GPS time only
# not in PROTOCOL.TXT: ChirpStack's TxAckStatus name, which its Gateway Bridge maps txpk_ack.error by
# (internal/backend/semtechudp/backend.go)
DUTY_CYCLE_OVERFLOW = "DUTY_CYCLE_OVERFLOW"

_B64 = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
_BW = {125: 125000, 250: 250000, 500: 500000, 62: 62500, 41: 41700, 31: 31250, 20: 20800, 15: 15600, 10: 10400,
       7: 7800}


class ProtocolError(ValueError):
    """A datagram or txpk this gateway will not act on; `code` names the rule it broke."""

    def __init__(self, code, msg):
        super().__init__(msg)
        self.code = code


def gateway_eui(mac_hex):
    """The gateway EUI (8 bytes) from the board's MAC-48, as the header carries it."""
    from binascii import unhexlify

    from spot import eui64

    return unhexlify(eui64(mac_hex))


def header(buf, token, ident, eui=None):
    """Write the 4-byte header (and the EUI) at the start of buf; return the length written."""
    buf[0] = VERSION
    buf[1] = (token >> 8) & 0xFF
    buf[2] = token & 0xFF
    buf[3] = ident
    if eui is None:
        return 4
    buf[4:12] = eui
    return 12


def parse(data, n=-1):
    """(identifier, token, JSON bytes or None) of a received datagram; ProtocolError if it is
    short, of another version, or of an identifier a gateway does not receive."""
    if n < 0:
        n = len(data)
    if n < 4:
        raise ProtocolError("short", "datagram of %d bytes (at least 4)" % n)
    if data[0] != VERSION:
        raise ProtocolError("version", "protocol version %d (expected 2)" % data[0])
    ident = data[3]
    token = (data[1] << 8) | data[2]
    if ident in (PUSH_ACK, PULL_ACK):
        return ident, token, None
    if ident == PULL_RESP:
        return ident, token, memoryview(data)[4:n]  # json.loads reads it in place
    raise ProtocolError("ident", "identifier 0x%02x is not sent to a gateway" % ident)


class Writer:
    """JSON text written into one buffer allocated up front: no heap per packet for the numbers,
    the base64 payload or the 32-bit tmst (which would be a heap integer on an ESP32)."""

    def __init__(self, size=MAX_DATAGRAM):
        self.buf = bytearray(size)
        self.n = 0

    def raw(self, b):
        n = self.n
        end = n + len(b)
        if end > len(self.buf):
            raise ProtocolError("full", "datagram buffer full")
        self.buf[n:end] = b
        self.n = end

    def byte(self, c):
        if self.n >= len(self.buf):
            raise ProtocolError("full", "datagram buffer full")
        self.buf[self.n] = c
        self.n += 1

    def uint(self, v, width=1):
        """A non-negative small int in decimal, zero-padded to width."""
        digits = 1
        d = 10
        while d <= v:
            d *= 10
            digits += 1
        while digits < width:
            self.byte(0x30)
            width -= 1
        while digits:
            d //= 10
            self.byte(0x30 + (v // d) % 10)
            digits -= 1

    def int(self, v):
        if v < 0:
            self.byte(0x2D)
            v = -v
        self.uint(v)

    def u32(self, hi, lo):
        """hi * 65536 + lo in decimal, from two 16-bit halves (no integer above 2^30 is made)."""
        if hi == 0:
            self.uint(lo)
            return
        # long division by 10 on the halves; digits come out in reverse, so write them at the
        # end of the buffer first (at most 10) and move them into place
        end = len(self.buf)
        if self.n + 10 > end:
            raise ProtocolError("full", "datagram buffer full")
        k = end
        while hi or lo:
            r = hi % 10
            hi //= 10
            x = (r << 16) | lo
            lo = x // 10
            k -= 1
            self.buf[k] = 0x30 + x % 10
        count = end - k
        for i in range(count):
            self.buf[self.n + i] = self.buf[k + i]
        self.n += count

    def mhz(self, hz):
        """A frequency in MHz with Hz precision (6 decimals, trailing zeros dropped)."""
        self.uint(hz // 1000000)
        frac = hz % 1000000
        if frac:
            self.byte(0x2E)
            width = 6
            while frac % 10 == 0:
                frac //= 10
                width -= 1
            self.uint(frac, width)

    def tenths(self, quarters):
        """A value given in quarter units, written with 0.1 precision (SNR in dB)."""
        t = (abs(quarters) * 10 + 2) // 4  # rounded to the nearest tenth
        if quarters < 0 and t:
            self.byte(0x2D)
        self.uint(t // 10)
        self.byte(0x2E)
        self.byte(0x30 + t % 10)

    def b64(self, data, n):
        """Standard base64 with padding."""
        i = 0
        while i + 3 <= n:
            v = (data[i] << 16) | (data[i + 1] << 8) | data[i + 2]
            self.byte(_B64[v >> 18])
            self.byte(_B64[(v >> 12) & 63])
            self.byte(_B64[(v >> 6) & 63])
            self.byte(_B64[v & 63])
            i += 3
        rest = n - i
        if rest:
            v = data[i] << 16
            if rest == 2:
                v |= data[i + 1] << 8
            self.byte(_B64[v >> 18])
            self.byte(_B64[(v >> 12) & 63])
            self.byte(_B64[(v >> 6) & 63] if rest == 2 else 0x3D)
            self.byte(0x3D)

    def utc(self, t, iso, us=-1):
        """t: (year, month, day, hour, minute, second, microsecond), or a time.gmtime() tuple with
        the microseconds in us. iso: rxpk's compact ISO 8601 ("2013-03-31T16:21:17.528002Z"), else
        stat's form ("2014-01-12 08:59:28 GMT")."""
        self.uint(t[0], 4)
        self.byte(0x2D)
        self.uint(t[1], 2)
        self.byte(0x2D)
        self.uint(t[2], 2)
        self.byte(0x54 if iso else 0x20)
        self.uint(t[3], 2)
        self.byte(0x3A)
        self.uint(t[4], 2)
        self.byte(0x3A)
        self.uint(t[5], 2)
        if iso:
            self.byte(0x2E)
            self.uint(t[6] if us < 0 else us, 6)
            self.byte(0x5A)
        else:
            self.raw(b" GMT")


_CR = (b"4/5", b"4/6", b"4/7", b"4/8")


def rxpk(w, p, tmst_hi, tmst_lo, stat=1, utc=None, chan=0, us=-1):
    """Append one rxpk object for radio Packet p (freq, sf, bw, cr, rssi, snr_x4, payload); utc
    as Writer.utc takes it (None: time unknown, the field is left out)."""
    if utc is not None:
        w.raw(b'{"time":"')
        w.utc(utc, True, us)
        w.raw(b'","tmst":')
    else:
        w.raw(b'{"tmst":')
    w.u32(tmst_hi, tmst_lo)
    w.raw(b',"chan":')
    w.uint(chan)
    w.raw(b',"rfch":0,"freq":')
    w.mhz(p.freq)
    w.raw(b',"stat":')
    w.int(stat)
    w.raw(b',"modu":"LORA","datr":"SF')
    w.uint(p.sf)
    w.raw(b"BW")
    w.uint(p.bw // 1000)
    w.raw(b'","codr":"')
    w.raw(_CR[p.cr - 5])
    w.raw(b'","rssi":')
    w.int(p.rssi)
    w.raw(b',"lsnr":')
    w.tenths(p.snr_x4)
    w.raw(b',"size":')
    w.uint(p.length)
    w.raw(b',"data":"')
    w.b64(p.buf, p.length)
    w.raw(b'"}')


def stat_json(counters, utc=None, position=None):
    """The stat object (standard fields only): counters holds rxnb, rxok, rxfw, ackr, dwnb, txnb;
    time only when the UTC time is known; lati/long/alti only with a position."""
    out = {}
    if utc is not None:
        w = Writer(32)
        w.utc(utc, False)
        out["time"] = bytes(w.buf[: w.n]).decode()
    if position is not None:
        out["lati"], out["long"], out["alti"] = position[0], position[1], int(position[2])
    for k in ("rxnb", "rxok", "rxfw", "ackr", "dwnb", "txnb"):
        out[k] = counters[k]
    return out


def stat_datagram(token, eui, counters, utc=None, position=None):
    """A PUSH_DATA carrying only the stat object (sent every 30 s: allocation is fine here)."""
    head = bytearray(12)
    header(head, token, PUSH_DATA, eui)
    return bytes(head) + json.dumps({"stat": stat_json(counters, utc, position)}).encode()


def push_start(w, token, eui):
    """Begin a PUSH_DATA with an rxpk array in Writer w; add objects with rxpk(), then push_end()."""
    w.n = header(w.buf, token, PUSH_DATA, eui)
    w.raw(b'{"rxpk":[')


def push_end(w):
    w.raw(b"]}")
    return w.n


class Txpk:
    """A downlink request, checked: imme or tmst (32-bit), freq (Hz), power (dBm), sf, bw (Hz),
    cr (5..8 for 4/5..4/8), ipol, preamble, crc, data (bytes)."""

    def __init__(self):
        self.imme = False
        self.tmst = 0  # GPS_ONLY: timed by GPS time only (no attribute of its own: a 13th grows the dict)
        self.freq = 0
        self.power = 14
        self.sf = 7
        self.bw = 125000
        self.cr = 5
        self.ipol = True
        self.preamble = 8
        self.crc = True
        self.data = b""


def _field(obj, key, kind, required=True, default=None) -> Any:
    if key not in obj:
        if required:
            raise ProtocolError("txpk", "txpk has no '%s'" % key)
        return default
    v = obj[key]
    ok = isinstance(v, kind) and not (kind is not bool and isinstance(v, bool))
    if not ok:
        raise ProtocolError("txpk", "txpk '%s' has the wrong type" % key)
    return v


def parse_txpk(body):
    """The Txpk of a PULL_RESP's JSON body, or ProtocolError('json' | 'txpk', ...). Only LoRa."""
    try:
        root = json.loads(body)
    except (ValueError, UnicodeError):
        raise ProtocolError("json", "PULL_RESP body is not JSON")
    if not isinstance(root, dict) or not isinstance(root.get("txpk"), dict):
        raise ProtocolError("json", "PULL_RESP body has no txpk object")
    o = root["txpk"]
    t = Txpk()
    t.imme = _field(o, "imme", bool, False, False)
    if not t.imme and "tmst" not in o and "tmms" in o:
        t.tmst = GPS_ONLY  # GPS time only (Semtech's forwarder answers GPS_UNLOCKED without a GPS lock)
    elif not t.imme:
        tmst = _field(o, "tmst", int)
        if not 0 <= tmst < 1 << 32:
            raise ProtocolError("txpk", "txpk 'tmst' out of the 32-bit range")
        t.tmst = tmst
    freq = _field(o, "freq", (int, float))
    if not 0 < freq < 10000:
        raise ProtocolError("txpk", "txpk 'freq' is not a frequency in MHz")
    t.freq = int(freq * 1000000 + 0.5)
    t.power = _field(o, "powe", int, False, 14)
    if _field(o, "modu", str, False, "LORA") != "LORA":
        raise ProtocolError("txpk", "only LoRa modulation is supported")
    datr = _field(o, "datr", str)
    sf, bw = _datr(datr)
    t.sf, t.bw = sf, bw
    codr = _field(o, "codr", str, False, "4/5")
    if codr not in ("4/5", "4/6", "4/7", "4/8"):
        raise ProtocolError("txpk", "txpk 'codr' %r is not 4/5..4/8" % codr)
    t.cr = int(codr[2])
    t.ipol = _field(o, "ipol", bool, False, True)
    t.preamble = _field(o, "prea", int, False, 8)
    if not 6 <= t.preamble <= 65535:
        raise ProtocolError("txpk", "txpk 'prea' out of range")
    t.crc = not _field(o, "ncrc", bool, False, False)  # as Semtech's forwarder: a CRC unless ncrc is true
    size = _field(o, "size", int)
    text = _field(o, "data", str)
    data = b64decode(text + "=" * (-len(text) % 4))  # some servers leave the padding out
    if data is None:
        raise ProtocolError("txpk", "txpk 'data' is not base64")
    if len(data) > 255:
        raise ProtocolError("txpk", "txpk 'data' is %d bytes (at most 255)" % len(data))
    if len(data) != size:
        raise ProtocolError("txpk", "txpk 'size' %d does not match the %d bytes of 'data'" % (size, len(data)))
    t.data = data
    return t


def _datr(s):
    """(sf, bw Hz) of a LoRa datarate identifier such as "SF9BW125"."""
    if s[:2] == "SF" and "BW" in s:
        sf, _, bw = s[2:].partition("BW")
        try:
            sf, bw = int(sf), int(bw)
        except ValueError:
            sf = 0
        if 5 <= sf <= 12 and bw in _BW:
            return sf, _BW[bw]
    raise ProtocolError("txpk", "txpk 'datr' %r is not a LoRa datarate" % s)


def tx_ack(buf, token, eui, error):
    """Write a TX_ACK answering the PULL_RESP of `token`; return its length."""
    n = header(buf, token, TX_ACK, eui)
    body = b'{"txpk_ack":{"error":"' + error.encode() + b'"}}'
    buf[n : n + len(body)] = body
    return n + len(body)
