# LoRaWAN 1.0.3 data frames (section 4): MHDR | DevAddr | FCtrl | FCnt | FOpts | [FPort | FRMPayload]
# | MIC. Uplinks are built into a caller's buffer; downlinks are parsed and checked (length, MIC,
# DevAddr, FCnt replay, FOpts length) without changing any state on failure.
from micropython import const

from spot.lorawan.crypto import DOWN, UP

JOIN_REQUEST = const(0)
JOIN_ACCEPT = const(1)
UNCONFIRMED_UP = const(2)
UNCONFIRMED_DOWN = const(3)
CONFIRMED_UP = const(4)
CONFIRMED_DOWN = const(5)

MIN_FRAME = const(12)  # MHDR 1 + FHDR 7 + MIC 4
MAX_FCNT_GAP = const(16384)  # LoRaWAN 1.0.x


class FrameError(ValueError):
    """A frame that must be dropped; `code` says why (for counters and events)."""

    def __init__(self, code, msg):
        super().__init__(msg)
        self.code = code


def build_uplink(buf, session, devaddr, fcnt, fport, payload, fopts=b"", confirmed=False, adr=False, ack=False,
                 adr_ack_req=False):
    """Write an uplink into buf; returns its length. devaddr in wire order (4 bytes, LSB first).
    fport None: no FPort and no payload; fport 0: payload holds MAC commands (FOpts must be empty)."""
    nopts = len(fopts)
    if nopts > 15:
        raise ValueError("FOpts hold at most 15 bytes")
    if fport == 0 and nopts:
        raise ValueError("MAC commands go either in FOpts or on FPort 0, not both")
    if fport is not None and not 0 <= fport <= 223:
        raise ValueError("FPort must be 0..223")
    if fport is None and len(payload):
        raise ValueError("a payload needs an FPort")
    n = 8 + nopts + (1 + len(payload) if fport is not None else 0) + 4
    if n > len(buf) or n > 255:
        raise ValueError("frame of %d bytes too long" % n)
    buf[0] = (CONFIRMED_UP if confirmed else UNCONFIRMED_UP) << 5
    buf[1:5] = devaddr
    buf[5] = (0x80 if adr else 0) | (0x40 if adr_ack_req else 0) | (0x20 if ack else 0) | nopts
    buf[6] = fcnt & 0xFF
    buf[7] = (fcnt >> 8) & 0xFF
    pos = 8
    if nopts:
        buf[pos : pos + nopts] = fopts
        pos += nopts
    if fport is not None:
        buf[pos] = fport
        pos += 1
        m = len(payload)
        buf[pos : pos + m] = payload
        session.crypt(buf, pos, pos + m, fport, UP, devaddr, fcnt)
        pos += m
    mic = session.mic(buf, UP, devaddr, fcnt, pos)
    buf[pos] = mic & 0xFF
    buf[pos + 1] = (mic >> 8) & 0xFF
    buf[pos + 2] = (mic >> 16) & 0xFF
    buf[pos + 3] = (mic >> 24) & 0xFF
    return pos + 4


def full_fcnt(fcnt16, last):
    """The 32-bit counter nearest above `last` (the last accepted one, or -1) with these low bits."""
    if last < 0:
        return fcnt16
    cand = (last & ~0xFFFF) | fcnt16
    if cand <= last:
        cand += 0x10000
    return cand


class Downlink:
    """A parsed downlink; `payload` is decrypted in place in the buffer the caller passed."""

    def __init__(self):
        self.mtype = 0
        self.confirmed = False
        self.adr = False
        self.ack = False
        self.fpending = False
        self.fcnt = 0
        self.fopts = b""
        self.fport = None
        self.payload = b""


def parse_downlink(buf, n, session, devaddr, last_fcnt):
    """Check and decode the downlink in buf[:n]. last_fcnt: the last accepted FCntDown (-1: none).
    Raises FrameError(code) with code short / mtype / devaddr / fopts / mic / replay."""
    if n < MIN_FRAME:
        raise FrameError("short", "downlink of %d bytes (at least 12)" % n)
    mtype = buf[0] >> 5
    if mtype not in (UNCONFIRMED_DOWN, CONFIRMED_DOWN) or buf[0] & 0x03:
        raise FrameError("mtype", "not a LoRaWAN R1 data downlink (MHDR 0x%02x)" % buf[0])
    if bytes(buf[1:5]) != bytes(devaddr):
        raise FrameError("devaddr", "for another device")
    fctrl = buf[5]
    nopts = fctrl & 0x0F
    body = 8 + nopts
    if body + 4 > n:
        raise FrameError("fopts", "FOptsLen %d does not fit a %d-byte frame" % (nopts, n))
    fcnt = full_fcnt(buf[6] | (buf[7] << 8), last_fcnt)
    if last_fcnt >= 0 and fcnt - last_fcnt > MAX_FCNT_GAP:
        raise FrameError("replay", "FCnt %d too far from %d" % (fcnt, last_fcnt))
    mic = buf[n - 4] | (buf[n - 3] << 8) | (buf[n - 2] << 16) | (buf[n - 1] << 24)
    if session.mic(buf, DOWN, devaddr, fcnt, n - 4) != mic:
        # a replayed frame has the right MIC for its old counter: tell the two apart
        if last_fcnt >= 0 and session.mic(buf, DOWN, devaddr, (last_fcnt & ~0xFFFF) | (buf[6] | (buf[7] << 8)),
                                          n - 4) == mic:
            raise FrameError("replay", "FCnt already used")
        raise FrameError("mic", "MIC does not verify")
    d = Downlink()
    d.mtype = mtype
    d.confirmed = mtype == CONFIRMED_DOWN
    d.adr = fctrl & 0x80 != 0
    d.ack = fctrl & 0x20 != 0
    d.fpending = fctrl & 0x10 != 0
    d.fcnt = fcnt
    d.fopts = bytes(buf[8:body])
    if body < n - 4:
        d.fport = buf[body]
        if d.fport == 0 and nopts:
            raise FrameError("fopts", "MAC commands both in FOpts and on FPort 0")
        session.crypt(buf, body + 1, n - 4, d.fport, DOWN, devaddr, fcnt)
        d.payload = bytes(buf[body + 1 : n - 4])
    return d
