"""Receipts (issue "Coverage proofs, part 1"): how much a hotspot records and signs at a saturated
channel, and how fast the ledger takes batches.

- Saturated channel: frames back to back on the hotspot's one channel (the time on air of
  spot.radio.airtime, SX127x), for a short uplink (20-byte PHYPayload: header, MIC, 7 bytes of
  data) and a longer one (51 bytes), at SF7, SF9 and SF12. Per hour: frames, record bytes, batches
  (one per receipts_interval, or more where a batch reaches spot.hotspot.chain.MAX_RECORDS first),
  bytes uploaded, and the share of an ESP32 at 160 MHz spent signing them (bench/ed25519.py's
  estimate of the slowest signature, 1.4 s).
- Ledger ingest: batches of 1024 records made and signed on the host, checked into a fresh SQLite
  ledger (loraspot.proofs.ledger) directly and uploaded over HTTP to the ledger service
  (loraspot ledger serve); batches and records per second, and the time of an inclusion proof.

Prints one JSON line per figure. Run by `make bench`."""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "host"))

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey  # noqa: E402
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat  # noqa: E402
from loraspot.proofs.ledger import Ledger  # noqa: E402
from loraspot.proofs.receipts import HEADER, RECORD, ZERO, Record, make_batch  # noqa: E402
from loraspot.proofs.service import LedgerService  # noqa: E402
from loraspot.resources import firmware_module  # noqa: E402

MAX_RECORDS = 1024  # spot.hotspot.chain.MAX_RECORDS
INTERVAL_S = 600  # a receipts_interval of ten minutes
ESP32_SIGN_S = 1.4  # bench/ed25519.py: the slowest estimated signature at 160 MHz
EUI = bytes.fromhex("024C53FFFE000001")


def saturated() -> None:
    air = firmware_module("spot/radio/airtime.py")
    for sf in (7, 9, 12):
        for size in (20, 51):
            toa_us = air.time_on_air_us(size, sf, 125000, 5, 8, True, True, air.ldro_needed(sf, 125000))
            frames = 3600e6 / toa_us
            batches = max(3600 / INTERVAL_S, frames / MAX_RECORDS)
            uploaded = frames * RECORD.size + batches * (HEADER.size + 64)
            print(json.dumps({"bench": "receipts_saturated", "sf": sf, "phy_bytes": size,
                              "time_on_air_ms": round(toa_us / 1000, 1), "frames_per_hour": round(frames),
                              "record_kb_per_hour": round(frames * RECORD.size / 1024, 1),
                              "batches_per_hour": round(batches, 1), "upload_kb_per_hour": round(uploaded / 1024, 1),
                              "esp32_signing_share_pct": round(100 * batches * ESP32_SIGN_S / 3600, 2)}), flush=True)


def _batches(key: Ed25519PrivateKey, n: int, size: int) -> tuple[list, list[bytes]]:
    out, phys, prev = [], [], ZERO
    for seq in range(n):
        frames = [os.urandom(24) for _ in range(size)]
        phys += frames
        recs = [Record.heard(f, i * 1000, 1_700_000_000_000 + i, 868100000, 7, -80, 6.5) for i, f in enumerate(frames)]
        b = make_batch(key, EUI, seq, recs[0].time_ms, recs[-1].time_ms, recs, prev)
        out.append(b)
        prev = b.hash()
    return out, phys


def ingest(n: int = 30, size: int = MAX_RECORDS) -> None:
    key = Ed25519PrivateKey.generate()
    pub = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw).hex()
    batches, phys = _batches(key, n, size)
    with tempfile.TemporaryDirectory() as d:
        with Ledger(Path(d) / "direct.sqlite") as led:
            led.add_gateway(EUI.hex(), pub)
            t0 = time.perf_counter()
            for b in batches:
                led.ingest(b)
            took = time.perf_counter() - t0
            print(json.dumps({"bench": "ledger_ingest", "path": "direct", "batches": n, "records_each": size,
                              "batches_per_s": round(n / took, 1), "records_per_s": round(n * size / took)}),
                  flush=True)
            t0 = time.perf_counter()
            proofs = led.prove(phys[len(phys) // 2])
            print(json.dumps({"bench": "ledger_prove", "records_in_ledger": n * size, "found": len(proofs),
                              "audit_path": len(proofs[0]["path"]),
                              "ms": round(1000 * (time.perf_counter() - t0), 2)}), flush=True)
        path = Path(d) / "served.sqlite"
        with Ledger(path) as led:
            led.add_gateway(EUI.hex(), pub)
        with LedgerService(path, port=0).start() as svc:
            url = f"http://127.0.0.1:{svc.address[1]}/batches"
            t0 = time.perf_counter()
            for b in batches:
                body = b.header.encode() + b.signature + b"".join(r.encode() for r in b.records)
                with urllib.request.urlopen(urllib.request.Request(url, data=body, method="POST"), timeout=60) as r:
                    assert r.status == 200
            took = time.perf_counter() - t0
            print(json.dumps({"bench": "ledger_ingest", "path": "http", "batches": n, "records_each": size,
                              "batches_per_s": round(n / took, 1), "records_per_s": round(n * size / took),
                              "body_kb": round((HEADER.size + 64 + size * RECORD.size) / 1024, 1)}), flush=True)


if __name__ == "__main__":
    saturated()
    ingest()
