"""The witness judge (loraspot.proofs.witness) on beacons and batches made here: its distance and
path-loss figures against known values, and each flag for the case it names."""

from __future__ import annotations

import base64
import hashlib
import math
import os

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from loraspot.proofs import witness
from loraspot.proofs.ledger import Ledger
from loraspot.proofs.receipts import ZERO, Record, make_batch

from tests.host.test_ledger import _pub

A, B = bytes.fromhex("024C53FFFE00000A"), bytes.fromhex("024C53FFFE00000B")
T0 = 1_765_000_000_000
FREQ = 868_100_000


def _beacon(key: Ed25519PrivateKey, eui: bytes, n: int, lat: float, lon: float, t: int = T0) -> bytes:
    body = witness.BODY.pack(witness.MAGIC, eui, n, t, round(lat * 1e7), round(lon * 1e7), 10, os.urandom(16))
    return body + key.sign(body)


def test_the_figures():
    assert witness.distance_m((52.0, 5.0), (53.0, 5.0)) == pytest.approx(111_195, rel=1e-4)  # a degree of latitude
    assert witness.path_loss_db(1, FREQ, 2.7) == pytest.approx(20 * math.log10(FREQ) - 147.55)
    assert witness.path_loss_db(1000, FREQ, 2.7) - witness.path_loss_db(100, FREQ, 2.7) == pytest.approx(27.0)
    assert witness.parse(b"\x40" + bytes(114)) is None and witness.SIZE == 115


def scenario(path) -> tuple[bytes, bytes, bytes]:
    """A ledger at path with two hotspots' receipts of each other's beacons: A at (52, 5), B claiming
    1 km north of it (at 14 dBm and n = 2.7 the model expects about -99 dBm there). A hears B 2 dB off
    the model; B hears A, then A's beacon again a minute later, a forgery in A's name, and itself.
    Returns the beacons of A and B and the forgery."""
    ka, kb = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    beacon_a = _beacon(ka, A, 0, 52.0, 5.0)
    beacon_b = _beacon(kb, B, 0, 52.0 + 1000 / 111_195, 5.0)
    forged = beacon_a[:-64] + os.urandom(64)
    expected = 14 - witness.path_loss_db(1000, FREQ, 2.7)

    def heard(phy: bytes, rssi: float, t: int = T0 + 300, sent: bool = False) -> Record:
        return Record.heard(phy, 0, t, FREQ, 7 | (witness.SENT if sent else 0), 14 if sent else rssi, 5.0)

    a_records = [heard(beacon_a, 0, T0, sent=True), heard(beacon_b, expected + 2)]
    b_records = [heard(beacon_b, 0, T0, sent=True), heard(beacon_a, expected - 1),   # honest
                 heard(beacon_a, expected - 1, T0 + 60_000),                          # heard again a minute later
                 heard(forged, expected), heard(beacon_b, -30)]                       # never sent; itself
    with Ledger(path) as led:
        for eui, key, recs in ((A, ka, a_records), (B, kb, b_records)):
            led.add_gateway(eui.hex(), _pub(key).hex())
            led.ingest(make_batch(key, eui, 0, T0, T0 + 60_000, recs, ZERO))
    return beacon_a, beacon_b, forged


def test_each_case_gets_its_flag(tmp_path):
    beacon_a, beacon_b, forged = scenario(tmp_path / "l.sqlite")
    with Ledger(tmp_path / "l.sqlite") as led:
        found = [j.as_dict() for j in witness.judge(led, [witness.parse(p) for p in (beacon_a, beacon_b, forged)])]
        far = [j.as_dict() for j in witness.judge(led, [witness.parse(p) for p in (beacon_a, beacon_b)],
                                                  tolerance_db=10, environment="urban")]

    def flags(beacon: bytes, by: bytes | None) -> list[list[str]]:
        h = hashlib.sha256(beacon).hexdigest()
        return [j["flags"] for j in found if j["frame"] == h and j["witness"] == (by.hex().upper() if by else None)]

    assert flags(beacon_b, None) == [[]] and flags(beacon_b, A) == [[]]  # honest, 2 dB off the model
    assert flags(beacon_a, None) == [[]]
    assert flags(beacon_a, B) == [["duplicate"], ["duplicate", "replayed"]]
    assert flags(forged, None) == [["never_sent"]] and flags(forged, B) == [["never_sent"]]
    assert flags(beacon_b, B) == [["self_witness", "too_weak"]]  # -30 dBm where 0 m away the model says -17
    # the same link judged for a town (n = 3.5): the model expects far less there, so it is too strong
    h = hashlib.sha256(beacon_b).hexdigest()
    assert [j["flags"] for j in far if j["witness"] == A.hex().upper() and j["frame"] == h] == [["too_strong"]]


def test_the_coverage_map_data(tmp_path):
    beacons = [witness.parse(p) for p in scenario(tmp_path / "l.sqlite")]
    with Ledger(tmp_path / "l.sqlite") as led:
        cover = witness.coverage(led, [b for b in beacons if b is not None])
    assert set(cover["hotspots"]) == {A.hex().upper(), B.hex().upper()}
    assert cover["hotspots"][A.hex().upper()] == (52.0, 5.0)
    # A heard B (honest); B heard A twice (a duplicate, the second a replay); no self-link, no forgery
    links = sorted((x["from"][-2:], x["to"][-2:], tuple(x["flags"])) for x in cover["links"])
    assert links == [("0A", "0B", ("duplicate",)), ("0A", "0B", ("duplicate", "replayed")), ("0B", "0A", ())]


def test_the_report_cli_draws_the_coverage_map(tmp_path, capsys):
    import json

    from loraspot.cli.main import main

    from tests.e2e.test_report_browser import _recording

    _recording(tmp_path / "r.jsonl", gps=False)
    frames = tmp_path / "frames.jsonl"
    frames.write_text("".join(json.dumps({"phy": base64.b64encode(p).decode()}) + "\n"
                              for p in scenario(tmp_path / "l.sqlite")))
    out = str(tmp_path / "report.html")
    assert main(["--json", "report", str(tmp_path / "r.jsonl"), "--out", out, "--ledger", str(tmp_path / "l.sqlite"),
                 "--frames", str(frames)]) == 0
    series = json.loads(capsys.readouterr().out)["series"]["coverage"]
    assert sum(x.startswith("hotspot:") for x in series) == 2 and sum(x.startswith("flagged:") for x in series) == 2
    assert main(["report", str(tmp_path / "r.jsonl"), "--out", out, "--ledger", str(tmp_path / "l.sqlite")]) == 2
    err = capsys.readouterr().err
    assert "needs both --ledger and --frames" in err and "Traceback" not in err
