"""Receipts: what a hotspot heard, in batches it signs with its identity key (docs/proofs.md).

A record is one frame heard, 53 bytes, big-endian:
    SHA-256 of the PHYPayload (32) | tmst, the concentrator's microsecond counter (u32) |
    UTC time in ms, 0 when unknown (u64) | frequency in Hz (u32) | SF (u8) |
    RSSI in dBm (i16) | SNR in tenths of a dB (i16)
The SF byte holds flags above the spreading factor: 0x80, a frame the hotspot sent itself (a
beacon; the RSSI field its power), and 0x40, its time is GPS time. The UTC time is Unix ms.
A batch's header, 101 bytes, is what is signed (Ed25519, the board's identity key):
    b"LSRB" | version 1 (u8) | gateway EUI (8) | sequence number (u32, on across reboots) |
    first and last UTC ms of the interval (u64, u64) | number of records (u32) |
    Merkle root of the records (32, loraspot.proofs.merkle) | hash of the previous batch (32,
    zeros before the first)
and a batch's hash, which the next one names, is SHA-256(header || signature). The board's codec
is spot.receipts; tests/vectors/receipts.json holds vectors both implementations pass."""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from loraspot.proofs import merkle

MAGIC = b"LSRB"
VERSION = 1
RECORD = struct.Struct(">32sIQIBhh")
HEADER = struct.Struct(">4sB8sIQQI32s32s")
ZERO = bytes(32)
SENT = 0x80  # the SF byte: a frame the hotspot sent
GPS_TIME = 0x40  # the SF byte: the record's time is GPS time


@dataclass(frozen=True)
class Record:
    phy_hash: bytes
    tmst: int
    time_ms: int
    freq: int
    sf: int
    rssi: int
    snr_tenths: int

    @classmethod
    def heard(cls, phy: bytes, tmst: int, time_ms: int, freq: int, sf: int, rssi: float, snr: float) -> Record:
        return cls(hashlib.sha256(phy).digest(), tmst & 0xFFFFFFFF, time_ms, freq, sf, round(rssi), round(snr * 10))

    def encode(self) -> bytes:
        return RECORD.pack(self.phy_hash, self.tmst, self.time_ms, self.freq, self.sf, self.rssi, self.snr_tenths)

    @classmethod
    def decode(cls, data: bytes) -> Record:
        if len(data) != RECORD.size:
            raise ValueError(f"a record is {RECORD.size} bytes, got {len(data)}")
        return cls(*RECORD.unpack(data))

    def leaf(self) -> bytes:
        return merkle.leaf_hash(self.encode())

    @property
    def spreading_factor(self) -> int:
        return self.sf & 0x3F

    @property
    def sent(self) -> bool:
        return bool(self.sf & SENT)

    @property
    def gps_time(self) -> bool:
        return bool(self.sf & GPS_TIME)


@dataclass(frozen=True)
class Header:
    gateway_eui: bytes
    seq: int
    start_ms: int
    end_ms: int
    count: int
    root: bytes
    prev: bytes

    def encode(self) -> bytes:
        return HEADER.pack(MAGIC, VERSION, self.gateway_eui, self.seq, self.start_ms, self.end_ms, self.count,
                           self.root, self.prev)

    @classmethod
    def decode(cls, data: bytes) -> Header:
        if len(data) != HEADER.size:
            raise ValueError(f"a batch header is {HEADER.size} bytes, got {len(data)}")
        magic, version, *rest = HEADER.unpack(data)
        if magic != MAGIC or version != VERSION:
            raise ValueError("not a loraspot receipt batch (magic or version)")
        return cls(*rest)


@dataclass(frozen=True)
class Batch:
    header: Header
    signature: bytes
    records: tuple[Record, ...]

    def hash(self) -> bytes:
        return hashlib.sha256(self.header.encode() + self.signature).digest()

    def to_json(self) -> dict:
        """A batch as it travels (a line of a batches file, a message): hex throughout."""
        return {"header": self.header.encode().hex(), "signature": self.signature.hex(),
                "records": [r.encode().hex() for r in self.records]}

    @classmethod
    def from_json(cls, obj: object) -> Batch:
        """The batch of to_json's form, or ValueError saying what is wrong with it."""
        if not isinstance(obj, dict):
            raise ValueError("a batch is a JSON object")
        try:
            raw = (bytes.fromhex(obj["header"]), bytes.fromhex(obj["signature"]),
                   [bytes.fromhex(r) for r in obj["records"]])
        except KeyError as e:
            raise ValueError(f"a batch has no {e.args[0]!r}") from None
        except (TypeError, ValueError):
            raise ValueError("a batch's header, signature and records are hex strings") from None
        header, signature = Header.decode(raw[0]), raw[1]
        records = tuple(Record.decode(r) for r in raw[2])
        if len(signature) != 64:
            raise ValueError("a batch's signature is 64 bytes")
        return cls(header, signature, records)


def batch_from_bytes(data: bytes) -> Batch:
    """A batch as a board uploads it (header, signature, records, back to back), or ValueError."""
    head, sig, body = data[:HEADER.size], data[HEADER.size:HEADER.size + 64], data[HEADER.size + 64:]
    if len(sig) != 64 or len(body) % RECORD.size:
        raise ValueError(f"a batch is a {HEADER.size}-byte header, a 64-byte signature and {RECORD.size}-byte "
                         f"records; {len(data)} bytes are not")
    return Batch(Header.decode(head), sig,
                 tuple(Record.decode(body[i:i + RECORD.size]) for i in range(0, len(body), RECORD.size)))


def make_batch(key: Ed25519PrivateKey, gateway_eui: bytes, seq: int, start_ms: int, end_ms: int,
               records: list[Record], prev: bytes) -> Batch:
    """A signed batch (the host's side of what the board does: for tests and vectors)."""
    h = Header(gateway_eui, seq, start_ms, end_ms, len(records), merkle.root([r.leaf() for r in records]), prev)
    return Batch(h, key.sign(h.encode()), tuple(records))


def signature_ok(public_key: bytes, header: Header, signature: bytes) -> bool:
    try:
        Ed25519PublicKey.from_public_bytes(public_key).verify(signature, header.encode())
        return True
    except (InvalidSignature, ValueError):
        return False
