"""The server side of the Semtech UDP packet forwarder protocol, version 2 (Lora-net
packet_forwarder PROTOCOL.TXT): decodes what a gateway sends (PUSH_DATA, PULL_DATA, TX_ACK) and
checks every field name and type against the document, and builds PUSH_ACK, PULL_ACK and
PULL_RESP. Strict on purpose: it is also the conformance check of the hotspot's datagrams."""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass, field

VERSION = 2
PUSH_DATA, PUSH_ACK, PULL_DATA, PULL_RESP, PULL_ACK, TX_ACK = range(6)
NAMES = {PUSH_DATA: "PUSH_DATA", PUSH_ACK: "PUSH_ACK", PULL_DATA: "PULL_DATA", PULL_RESP: "PULL_RESP",
         PULL_ACK: "PULL_ACK", TX_ACK: "TX_ACK"}
TX_ERRORS = ("NONE", "TOO_LATE", "TOO_EARLY", "COLLISION_PACKET", "COLLISION_BEACON", "TX_FREQ", "TX_POWER",
             "GPS_UNLOCKED",
             # not in PROTOCOL.TXT: ChirpStack's TxAckStatus name, which its Gateway Bridge maps
             # txpk_ack.error by (internal/backend/semtechudp/backend.go); a gateway that enforces
             # the region's duty cycle answers it
             "DUTY_CYCLE_OVERFLOW")

# rxpk and stat fields of PROTOCOL.TXT section 4 (LoRa only: "datr" is then a string)
RXPK = {"time": str, "tmms": int, "tmst": int, "freq": float, "chan": int, "rfch": int, "stat": int, "modu": str,
        "datr": str, "codr": str, "rssi": int, "lsnr": float, "size": int, "data": str}
RXPK_REQUIRED = ("tmst", "freq", "chan", "rfch", "stat", "modu", "datr", "codr", "rssi", "lsnr", "size", "data")
STAT = {"time": str, "lati": float, "long": float, "alti": int, "rxnb": int, "rxok": int, "rxfw": int,
        "ackr": float, "dwnb": int, "txnb": int}
STAT_REQUIRED = ("rxnb", "rxok", "rxfw", "ackr", "dwnb", "txnb")
_RXPK_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?Z$")
_STAT_TIME = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d GMT$")
_DATR = re.compile(r"^SF([5-9]|1[0-2])BW(125|250|500|62|41|31|20|15|10|7)$")


class ProtocolError(ValueError):
    """A datagram that breaks the protocol; the message names the rule."""


@dataclass
class Upstream:
    ident: int
    token: int
    eui: str  # 16 hex digits
    body: dict | None = None
    rxpk: list[dict] = field(default_factory=list)
    stat: dict | None = None


def _typed(obj: dict, spec: dict, required: tuple, what: str) -> None:
    for key in required:
        if key not in obj:
            raise ProtocolError(f"{what} lacks '{key}'")
    for key, value in obj.items():
        if key not in spec:
            raise ProtocolError(f"{what} has a field the protocol does not define: '{key}'")
        kind = spec[key]
        if isinstance(value, bool) or not (isinstance(value, kind) or (kind is float and isinstance(value, int))):
            raise ProtocolError(f"{what} '{key}' should be {kind.__name__}, got {type(value).__name__}")


def check_rxpk(p: dict) -> dict:
    _typed(p, RXPK, RXPK_REQUIRED, "rxpk")
    if "time" in p and not _RXPK_TIME.match(p["time"]):
        raise ProtocolError(f"rxpk 'time' is not compact ISO 8601 UTC: {p['time']!r}")
    if not 0 <= p["tmst"] < 1 << 32:
        raise ProtocolError("rxpk 'tmst' is not a 32-bit unsigned value")
    if p["stat"] not in (1, -1, 0):
        raise ProtocolError("rxpk 'stat' must be 1, -1 or 0")
    if p["modu"] != "LORA" or not _DATR.match(p["datr"]) or p["codr"] not in ("4/5", "4/6", "4/7", "4/8"):
        raise ProtocolError(f"rxpk modulation fields: {p['modu']} {p['datr']} {p['codr']}")
    try:
        data = base64.b64decode(p["data"], validate=True)
    except (binascii.Error, ValueError) as e:
        raise ProtocolError(f"rxpk 'data' is not padded base64: {e}") from None
    if len(data) != p["size"]:
        raise ProtocolError(f"rxpk 'size' {p['size']} but 'data' holds {len(data)} bytes")
    if len(data) > 255:
        raise ProtocolError(f"rxpk of {len(data)} bytes (a LoRa payload is at most 255)")
    return p


def check_stat(s: dict) -> dict:
    _typed(s, STAT, STAT_REQUIRED, "stat")
    if "time" in s and not _STAT_TIME.match(s["time"]):
        raise ProtocolError(f"stat 'time' is not 'YYYY-MM-DD hh:mm:ss GMT': {s['time']!r}")
    return s


def decode(datagram: bytes) -> Upstream:
    """A datagram a gateway sends, checked; ProtocolError names what is wrong."""
    if len(datagram) < 4:
        raise ProtocolError(f"datagram of {len(datagram)} bytes (at least 4)")
    if datagram[0] != VERSION:
        raise ProtocolError(f"protocol version {datagram[0]} (expected {VERSION})")
    ident = datagram[3]
    token = int.from_bytes(datagram[1:3], "big")
    if ident not in (PUSH_DATA, PULL_DATA, TX_ACK):
        raise ProtocolError(f"identifier 0x{ident:02x} is not sent by a gateway")
    if len(datagram) < 12:
        raise ProtocolError(f"{NAMES[ident]} of {len(datagram)} bytes (at least 12: header and gateway EUI)")
    up = Upstream(ident, token, datagram[4:12].hex())
    rest = datagram[12:]
    if ident == PULL_DATA:
        if rest:
            raise ProtocolError("PULL_DATA carries nothing after the gateway EUI")
        return up
    if not rest and ident == TX_ACK:
        return up  # no JSON: no error (PROTOCOL.TXT 5.5)
    try:
        body = json.loads(rest)
    except (ValueError, UnicodeDecodeError, RecursionError) as e:  # 1,000 nested '[' recurse too deep
        raise ProtocolError(f"{NAMES[ident]} JSON: {e}") from None
    if not isinstance(body, dict):
        raise ProtocolError(f"{NAMES[ident]} JSON is not an object")
    up.body = body
    if ident == TX_ACK:
        ack = body.get("txpk_ack")
        if set(body) != {"txpk_ack"} or not isinstance(ack, dict) or ack.get("error") not in TX_ERRORS:
            raise ProtocolError(f"TX_ACK JSON must be {{\"txpk_ack\":{{\"error\": one of {TX_ERRORS}}}}}: {body}")
        return up
    if not set(body) <= {"rxpk", "stat"} or not body:
        raise ProtocolError(f"PUSH_DATA JSON holds {sorted(body)} (only 'rxpk' and 'stat')")
    if "rxpk" in body:
        if not isinstance(body["rxpk"], list) or not body["rxpk"]:
            raise ProtocolError("PUSH_DATA 'rxpk' must be a non-empty array")
        if not all(isinstance(p, dict) for p in body["rxpk"]):
            raise ProtocolError("PUSH_DATA 'rxpk' must hold objects")
        up.rxpk = [check_rxpk(p) for p in body["rxpk"]]
    if "stat" in body:
        if not isinstance(body["stat"], dict):
            raise ProtocolError("PUSH_DATA 'stat' must be an object")
        up.stat = check_stat(body["stat"])
    return up


def ack(up: Upstream) -> bytes:
    """PUSH_ACK or PULL_ACK for a PUSH_DATA or PULL_DATA: the same token."""
    ident = {PUSH_DATA: PUSH_ACK, PULL_DATA: PULL_ACK}[up.ident]
    return bytes([VERSION]) + up.token.to_bytes(2, "big") + bytes([ident])


def pull_resp(token: int, txpk: dict) -> bytes:
    return bytes([VERSION]) + token.to_bytes(2, "big") + bytes([PULL_RESP]) + json.dumps({"txpk": txpk}).encode()
