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
from loraspot.proofs.receipts import GPS_TIME, SENT, ZERO, Record, make_batch

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
    """A ledger at path (a file or a PostgreSQL URL) with two hotspots' receipts of each other's
    beacons: A at (52, 5), B claiming 1 km north of it (at 14 dBm and n = 2.7 the model expects
    about -99 dBm there). A hears B 2 dB off the model; B hears A, then A's beacon again a minute
    later, a forgery in A's name, and itself. Returns the beacons of A and B and the forgery."""
    ka, kb = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    beacon_a = _beacon(ka, A, 0, 52.0, 5.0)
    beacon_b = _beacon(kb, B, 0, 52.0 + 1000 / 111_195, 5.0)
    forged = beacon_a[:-64] + os.urandom(64)
    expected = 14 - witness.path_loss_db(1000, FREQ, 2.7)

    def heard(phy: bytes, rssi: float, t: int = T0 + 300, sent: bool = False) -> Record:
        return Record.heard(phy, 0, t, FREQ, 7 | (SENT if sent else 0), 14 if sent else rssi, 5.0)

    a_records = [heard(beacon_a, 0, T0, sent=True), heard(beacon_b, expected + 2)]
    b_records = [heard(beacon_b, 0, T0, sent=True), heard(beacon_a, expected - 1),   # honest
                 heard(beacon_a, expected - 1, T0 + 60_000),                          # heard again a minute later
                 heard(forged, expected), heard(beacon_b, -30)]                       # never sent; itself
    with Ledger(path) as led:
        for eui, key, recs in ((A, ka, a_records), (B, kb, b_records)):
            led.add_gateway(eui.hex(), _pub(key).hex())
            led.ingest(make_batch(key, eui, 0, T0, T0 + 60_000, recs, ZERO))
    return beacon_a, beacon_b, forged


def test_each_case_gets_its_flag(store_target):
    beacon_a, beacon_b, forged = scenario(store_target)
    with Ledger(store_target) as led:
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


def test_gps_timed_pairs_are_held_to_the_narrow_tolerance(tmp_path):
    """A beacon whose time is GPS time (its time field's top byte) heard 1.5 s after it went out (the
    sender's receipt of it, plus its airtime): a replay for a GPS-timed receipt (1 s), in time for
    an NTP-timed one (5 s); within 1 s, in time for both. The time source is read from the frame and
    the records, not assumed."""
    ka = Ed25519PrivateKey.generate()
    t = T0 | witness.GPS_SOURCE << 56
    beacon = _beacon(ka, A, 0, 52.0, 5.0, t)
    b = witness.parse(beacon)
    assert b is not None and b.gps and b.time_ms == T0
    plain = witness.parse(_beacon(ka, A, 1, 52.0, 5.0))
    assert plain is not None and not plain.gps and plain.time_ms == T0
    # the beacon's airtime (115 bytes, 125 kHz, 4/5, explicit header, CRC; Semtech AN1200.13's
    # formula by hand): 12.25 + 178 symbols of 1.024 ms at SF7, 12.25 + 123 of 32.768 ms at SF12
    assert witness.airtime_ms(7) == pytest.approx(194.8, abs=0.1)
    assert witness.airtime_ms(12) == pytest.approx(4431.9, abs=0.1)
    air = round(witness.airtime_ms(7))
    flags = []
    for gps_time, delay in ((True, 1500), (False, 1500), (True, 900), (False, 900)):
        path = tmp_path / f"{gps_time}{delay}.sqlite"
        sf = 7 | (GPS_TIME if gps_time else 0)
        # the sender's receipt as it queued the beacon, 2 s after the beacon's own time (its signing)
        recs_a = [Record.heard(beacon, 0, T0 + 2000, FREQ, sf | SENT | GPS_TIME, 14, 0)]
        recs_b = [Record.heard(beacon, 0, T0 + 2000 + air + delay, FREQ, sf, -90, 5.0)]
        kb = Ed25519PrivateKey.generate()
        with Ledger(path) as led:
            for eui, key, recs in ((A, ka, recs_a), (B, kb, recs_b)):
                led.add_gateway(eui.hex(), _pub(key).hex())
                led.ingest(make_batch(key, eui, 0, T0, T0 + 60_000, recs, ZERO))
            (j,) = [j for j in witness.judge(led, [b]) if j.witness == B.hex().upper()]
        assert j.gps_time == gps_time and j.delay_ms == delay
        flags.append("replayed" in j.flags)
    assert flags == [True, False, False, False]
    assert Record.heard(beacon, 0, T0, FREQ, 9 | GPS_TIME | SENT, 14, 0).spreading_factor == 9


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


def test_a_beacon_claiming_a_time_before_its_challenge_is_flagged(tmp_path):
    """A nonce the ledger service gave at some moment cannot be in a beacon made before it: one
    that says so (its own time earlier) is flagged; one made after carries it and passes."""
    beacon_a, beacon_b, _ = scenario(tmp_path / "l.sqlite")
    a, b = witness.parse(beacon_a), witness.parse(beacon_b)
    assert a is not None and b is not None
    with Ledger(tmp_path / "l.sqlite") as led:
        for beacon, given_s in ((a, T0 / 1000 + 3600), (b, T0 / 1000 - 3600)):  # given after A's beacon, before B's
            led.db.execute("INSERT INTO challenges VALUES (?, ?, ?, ?)", (beacon.eui, beacon.nonce, given_s, given_s))
        found = {j.beacon: j.as_dict() for j in witness.judge(led, [a, b]) if j.witness is None}
    assert found[a.name]["challenge"] and "before_challenge" in found[a.name]["flags"]
    assert found[b.name]["challenge"] and found[b.name]["ok"]


def test_the_service_gives_a_challenge_with_the_answer_to_the_next_upload(tmp_path):
    import json
    import urllib.request

    from loraspot.proofs.receipts import make_batch
    from loraspot.proofs.service import LedgerService

    key = Ed25519PrivateKey.generate()
    with Ledger(tmp_path / "l.sqlite") as led:
        led.add_gateway(A.hex(), _pub(key).hex())
    batches, prev = [], ZERO
    for seq in range(3):
        batches.append(make_batch(key, A, seq, T0, T0 + 1, [Record.heard(os.urandom(20), 0, T0, FREQ, 7, -80, 5.0)],
                                  prev))
        prev = batches[-1].hash()
    with LedgerService(tmp_path / "l.sqlite", port=0).start() as svc:
        url = f"http://127.0.0.1:{svc.address[1]}/batches"

        def upload(bt) -> dict:
            body = bt.header.encode() + bt.signature + b"".join(r.encode() for r in bt.records)
            with urllib.request.urlopen(urllib.request.Request(url, data=body, method="POST"), timeout=20) as r:
                return json.loads(r.read())

        assert "challenge" not in upload(batches[0])
        nonce = svc.challenge(A.hex())
        assert upload(batches[1])["challenge"] == nonce.hex()  # given once
        assert "challenge" not in upload(batches[2])
