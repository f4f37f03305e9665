"""Beacons and witnesses end to end (docs/proofs.md): four virtual hotspots on one channel at known
positions on the medium, each claiming a position in its config; three tell the truth, one claims
to be 8 km from where it is. Each sends a signed beacon; the others keep receipts of it; the ledger
takes their batches and `loraspot ledger witnesses` judges every link with the path-loss model
(log-distance, exponent 2.7, the medium's own). Honest links pass; every link of the liar is
flagged; a replayed beacon, one sent twice, one never sent (forged) and a hotspot hearing its own
beacon are each flagged with their reason. And beacons stay within the region's duty cycle: a
hotspot beaconing too often has the ones beyond it refused."""

from __future__ import annotations

import base64
import hashlib
import json
import math
import os
import time

import pytest
from loraspot import budget
from loraspot.listen.server import Listener
from loraspot.proofs import witness
from loraspot.proofs.ledger import Ledger
from loraspot.proofs.service import LedgerService
from loraspot.provision.provision import eui64
from loraspot.resources import firmware_module
from loraspot.sim.medium import F_CRC, Cfg, Medium, MediumClient

from tests.e2e.hotspot_world import FREQ, Events, wait
from tests.e2e.test_receipts_e2e import cli, identity, receipts_image

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

HEAP_KB = budget.FEATURE_NEED_KB[("hotspot-udp", "littlefs", "receipts")] + budget.HEADROOM_KB
ORIGIN = (52.0, 5.0)  # the claimed positions: metres on the medium, as latitude and longitude around here
REAL = [(0.0, 0.0), (3000.0, 0.0), (0.0, 3000.0), (3000.0, 3000.0)]
CLAIMED = [*REAL[:3], (9000.0, 9000.0)]  # the fourth claims to be 8.5 km from where it is


def beacon_frames_all(frames_file) -> list[bytes]:
    return [base64.b64decode(json.loads(x)["phy"]) for x in frames_file.read_text().splitlines()
            if witness.parse(base64.b64decode(json.loads(x)["phy"])) is not None]


def latlon(xy: tuple[float, float]) -> str:
    x, y = xy
    lat = ORIGIN[0] + y / 111_320
    lon = ORIGIN[1] + x / (111_320 * math.cos(math.radians(ORIGIN[0])))
    return f"{lat:.7f},{lon:.7f},10"


def sent_time(ev: Events, n: int) -> float:
    """When a hotspot queued its beacon number n (host time of its event, which follows the
    receipt it keeps of it: the time the judge counts from)."""
    (at,) = [e.host_time for e in list(ev.events) if e.kind == "beacon" and e.data["n"] == n]
    return at


def test_witnesses_of_beacons_are_judged_by_the_path_loss_model(make_board, tmp_path):
    ledger_path = tmp_path / "ledger.sqlite"
    taken: list[dict] = []
    with Medium() as medium, Listener({}, port=0) as ls, \
            LedgerService(ledger_path, port=0, log=taken.append).start() as svc:
        events, euis = [], []
        for i, (real, claimed) in enumerate(zip(REAL, CLAIMED, strict=True)):
            seed, pub = identity()
            path = receipts_image(tmp_path / f"hs{i}.bin", ls.address[1], svc.address[1], seed, pub, interval_s=86400,
                                  position=latlon(claimed))
            h = make_board(path, medium=medium.address, register=False, heap_kb=HEAP_KB, position=(*real, 0.0))
            ev = Events(h.info["url"])
            euis.append(eui64(ev.hello["id"]))
            svc.ledger.add_gateway(euis[-1], pub.hex())
            events.append(ev)
        near_h1 = MediumClient(medium.address, "replayer", (3000.0, 100.0, 0.0))
        try:
            for ev in events:
                assert wait(lambda ev=ev: ev.client.request("stats").get("backhaul") == "up", 60), ev.events[-5:]

            def records(i: int) -> int:
                return events[i].client.request("receipts")["open"]

            def beacon(i: int) -> None:
                """Hotspot i beacons; the three others keep a receipt of it."""
                before = [records(k) for k in range(4)]
                got = events[i].client.request("receipts.beacon", timeout=30)
                assert got["result"] == "NONE", got
                for k in range(4):
                    want = before[k] + 1  # the sender keeps one too: what it sent
                    assert wait(lambda k=k, want=want: records(k) >= want, 30), (i, k, before)

            for i in range(4):
                beacon(i)

            def beacon_frames() -> dict[str, bytes]:
                out = {}
                for f in list(ls.frames):
                    phy = base64.b64decode(f["phy"])
                    b = witness.parse(phy)
                    if b is not None:
                        out[b.eui] = phy
                return out

            assert wait(lambda: len(beacon_frames()) == 4, 30), beacon_frames().keys()
            frames = beacon_frames()
            cfg = Cfg(FREQ, 7, 125_000, 5, 8, F_CRC, 0x34, 14)
            # hotspot 1's beacon sent again at once (a duplicate); a beacon in hotspot 2's name that
            # it never sent (its signature forged)
            before, before0 = records(2), records(0)
            near_h1.transmit(frames[euis[1]], cfg)
            near_h1.tx_done()
            forged = frames[euis[2]][: witness.BODY.size - 16] + os.urandom(16) + os.urandom(64)
            near_h1.transmit(forged, cfg)
            near_h1.tx_done()
            assert wait(lambda: records(0) >= before0 + 2 and records(2) >= before + 2, 30)
            # hotspot 0's beacon played again once it is old: a replay; hotspot 0 hears it too
            sent_at = sent_time(events[0], 0)
            assert wait(lambda: time.time() > sent_at + witness.TIME_TOLERANCE_MS / 1000 + 1, 30)
            before0 = records(0)
            near_h1.transmit(frames[euis[0]], cfg)
            near_h1.tx_done()
            assert wait(lambda: records(0) > before0, 30)
            # a challenge for hotspot 0: given with the answer to its next upload, it beacons with it
            nonce = svc.challenge(euis[0])
            events[0].client.request("receipts.close", timeout=60)
            assert wait(lambda: events[0].client.request("receipts")["beacons"] == 2, 60), \
                events[0].client.request("receipts")  # (its figures: this boot)
            assert wait(lambda: records(1) >= 1 and records(2) >= 1, 30)  # heard again, in their new batches
            for ev in events:
                ev.client.request("receipts.close", timeout=60)
            # every hotspot's batch taken; hotspot 0's second one too (what it sent answering the challenge)
            assert wait(lambda: all(svc.head(e) is not None for e in euis) and svc.head(euis[0])["seq"] == 1, 60), \
                taken
            assert all(t["ok"] for t in taken), taken
            frames_file = tmp_path / "frames.jsonl"
            frames_file.write_text("".join(json.dumps(f) + "\n" for f in ls.frames))
        finally:
            near_h1.close()
            for ev in events:
                ev.close()
    with Ledger(ledger_path) as led:
        found = [j.as_dict() for j in witness.judge(led, witness.beacons_in(frames_file))]

    def link(beacon_of: int, heard_by: int) -> list[dict]:
        return [j for j in found if j["beacon"].startswith(euis[beacon_of]) and j["witness"] == euis[heard_by]]

    # hotspot 2's beacon: honest witnesses pass, within a few dB of the model; the liar is too strong
    real2 = hashlib.sha256(frames[euis[2]]).hexdigest()
    for k in (0, 1):
        (j,) = [x for x in link(2, k) if x["frame"] == real2]
        assert j["ok"] and abs(j["rssi"] - j["expected_rssi"]) < 3, j
    liar_links = [j for j in found if j["witness"] is not None and euis[3] in (j["witness"], j["beacon"][:16])
                  and "never_sent" not in j["flags"]]
    assert liar_links and all("too_strong" in j["flags"] for j in liar_links), liar_links
    # the duplicate, the forgery, the replay and the self-witness
    assert all("duplicate" in j["flags"] for j in link(1, 0) + link(1, 2)), link(1, 0)
    never = [j for j in found if j["witness"] is None and "never_sent" in j["flags"]]
    assert [j["frame"] for j in never] == [hashlib.sha256(forged).hexdigest()], never  # the forged frame only
    assert any("replayed" in j["flags"] for j in link(0, 1) + link(0, 2))
    assert [j["flags"] for j in link(0, 0)] and all("self_witness" in j["flags"] for j in link(0, 0))
    # the beacon that answered the challenge carries its nonce, and its honest witnesses pass
    (answer,) = [j for j in found if j["witness"] is None and j["challenge"]]
    assert answer["beacon"] == f"{euis[0]}#1" and answer["ok"], answer
    answered = [b for b in map(witness.parse, beacon_frames_all(frames_file)) if b and b.name == answer["beacon"]]
    assert answered and answered[0].nonce == nonce
    assert all(j["ok"] for j in found if j["frame"] == answer["frame"] and j["witness"] in (euis[1], euis[2]))
    # the CLI says the same, one line per beacon and witness, and exits 9
    r = cli("ledger", "witnesses", "--ledger", str(ledger_path), "--frames", str(frames_file), cwd=tmp_path)
    assert r.returncode == 9 and "FLAGGED too_strong" in r.stdout and "never_sent" in r.stdout, r.stdout + r.stderr
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr


def test_beacons_stay_within_the_duty_cycle(make_board, tmp_path):
    """A hotspot at SF12 set to beacon every 10 s: the region's 1 % in the rolling hour (36 s of
    airtime) is reached after a few, and the ones beyond it are refused and counted."""
    speed = 20
    air = firmware_module("spot/radio/airtime.py")
    toa_ms = air.time_on_air_us(witness.SIZE, 12, 125_000, 5, 8, True, True, True) / 1000
    seed, pub = identity()
    with Medium(speed=speed) as medium, Listener({}, port=0) as ls:
        path = receipts_image(tmp_path / "hs.bin", ls.address[1], 1, seed, pub, interval_s=86400, single_sf=12,
                              beacon_interval=10, ledger_server="")
        h = make_board(path, speed=speed, medium=medium.address, register=False, heap_kb=HEAP_KB)
        ev = Events(h.info["url"])
        try:
            assert wait(lambda: ev.client.request("receipts")["beacons_refused"] >= 2, 120), \
                ev.client.request("receipts")
            sent = ev.client.request("receipts")["beacons"]
        finally:
            ev.close()
    assert sent >= 2 and sent * toa_ms <= 36_000 < (sent + 1) * toa_ms, (sent, toa_ms)


def test_gps_timed_hotspots_are_held_to_a_second(make_board, tmp_path):
    """Two hotspots with a GPS receiver (as a T-Beam) take their time from it, a third from NTP (the
    host's clock). A beacon from the first carries GPS time, true to within the tolerance; the
    second's receipt of it is GPS-timed, the third's is not. Played again two seconds later, the
    beacon's GPS-timed witness is flagged as a replay by the one-second tolerance, while the
    NTP-timed one, held to the wider tolerance, is not."""
    ledger_path = tmp_path / "ledger.sqlite"
    gps = [True, True, False]
    with Medium() as medium, Listener({}, port=0) as ls, LedgerService(ledger_path, port=0).start() as svc:
        events, euis = [], []
        for i, has_gps in enumerate(gps):
            seed, pub = identity()
            path = receipts_image(tmp_path / f"hs{i}.bin", ls.address[1], svc.address[1], seed, pub, interval_s=86400,
                                  position=latlon(REAL[i]))
            hardware = {"gps": {"lat": 52.0, "lon": 5.0}} if has_gps else {}
            h = make_board(path, medium=medium.address, register=False, heap_kb=HEAP_KB, position=(*REAL[i], 0.0),
                           hardware=hardware)
            events.append(Events(h.info["url"]))
            euis.append(eui64(events[-1].hello["id"]))
            svc.ledger.add_gateway(euis[-1], pub.hex())
        replayer = MediumClient(medium.address, "replayer", (1500.0, 0.0, 0.0))
        try:
            for i, ev in enumerate(events):
                want = "gps" if gps[i] else "ntp"
                assert wait(lambda ev=ev, want=want: ev.client.request("receipts").get("time") == want, 60), \
                    ev.client.request("receipts")

            def records(i: int) -> int:
                return events[i].client.request("receipts")["open"]

            before = [records(k) for k in range(3)]
            asked = time.time()
            assert events[0].client.request("receipts.beacon", timeout=30)["result"] == "NONE"
            answered = time.time()
            assert wait(lambda: all(records(k) > before[k] for k in range(3)), 30)
            assert wait(lambda: any(witness.parse(base64.b64decode(f["phy"])) for f in list(ls.frames)), 30)
            frame = next(base64.b64decode(f["phy"]) for f in list(ls.frames)
                         if witness.parse(base64.b64decode(f["phy"])))
            sent = witness.parse(frame)
            assert sent is not None and sent.gps, sent
            # its time is true UTC (the virtual receiver's at speed 1): between the request and its answer
            tol = witness.GPS_TIME_TOLERANCE_MS
            assert asked * 1000 - tol <= sent.time_ms <= answered * 1000 + tol, (asked, sent.time_ms, answered)
            # played again once it is past the GPS tolerance
            sent_at = sent_time(events[0], 0)
            assert wait(lambda: time.time() > sent_at + witness.GPS_TIME_TOLERANCE_MS / 1000 + 1, 30)
            before = [records(k) for k in range(3)]
            replayer.transmit(frame, Cfg(FREQ, 7, 125_000, 5, 8, F_CRC, 0x34, 14))
            replayer.tx_done()
            assert wait(lambda: records(1) > before[1] and records(2) > before[2], 30)
            for ev in events:
                ev.client.request("receipts.close", timeout=60)
            assert wait(lambda: all(svc.head(e) is not None for e in euis), 60)
            frames_file = tmp_path / "frames.jsonl"
            frames_file.write_text("".join(json.dumps(f) + "\n" for f in ls.frames))
        finally:
            replayer.close()
            for ev in events:
                ev.close()
    with Ledger(ledger_path) as led:
        # an NTP tolerance wider than any pause of a busy machine: only the GPS tolerance can flag here
        found = [j.as_dict() for j in witness.judge(led, witness.beacons_in(frames_file), time_tolerance_ms=60_000)]
    by = {k: sorted((j for j in found if j["witness"] == euis[k]), key=lambda j: j["delay_ms"]) for k in (1, 2)}
    (first1, again1), (first2, again2) = by[1], by[2]
    # each witness heard the one beacon twice (both receipts flagged duplicate), and sent none itself
    # (no claimed position of its own: no_position); the time is what differs
    def timing(j: dict) -> set[str]:
        return set(j["flags"]) - {"duplicate", "no_position"}

    assert first1["gps_time"] and not timing(first1), first1
    assert abs(first1["delay_ms"]) <= witness.GPS_TIME_TOLERANCE_MS, first1
    assert again1["gps_time"] and timing(again1) == {"replayed"}, again1
    assert not first2["gps_time"] and not timing(first2), first2
    assert not again2["gps_time"] and not timing(again2) and again2["delay_ms"] > witness.GPS_TIME_TOLERANCE_MS, again2
