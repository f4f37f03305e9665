"""LoRaWAN 1.0.3 data frames in CPython: the twin of firmware/spot/lorawan/frame.py, for tests,
`loraspot listen` and the decoder."""

from __future__ import annotations

from dataclasses import dataclass, field

from loraspot.lorawan import crypto

MTYPES = ("JoinRequest", "JoinAccept", "UnconfirmedDataUp", "UnconfirmedDataDown", "ConfirmedDataUp",
          "ConfirmedDataDown", "RFU", "Proprietary")


class FrameError(ValueError):
    def __init__(self, code: str, msg: str):
        super().__init__(msg)
        self.code = code


@dataclass
class DataFrame:
    mtype: str
    devaddr: str  # big-endian hex, as shown by network servers
    adr: bool
    ack: bool
    fctrl_bit6: bool  # ADRACKReq (up) / RFU (down)
    fctrl_bit4: bool  # ClassB (up) / FPending (down)
    fcnt16: int
    fopts: bytes
    fport: int | None
    frm_payload: bytes  # as on the air
    mic: bytes
    uplink: bool
    payload: bytes | None = None  # decrypted when the key was given
    mic_ok: bool | None = None
    extra: dict = field(default_factory=dict)


def decode(phy: bytes, nwkskey: bytes | None = None, appskey: bytes | None = None,
           fcnt: int | None = None) -> DataFrame:
    """Decode a data frame; verify the MIC and decrypt when keys are given. fcnt: the full 32-bit
    counter when known (default: the 16 bits on the air)."""
    if len(phy) < 12:
        raise FrameError("short", f"data frame of {len(phy)} bytes (at least 12)")
    mtype = phy[0] >> 5
    if mtype not in (2, 3, 4, 5):
        raise FrameError("mtype", f"not a data frame: {MTYPES[mtype]}")
    uplink = mtype in (2, 4)
    fctrl = phy[5]
    nopts = fctrl & 0x0F
    body = 8 + nopts
    if body + 4 > len(phy):
        raise FrameError("fopts", f"FOptsLen {nopts} does not fit a {len(phy)}-byte frame")
    fcnt16 = int.from_bytes(phy[6:8], "little")
    full = fcnt16 if fcnt is None else fcnt
    fport = phy[body] if body < len(phy) - 4 else None
    f = DataFrame(MTYPES[mtype], phy[1:5][::-1].hex().upper(), bool(fctrl & 0x80), bool(fctrl & 0x20),
                  bool(fctrl & 0x40), bool(fctrl & 0x10), fcnt16, phy[8:body], fport,
                  phy[body + 1 : -4] if fport is not None else b"", phy[-4:], uplink)
    d = crypto.UP if uplink else crypto.DOWN
    if nwkskey is not None:
        f.mic_ok = crypto.frame_mic(nwkskey, phy[:-4], d, phy[1:5], full) == f.mic
    key = nwkskey if fport == 0 else appskey
    if fport is not None and key is not None:
        f.payload = crypto.crypt_payload(key, f.frm_payload, d, phy[1:5], full)
    return f


def build(nwkskey: bytes, appskey: bytes, devaddr: bytes, fcnt: int, *, uplink: bool, fport: int | None = None,
          payload: bytes = b"", fopts: bytes = b"", confirmed: bool = False, adr: bool = False, ack: bool = False,
          bit6: bool = False, bit4: bool = False) -> bytes:
    """A data frame; devaddr in wire order."""
    mtype = (4 if confirmed else 2) if uplink else (5 if confirmed else 3)
    fctrl = (0x80 if adr else 0) | (0x40 if bit6 else 0) | (0x20 if ack else 0) | (0x10 if bit4 else 0) | len(fopts)
    d = crypto.UP if uplink else crypto.DOWN
    phy = bytes([mtype << 5]) + devaddr + bytes([fctrl]) + (fcnt & 0xFFFF).to_bytes(2, "little") + fopts
    if fport is not None:
        key = nwkskey if fport == 0 else appskey
        phy += bytes([fport]) + crypto.crypt_payload(key, payload, d, devaddr, fcnt)
    return phy + crypto.frame_mic(nwkskey, phy, d, devaddr, fcnt)
