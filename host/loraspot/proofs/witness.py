"""Beacons and witnesses (docs/proofs.md): is what the hotspots' signed receipts say about each
other's beacons physically plausible?

A beacon is a LoRaWAN Proprietary frame a hotspot sends on its channel and signs (spot.hotspot.chain):
    MHDR 0xE0 | b"LSB1" | gateway EUI (8) | beacon number (u32) |
    time (u64: top byte its source, 1 GPS, 0 NTP or host; low 56 bits UTC ms, 0 unknown) |
    claimed latitude, longitude (i32, 1e-7 degrees) | altitude (i16, m) | nonce (16) |
    Ed25519 signature of everything before it (64)                                   115 bytes
The sender keeps a receipt of what it sent (the SF byte's top bit set, the RSSI field its power in
dBm); each hotspot that hears it keeps an ordinary receipt: a witness, with the RSSI and SNR it
measured and its time (a receipt whose time is GPS time has the SF byte's 0x40 bit set). Only
hotspots on the beacon's channel (frequency and SF) can hear it: with single-channel hotspots,
witnesses exist between hotspots set to the same channel.

The beacon frames come from the network server's frames (what `loraspot listen --json` printed:
the witnesses forward them like any frame); the receipts come from the ledger. Each witness is
judged against:
- the path-loss model: log-distance, PL(d) = PL(1 m) + 10 n log10(d / 1 m), PL(1 m) the free-space
  loss at the frequency (20 log10(f / Hz) - 147.55 dB), n by environment (ENVIRONMENTS); the RSSI
  expected at the distance between the two claimed positions (the witness's own from its latest
  beacon) against the one reported, within a stated tolerance in dB: stronger than that is a signal
  from nearer than claimed (a position that is a lie), weaker is one from farther;
- time: the witness's receipt (taken as the frame ends) against when the beacon went out: the
  sender's own receipt of it (taken as it was queued, once signed) plus the beacon's airtime at the
  receipt's SF (125 kHz), or the beacon's own time (taken before signing, which lasts a second or
  more on an ESP32) where the sender's receipt is missing; within TIME_TOLERANCE_MS (NTP or host
  time), or GPS_TIME_TOLERANCE_MS when both times are GPS time (NMEA time without the PPS pin:
  late by up to a few hundred ms), else a replay;
and each beacon: signed by a gateway the ledger knows and kept as sent in its chain (else never
sent), heard at most once per witness and sent once under its number (else duplicated), not
witnessed by its own sender, and, when it carries a challenge the ledger service gave (its nonce),
not claiming a time before the challenge was given."""

from __future__ import annotations

import base64
import hashlib
import json
import math
import struct
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from loraspot.proofs.ledger import Ledger
from loraspot.proofs.receipts import Record
from loraspot.resources import firmware_module

MAGIC = b"\xe0LSB1"
BODY = struct.Struct(">5s8sIQiih16s")
SIZE = BODY.size + 64
GPS_SOURCE = 1  # a beacon's time source byte: GPS
MS_BITS = (1 << 56) - 1
# path-loss exponents by environment (log-distance model); "open" is the virtual medium's own
ENVIRONMENTS = {"open": 2.7, "suburban": 3.0, "urban": 3.5}
TOLERANCE_DB = 10.0
TIME_TOLERANCE_MS = 5000
GPS_TIME_TOLERANCE_MS = 1000


@dataclass(frozen=True)
class Beacon:
    eui: str
    n: int
    time_ms: int
    lat: float
    lon: float
    alt: int
    nonce: bytes
    body: bytes
    signature: bytes
    gps: bool = False  # its time is GPS time

    @property
    def frame(self) -> bytes:
        return self.body + self.signature

    @property
    def name(self) -> str:
        return f"{self.eui}#{self.n}"


def parse(phy: bytes) -> Beacon | None:
    """The beacon a frame is, or None for any other frame."""
    if len(phy) != SIZE or not phy.startswith(MAGIC):
        return None
    _, eui, n, t, lat, lon, alt, nonce = BODY.unpack(phy[: BODY.size])
    return Beacon(eui.hex().upper(), n, t & MS_BITS, lat / 1e7, lon / 1e7, alt, nonce, phy[: BODY.size],
                  phy[BODY.size :], gps=t >> 56 == GPS_SOURCE)


def distance_m(a: tuple[float, float], b: tuple[float, float]) -> float:
    """Great-circle distance (haversine, mean Earth radius) between (lat, lon) in degrees."""
    la1, lo1, la2, lo2 = map(math.radians, (*a, *b))
    h = math.sin((la2 - la1) / 2) ** 2 + math.cos(la1) * math.cos(la2) * math.sin((lo2 - lo1) / 2) ** 2
    return 2 * 6371008.8 * math.asin(math.sqrt(h))


def airtime_ms(sf: int) -> float:
    """A beacon's time on air at 125 kHz (LoRa, explicit header, CRC on, coding rate 4/5)."""
    return firmware_module("spot/radio/airtime.py").time_on_air_us(SIZE, sf, 125_000) / 1000


def path_loss_db(d_m: float, freq_hz: int, exponent: float) -> float:
    return 20 * math.log10(freq_hz) - 147.55 + 10 * exponent * math.log10(max(1.0, d_m))


@dataclass
class Judgement:
    beacon: str
    frame: str  # the beacon frame's SHA-256, hex (two frames may carry one beacon's name)
    witness: str | None
    flags: list[str] = field(default_factory=list)
    rssi: int | None = None
    expected_rssi: float | None = None
    distance_m: float | None = None
    delay_ms: int | None = None
    gps_time: bool = False  # (a witness) the beacon and the receipt both GPS-timed: the narrow tolerance
    challenge: bool = False  # (a beacon) it carries a nonce the ledger service gave as a challenge

    def as_dict(self) -> dict:
        expected = None if self.expected_rssi is None else round(self.expected_rssi, 1)
        return {"beacon": self.beacon, "frame": self.frame, "witness": self.witness, "ok": not self.flags,
                "flags": self.flags,
                "rssi": self.rssi, "expected_rssi": expected,
                "distance_m": None if self.distance_m is None else round(self.distance_m), "delay_ms": self.delay_ms,
                "gps_time": self.gps_time,
                "challenge": self.challenge}


def beacons_in(frames_path: Path) -> list[Beacon]:
    """The beacon frames among the network server's frames (JSON lines with a base64 `phy`)."""
    out = []
    for line in frames_path.read_text().splitlines():
        if not line.strip():
            continue
        f = json.loads(line)
        b = parse(base64.b64decode(f["phy"], validate=True)) if isinstance(f, dict) and "phy" in f else None
        if b is not None:
            out.append(b)
    return out


def _signed(led: Ledger, b: Beacon) -> bool:
    key = led.public_key(b.eui)
    if key is None:
        return False
    try:
        Ed25519PublicKey.from_public_bytes(key).verify(b.signature, b.body)
        return True
    except (InvalidSignature, ValueError):
        return False


def claimed_positions(led: Ledger, beacons: list[Beacon]) -> dict[str, Beacon]:
    """Each gateway's claimed position: that of its latest signed beacon."""
    position: dict[str, Beacon] = {}
    for b in beacons:
        if _signed(led, b) and (b.eui not in position or b.n > position[b.eui].n):
            position[b.eui] = b
    return position


def coverage(led: Ledger, beacons: list[Beacon], environment: str = "open") -> dict:
    """What the report's coverage map draws: the hotspots at their claimed positions and each
    witnessed link (beacon sender to witness) with its RSSI and flags."""
    found = judge(led, beacons, environment)
    names = {b.name: b.eui for b in beacons}
    hotspots = {eui: (b.lat, b.lon) for eui, b in claimed_positions(led, beacons).items()}
    links = [{"from": names[j.beacon], "to": j.witness, "rssi": j.rssi, "flags": j.flags}
             for j in found if j.witness is not None and j.witness != names[j.beacon]
             and names[j.beacon] in hotspots and j.witness in hotspots and "never_sent" not in j.flags]
    return {"hotspots": hotspots, "links": links}


def judge(led: Ledger, beacons: list[Beacon], environment: str = "open",
          tolerance_db: float = TOLERANCE_DB, time_tolerance_ms: int = TIME_TOLERANCE_MS,
          gps_time_tolerance_ms: int = GPS_TIME_TOLERANCE_MS) -> list[Judgement]:
    exponent = ENVIRONMENTS[environment]
    unique: dict[bytes, Beacon] = {}
    for b in beacons:
        unique.setdefault(b.frame, b)
    by_number: dict[tuple[str, int], set[bytes]] = {}  # signed frames under each beacon's name
    for b in unique.values():
        if _signed(led, b):
            by_number.setdefault((b.eui, b.n), set()).add(b.frame)
    position = claimed_positions(led, list(unique.values()))
    out: list[Judgement] = []
    for b in sorted(unique.values(), key=lambda x: (x.eui, x.n, x.frame)):
        digest = hashlib.sha256(b.frame).digest()
        rows = led.db.execute("SELECT g.eui, r.record FROM records r JOIN batches g ON g.id = r.batch "
                              "WHERE r.phy_hash = ? ORDER BY g.eui, g.seq, r.idx",
                              (digest,)).fetchall()
        records = [(eui, Record.decode(rec)) for eui, rec in rows]
        sent = [r for eui, r in records if eui == b.eui and r.sent]
        beacon_flags = []
        if not _signed(led, b) or not sent:
            beacon_flags.append("never_sent")
        if len(by_number.get((b.eui, b.n), ())) > 1 or len(sent) > 1:
            beacon_flags.append("duplicate")
        given = led.db.execute("SELECT given_at FROM challenges WHERE eui = ? AND nonce = ?",
                               (b.eui, b.nonce)).fetchone()
        if given is not None and given[0] is not None and b.time_ms < given[0] * 1000 - time_tolerance_ms:
            beacon_flags.append("before_challenge")  # it claims a time before the nonce it carries was given
        out.append(Judgement(b.name, digest.hex(), None, beacon_flags, challenge=given is not None))
        heard: dict[str, int] = {}
        for eui, r in records:
            if r.sent:
                continue
            heard[eui] = heard.get(eui, 0) + 1
        for eui, r in records:
            if r.sent:
                continue
            j = Judgement(b.name, digest.hex(), eui, list(beacon_flags), rssi=r.rssi)
            if eui == b.eui:
                j.flags.append("self_witness")
            if heard[eui] > 1:
                j.flags.append("duplicate")
            out_ms, out_gps = (sent[0].time_ms, sent[0].gps_time) if sent and sent[0].time_ms else (b.time_ms, b.gps)
            if out_ms and r.time_ms:
                j.delay_ms = round(r.time_ms - out_ms - airtime_ms(r.spreading_factor))
                j.gps_time = out_gps and r.gps_time
                if abs(j.delay_ms) > (gps_time_tolerance_ms if j.gps_time else time_tolerance_ms):
                    j.flags.append("replayed")
            mine = position.get(eui)
            if mine is None:
                j.flags.append("no_position")
            elif sent:
                j.distance_m = distance_m((b.lat, b.lon), (mine.lat, mine.lon))
                j.expected_rssi = sent[0].rssi - path_loss_db(j.distance_m, r.freq, exponent)
                if r.rssi > j.expected_rssi + tolerance_db:
                    j.flags.append("too_strong")  # heard from nearer than the positions claim
                elif r.rssi < j.expected_rssi - tolerance_db:
                    j.flags.append("too_weak")
            out.append(j)
    return out
