"""Decode any LoRaWAN 1.0.x PHYPayload into plain fields (`loraspot decode`)."""

from __future__ import annotations

import base64
import binascii

from loraspot.lorawan import crypto, frame

# CID -> (name, payload length), per direction (LoRaWAN 1.0.3 table 4 / section 5)
MAC_UP = {0x02: ("LinkCheckReq", 0), 0x03: ("LinkADRAns", 1), 0x04: ("DutyCycleAns", 0), 0x05: ("RXParamSetupAns", 1),
          0x06: ("DevStatusAns", 2), 0x07: ("NewChannelAns", 1), 0x08: ("RXTimingSetupAns", 0),
          0x09: ("TxParamSetupAns", 0), 0x0A: ("DlChannelAns", 1), 0x0D: ("DeviceTimeReq", 0)}
MAC_DOWN = {0x02: ("LinkCheckAns", 2), 0x03: ("LinkADRReq", 4), 0x04: ("DutyCycleReq", 1),
            0x05: ("RXParamSetupReq", 4), 0x06: ("DevStatusReq", 0), 0x07: ("NewChannelReq", 5),
            0x08: ("RXTimingSetupReq", 1), 0x09: ("TxParamSetupReq", 1), 0x0A: ("DlChannelReq", 4),
            0x0D: ("DeviceTimeAns", 5)}


MAX_PHY = 255  # the LoRa modem's payload length is one byte


class DecodeError(ValueError):
    pass


def parse_input(text: str) -> bytes:
    """Hex (with or without spaces/colons) or base64, as packet forwarders and consoles show it."""
    t = text.strip().replace(" ", "").replace(":", "")
    if t and all(c in "0123456789abcdefABCDEF" for c in t) and len(t) % 2 == 0:
        return bytes.fromhex(t)
    try:
        return base64.b64decode(t, validate=True)
    except (binascii.Error, ValueError):
        raise DecodeError("not hex or base64") from None


def mac_commands(data: bytes, uplink: bool) -> list[dict]:
    table = MAC_UP if uplink else MAC_DOWN
    out, i = [], 0
    while i < len(data):
        cid = data[i]
        if cid not in table:
            out.append({"cid": cid, "error": "unknown command; the rest cannot be parsed", "rest": data[i:].hex()})
            break
        name, n = table[cid]
        body = data[i + 1 : i + 1 + n]
        if len(body) < n:
            out.append({"cid": cid, "command": name, "error": f"truncated: {len(body)} of {n} bytes"})
            break
        out.append({"cid": cid, "command": name, "payload": body.hex()})
        i += 1 + n
    return out


def _eui(b: bytes) -> str:
    return b[::-1].hex().upper()


def decode(phy: bytes, appkey: bytes | None = None, nwkskey: bytes | None = None, appskey: bytes | None = None,
           devnonce: bytes | None = None) -> dict:
    """Every field of the frame; MIC checked and payload decrypted where keys allow."""
    if not phy:
        raise DecodeError("empty frame")
    if len(phy) > MAX_PHY:
        raise DecodeError(f"{len(phy)} bytes: a LoRa PHYPayload has at most {MAX_PHY}")
    mtype = phy[0] >> 5
    out: dict = {"mhdr": {"mtype": frame.MTYPES[mtype], "major": phy[0] & 3}, "size": len(phy)}
    if mtype == 0:
        if len(phy) != 23:
            raise DecodeError(f"Join-Request must be 23 bytes, got {len(phy)}")
        nonce = int.from_bytes(phy[17:19], "little")  # hex, as network servers show it and --devnonce takes it
        out.update(join_eui=_eui(phy[1:9]), dev_eui=_eui(phy[9:17]), dev_nonce=f"{nonce:04X}", mic=phy[19:].hex())
        if appkey:
            out["mic_ok"] = crypto.join_mic(appkey, phy[:19]) == phy[19:]
        return out
    if mtype == 1:
        if len(phy) not in (17, 33):
            raise DecodeError(f"Join-Accept must be 17 or 33 bytes, got {len(phy)}")
        if not appkey:
            out["encrypted"] = phy[1:].hex()
            out["note"] = "give --appkey to decrypt"
            return out
        p = crypto.decrypt_join_accept(appkey, phy)
        dl = p[11]
        out.update(app_nonce=p[1:4][::-1].hex().upper(), net_id=p[4:7][::-1].hex().upper(),
                   dev_addr=p[7:11][::-1].hex().upper(),
                   dl_settings={"rx1_dr_offset": (dl >> 4) & 7, "rx2_dr": dl & 15},
                   rx_delay=p[12] or 1, mic=p[-4:].hex(), mic_ok=crypto.join_mic(appkey, p[:-4]) == p[-4:])
        if len(p) == 33:
            cf = p[13:29]
            out["cflist"] = {"type": cf[15], "raw": cf.hex()}
            if cf[15] == 0:
                out["cflist"]["frequencies_hz"] = [int.from_bytes(cf[i : i + 3], "little") * 100
                                                   for i in range(0, 15, 3)]
        if devnonce is not None:
            nwk, app = crypto.derive(appkey, p[1:7], devnonce)
            out["session_keys"] = {"nwk_s_key": nwk.hex(), "app_s_key": app.hex()}
        return out
    if mtype == 7:
        out["proprietary"] = phy[1:].hex()
        return out
    try:
        f = frame.decode(phy, nwkskey, appskey)
    except frame.FrameError as e:
        raise DecodeError(str(e)) from None
    up = f.uplink
    out.update(dev_addr=f.devaddr, fctrl={"adr": f.adr, "ack": f.ack, ("adr_ack_req" if up else "rfu"): f.fctrl_bit6,
                                          ("class_b" if up else "f_pending"): f.fctrl_bit4, "f_opts_len": len(f.fopts)},
               f_cnt=f.fcnt16, f_opts=f.fopts.hex(), f_port=f.fport, frm_payload=f.frm_payload.hex(), mic=f.mic.hex())
    if f.fopts:
        out["mac_commands"] = mac_commands(f.fopts, up)
    if f.mic_ok is not None:
        out["mic_ok"] = f.mic_ok
    if f.payload is not None:
        out["payload"] = f.payload.hex()
        if f.fport == 0:
            out["mac_commands"] = mac_commands(f.payload, up)
    return out
