"""Signed receipts end to end (docs/proofs.md): three virtual hotspots with their identity keys,
nodes placed so that each frame is heard by one, two or none of them (one node a GPS tracker with
an ABP session), `loraspot listen` as the network server and the ledger service taking the batches
the hotspots upload. Every frame a hotspot forwarded is in exactly one batch of that hotspot's
chain; the chains stay continuous across a reboot; a frame's inclusion proofs verify offline with
the gateways' public keys only, and the tracker's positions come out of `ledger track` with them."""

from __future__ import annotations

import base64
import hashlib
import json
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat, PublicFormat
from loraspot import boards, budget, device
from loraspot.errors import LoraspotError
from loraspot.flash import image
from loraspot.flash.mpy import compiled_firmware
from loraspot.listen.server import Listener
from loraspot.lorawan import frame as lwframe
from loraspot.lorawan import lpp
from loraspot.proofs.ledger import Ledger
from loraspot.proofs.service import LedgerService
from loraspot.provision.provision import eui64
from loraspot.sim.medium import F_CRC, Cfg, Medium, MediumClient

from tests.e2e.conftest import ROOT
from tests.e2e.hotspot_world import FREQ, SF, Events, wait

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

SPEED = 10
INTERVAL_S = 20  # board seconds: a batch closed every 2 s of wall time at SPEED
# the smallest heap budget.check_features offers receipts in: the measured need and the headroom
HEAP_KB = budget.FEATURE_NEED_KB[("hotspot-udp", "littlefs", "receipts")] + budget.HEADROOM_KB
STATUS_HEAP_KB = budget.FEATURE_NEED_KB[("hotspot-udp", "littlefs", "status+receipts")] + budget.HEADROOM_KB
MQTT_HEAP_KB = budget.FEATURE_NEED_KB[("hotspot-mqtt", "littlefs", "receipts")] + budget.HEADROOM_KB
HOTSPOTS = [(0.0, 0.0, 0.0), (8000.0, 0.0, 0.0), (16000.0, 0.0, 0.0)]
# 14 dBm at SF7 reaches about 9 km on the medium's path loss: A is heard by hotspots 0 and 1, B by 1
# and 2, C by all three, the tracker by 0 only, D (far off) by none
NODES = {"A": (3000.0, 0.0, 0.0), "B": (13000.0, 0.0, 0.0), "C": (8000.0, 0.0, 0.0), "T": (-3000.0, 0.0, 0.0),
         "D": (60000.0, 0.0, 0.0)}
TRACKER = ("70B3D57ED0000777", bytes.fromhex("26011B77"), bytes(range(16)), bytes(range(16, 32)))


def identity() -> tuple[bytes, bytes]:
    key = Ed25519PrivateKey.generate()
    return (key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption()),
            key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw))


def receipts_image(path: Path, server_port: int, ledger_port: int, seed: bytes, pub: bytes,
                   interval_s: int = INTERVAL_S, **extra) -> Path:
    """A hotspot with a stock image's layout (the library on littlefs, as on the boards with PSRAM
    receipts are offered on), its identity key in its secrets as keys.identity leaves it."""
    profile = boards.get("virtual-ota")
    cfg = {"role": "hotspot", "single_freq": FREQ, "single_sf": SF, "server_port": server_port,
           "packet_events": False, "receipts_interval": interval_s, "ledger_server": "127.0.0.1",
           "ledger_server_port": ledger_port, **extra}
    files = image.app_files(profile, cfg, mpy_dir=compiled_firmware(ROOT / ".venv" / "mpy-cache"))
    files["secrets.json"] = json.dumps({"identity_key": seed.hex(), "identity_pub": pub.hex()}).encode()
    image.create_flash_image(path, profile, files)
    return path


def tracker_uplink(fcnt: int, lat: float, lon: float) -> bytes:
    _, addr, nwk, app = TRACKER
    payload = lpp.encode([(1, 136, {"lat": lat, "lon": lon, "alt": 12.5})])
    return lwframe.build(nwk, app, addr[::-1], fcnt, uplink=True, fport=2, payload=payload)


def send(node: MediumClient, phy: bytes) -> None:
    node.transmit(phy, Cfg(FREQ, SF, 125_000, 5, 8, F_CRC, 0x34, 14))
    node.tx_done()


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "loraspot", *args], capture_output=True, text=True, timeout=120,
                          cwd=cwd)


def test_three_hotspots_sign_every_frame_they_heard_once_and_the_proofs_verify(make_board, tmp_path):
    taken: list[dict] = []
    outs: list[str] = []

    def run(*args: str) -> subprocess.CompletedProcess:
        r = cli(*args, cwd=tmp_path)
        outs.append(r.stdout + r.stderr)
        return r
    ledger_path = tmp_path / "ledger.sqlite"
    eui, addr, nwk, app = TRACKER
    abp = {addr.hex().upper(): (eui, nwk, app)}
    with Medium(speed=SPEED) as medium, Listener({}, port=0, abp=abp) as ls, \
            LedgerService(ledger_path, port=0, log=taken.append).start() as svc:
        keys, harness, events, seeds = [], [], [], []
        for i, pos in enumerate(HOTSPOTS):
            seed, pub = identity()
            # the first one also serves its status page, which shows the chain head
            page = {"http_port": 80} if i == 0 else {}
            path = receipts_image(tmp_path / f"hs{i}.bin", ls.address[1], svc.address[1], seed, pub, **page)
            h = make_board(path, speed=SPEED, medium=medium.address, register=False, position=pos,
                           heap_kb=STATUS_HEAP_KB if page else HEAP_KB)
            ev = Events(h.info["url"])
            gw = eui64(ev.hello["id"])
            if i < 2:  # the third one's key reaches the ledger late: its first upload is refused, kept, sent again
                svc.ledger.add_gateway(gw, pub.hex())
            keys.append((gw, pub))
            seeds.append(seed)
            harness.append(h)
            events.append(ev)
        try:
            for ev in events:
                assert wait(lambda ev=ev: ev.client.request("stats").get("backhaul") == "up", 60), ev.events[-5:]
            nodes = {name: MediumClient(medium.address, name, pos, speed=SPEED) for name, pos in NODES.items()}
            sent: list[bytes] = []
            fcnt = 0

            def round_of_frames(tag: int) -> None:
                nonlocal fcnt
                for name in ("A", "B", "C", "D"):
                    for k in range(3):
                        phy = bytes([0x40, tag, k, ord(name), 0x26, 0, k, 0]) + hashlib.sha256(b"%d%s%d" % (
                            tag, name.encode(), k)).digest()[:12]
                        send(nodes[name], phy)
                        sent.append(phy)
                for _ in range(2):
                    phy = tracker_uplink(fcnt, 52.3702 + fcnt / 1000, 4.8952 - fcnt / 1000)
                    fcnt += 1
                    send(nodes["T"], phy)
                    sent.append(phy)

            def heard_by() -> dict[str, Counter]:
                out: dict[str, Counter] = {gw: Counter() for gw, _ in keys}
                for f in list(ls.frames):
                    for g in f["gateways"]:
                        out[g["eui"].upper()][base64.b64decode(f["phy"])] += 1
                return out

            round_of_frames(1)
            # then a reboot of the hotspot that hears most: its chain goes on from where it was
            assert wait(lambda: sum(heard_by()[keys[1][0]].values()) >= 9, 60), heard_by()
            # each hotspot closes its batch at the interval's end (stats carry the chain's figures)
            for ev in events:
                assert wait(lambda ev=ev: ev.client.request("stats")["receipts"]["seq"] >= 1, 60), \
                    ev.client.request("stats")["receipts"]
            late = keys[2][0]
            assert wait(lambda: any(t.get("reason") == "unknown_gateway" for t in taken), 60), taken
            assert events[2].client.request("receipts")["held"] >= 1  # kept on the board
            svc.ledger.add_gateway(late, keys[2][1].hex())
            before = events[1].client.request("receipts")
            device.reboot(events[1].client, wait=60)
            after = events[1].client.request("receipts")
            assert (after["seq"], after["head"]) == (before["seq"], before["head"])  # the head kept
            round_of_frames(2)
            round_of_frames(3)
            # every hotspot forwarded what it was placed to hear, in every round (8, 9 and 6 frames a round)
            want = [3 * 6, 3 * 8, 3 * 9]
            assert wait(lambda: sorted(sum(c.values()) for c in heard_by().values()) == want, 60), \
                ({gw: sum(c.values()) for gw, c in heard_by().items()}, [h.status[-4:] for h in harness])
            heard = heard_by()

            def ledger_records() -> int:
                return svc.ledger.db.execute("SELECT count(*) FROM records").fetchone()[0]

            # and each one's receipts closed into batches and uploaded: as many records as frames heard
            assert wait(lambda: ledger_records() == sum(want), 120), (ledger_records(), taken[-5:])
            # the status page shows the chain head the ledger has
            with urllib.request.urlopen(f"http://127.0.0.1:{harness[0].board.parts.http_port}/status.json",
                                        timeout=20) as r:
                shown = json.loads(r.read())["receipts"]
            ledger_head = svc.head(keys[0][0])
            assert ledger_head is not None
            assert (shown["seq"] - 1, shown["head"], shown["held"]) == (ledger_head["seq"], ledger_head["head"], 0)
            with urllib.request.urlopen(f"http://127.0.0.1:{harness[0].board.parts.http_port}/", timeout=20) as r:
                assert shown["head"] in r.read().decode()
        finally:
            for ev in events:
                ev.close()
    refused = [t for t in taken if not t["ok"]]
    assert refused and {(t["gateway_eui"], t["reason"]) for t in refused} == {(late, "unknown_gateway")}, refused
    by_gw = {gw: {base64.b64decode(f["phy"]) for f in ls.frames if any(g["eui"].upper() == gw for g in f["gateways"])}
             for gw, _ in keys}
    # who heard what, as placed: D by no one, C by all, the tracker by hotspot 0 only
    tracker_frames = [p for p in sent if p[1:5] == addr[::-1]]
    assert all(p in by_gw[keys[0][0]] and p not in by_gw[keys[1][0]] for p in tracker_frames)
    assert not any(p[3] == ord("D") for f in by_gw.values() for p in f if len(p) == 20)
    assert all(sum(p in f for f in by_gw.values()) == 3 for p in sent if len(p) == 20 and p[3] == ord("C"))
    with Ledger(ledger_path) as led:
        for gw, _ in keys:
            rows = led.db.execute("SELECT b.seq, r.phy_hash FROM records r JOIN batches b ON b.id = r.batch "
                                  "WHERE b.eui = ? ORDER BY b.seq, r.idx", (gw,)).fetchall()
            hashes = Counter(h for _, h in rows)
            want = {hashlib.sha256(p).digest() for p in heard[gw]}
            assert set(hashes) == want and set(hashes.values()) == {1}, gw  # each frame once, none missing
            seqs = [s for (s,) in led.db.execute("SELECT seq FROM batches WHERE eui = ? ORDER BY seq", (gw,))]
            assert seqs == list(range(len(seqs))) and len(seqs) >= 2, (gw, seqs, taken)  # one chain, from 0
    # a frame heard by all three: three proofs, each verifying offline with its gateway's key only
    c_frame = next(p for p in sent if len(p) == 20 and p[3] == ord("C"))
    r = run("ledger", "prove", "--ledger", str(ledger_path), "--frame", c_frame.hex())
    assert r.returncode == 0, r.stderr
    proofs = json.loads(r.stdout)
    assert sorted(p["gateway_eui"] for p in proofs) == sorted(gw for gw, _ in keys)
    for gw, pub in keys:
        one = tmp_path / f"proof-{gw}.json"
        one.write_text(json.dumps([p for p in proofs if p["gateway_eui"] == gw]))
        r = run("ledger", "verify", str(one), "--key", pub.hex(), "--frame", c_frame.hex())
        assert r.returncode == 0 and "proof holds" in r.stdout, r.stdout + r.stderr
        other = next(k for g, k in keys if g != gw)
        r = run("ledger", "verify", str(one), "--key", other.hex())
        assert r.returncode != 0 and "Traceback" not in r.stderr, r.stderr
    # the tracker's track: every position with the proof of the hotspot that heard it
    frames_file = tmp_path / "frames.jsonl"
    frames_file.write_text("".join(json.dumps(f) + "\n" for f in ls.frames))
    r = run("--json", "ledger", "track", eui.lower(), "--ledger", str(ledger_path), "--frames", str(frames_file))
    assert r.returncode == 0, r.stderr
    track = json.loads(r.stdout)
    assert [p["fcnt"] for p in track] == list(range(fcnt))
    assert all(p["proven_by"] == [keys[0][0]] for p in track), track
    assert track[0]["lat"] == pytest.approx(52.3702) and track[-1]["lon"] == pytest.approx(4.8952 - (fcnt - 1) / 1000)
    # no identity key in anything the boards said or the tools made (as the identity test scans)
    said = json.dumps([[e.kind, e.data] for ev in events for e in ev.events]) + json.dumps(shown) + "".join(outs)
    stored = ledger_path.read_bytes() + json.dumps(proofs).encode()
    for seed in seeds:
        assert seed.hex() not in said.lower() and base64.b64encode(seed).decode() not in said
        assert seed not in stored and seed.hex().encode() not in stored


def _frame(tag: int, k: int) -> bytes:
    return bytes([0x40, tag, k, 0x50, 0x26, 0, k, 0]) + hashlib.sha256(b"cut %d %d" % (tag, k)).digest()[:12]


@pytest.mark.long
@pytest.mark.timeout(1800)  # a board per flash operation: beyond the suite's 300 s hang guard
def test_a_power_cut_after_any_flash_write_of_a_close_leaves_one_continuous_chain(make_board, tmp_path):
    """A hotspot whose chain has a batch in the ledger and three frames in its open batch is cut
    off after the k-th flash erase or program since power-on, for every k across its boot, the
    close of that batch (records renamed, header signed and written, chain state saved) and its
    upload (the files removed once the ledger has it), until a run completes with no cut. After
    each cut the board powers up again: the ledger ends with the batch once, its three records once,
    following batch 0 in one chain, and the chain goes on with the next batch."""
    seed, pub = identity()
    base, base_ledger = tmp_path / "base.bin", tmp_path / "base.sqlite"
    with Medium(speed=SPEED) as medium, Listener({}, port=0) as ls:
        with LedgerService(base_ledger, port=0).start() as svc:
            receipts_image(base, ls.address[1], svc.address[1], seed, pub, interval_s=86400)
            h = make_board(base, speed=SPEED, medium=medium.address, register=False, heap_kb=HEAP_KB)
            ev = Events(h.info["url"])
            gw = eui64(ev.hello["id"])
            svc.ledger.add_gateway(gw, pub.hex())
            node = MediumClient(medium.address, "n", (10.0, 0.0, 0.0), speed=SPEED)
            try:
                assert wait(lambda: ev.client.request("stats").get("backhaul") == "up", 60)
                for k in range(2):
                    send(node, _frame(0, k))
                assert wait(lambda: ev.client.request("receipts")["records"] == 2, 60)
                ev.client.request("receipts.close")
                assert wait(lambda: ev.client.request("receipts")["sent"] == 1, 60), ev.client.request("receipts")
                for k in range(3):
                    send(node, _frame(1, k))
                assert wait(lambda: ev.client.request("receipts")["records"] == 5, 60)
            finally:
                ev.close()
                node.close()
                h.stop()
        first = {hashlib.sha256(_frame(1, k)).digest() for k in range(3)}
        port = svc.address[1]  # the port the image names: each run's ledger listens there
        cuts = 0
        k = 1
        while True:
            flash, ledger = tmp_path / f"cut{k}.bin", tmp_path / f"cut{k}.sqlite"
            flash.write_bytes(base.read_bytes())
            efuse = flash.with_name(flash.name + ".efuse.json")  # the same chip: its MAC, its gateway EUI
            efuse.write_bytes(base.with_name(base.name + ".efuse.json").read_bytes())
            ledger.write_bytes(base_ledger.read_bytes())
            with LedgerService(ledger, port=port).start() as svc:
                h = make_board(flash, speed=SPEED, medium=medium.address, register=False, heap_kb=HEAP_KB,
                               powercut_after=k)
                node = MediumClient(medium.address, "n", (10.0, 0.0, 0.0), speed=SPEED)

                def taken(seq: int, svc=svc) -> bool:
                    return svc.head(gw) is not None and svc.head(gw)["seq"] >= seq

                def close(client) -> None:
                    client.request("receipts.close", timeout=30)

                def one_more(client, node=node, k=k) -> None:
                    """The chain goes on: one more frame (again, if a cut lost it), its batch closed."""
                    if client.request("receipts")["open"] == 0:
                        send(node, _frame(2, k))
                        assert wait(lambda: client.request("receipts")["open"] >= 1, 30)
                    close(client)

                try:
                    _through_cuts(h, lambda _c: taken(1), close)
                    _through_cuts(h, lambda _c: taken(2), one_more)
                finally:
                    node.close()
                    h.stop()
                was_cut = any(s["event"] == "powercut" for s in h.status)
                led = svc.ledger
                seqs = [s for (s,) in led.db.execute("SELECT seq FROM batches WHERE eui = ? ORDER BY seq", (gw,))]
                assert seqs == [0, 1, 2], (k, seqs)
                got = [h_ for (h_,) in led.db.execute(
                    "SELECT r.phy_hash FROM records r JOIN batches b ON b.id = r.batch WHERE b.seq = 1")]
                assert sorted(got) == sorted(first), k  # the three records once, none lost, none twice
            for done in (flash, efuse, ledger):
                done.unlink()
            if not was_cut:
                break
            cuts += 1
            k += 1
    assert cuts > 8, ("a boot, a close and an upload take many flash operations", cuts)


def _through_cuts(h, done, action, timeout: float = 180) -> None:
    """action(console client) until done(client), through a power cut: a request the cut broke is
    made again once the board answers after powering up."""
    end = time.monotonic() + timeout
    ev = None
    errors: list[str] = []
    try:
        while time.monotonic() < end:
            try:
                if ev is None:
                    ev = Events(h.info["url"])
                if done(ev.client):
                    return
                client = ev.client
                action(client)
                wait(lambda client=client: done(client), 10)
            except (LoraspotError, OSError, AssertionError) as e:
                errors.append(repr(e)[:200])
                if ev is not None:
                    ev.close()
                    ev = None
                time.sleep(0.2)  # the board powers up again: a pause between tries, nothing timed
        last = ev.client.request("receipts") if ev is not None else None
        raise AssertionError(f"not done within {timeout} s: {h.status[-6:]} {errors[-3:]} {last}")
    finally:
        if ev is not None:
            ev.close()


def test_batches_leave_over_the_console_where_no_ledger_service_is_set(make_board, tmp_path):
    """A hotspot with receipts on and no ledger_server keeps its closed batches; `loraspot ledger
    pull --port` takes them into the ledger over the console, and each one the ledger has leaves
    the board. One the ledger refuses (it does not know the gateway yet) stays, said in one line."""
    seed, pub = identity()
    ledger = tmp_path / "ledger.sqlite"
    with Medium(speed=SPEED) as medium, Listener({}, port=0) as ls:
        path = receipts_image(tmp_path / "hs.bin", ls.address[1], 1, seed, pub, interval_s=86400, ledger_server="")
        h = make_board(path, speed=SPEED, medium=medium.address, register=False, heap_kb=HEAP_KB)
        url = h.info["url"]
        ev = Events(url)
        node = MediumClient(medium.address, "n", (10.0, 0.0, 0.0), speed=SPEED)
        frames = [_frame(7, k) for k in range(4)]
        try:
            gw = eui64(ev.hello["id"])
            assert wait(lambda: ev.client.request("stats").get("backhaul") == "up", 60)
            for f in frames:
                send(node, f)
            assert wait(lambda: ev.client.request("receipts")["open"] == 4, 60), ev.client.request("receipts")
            assert ev.client.request("receipts.close")["held"] == 1
        finally:
            node.close()
            ev.close()
        r = cli("ledger", "pull", "--ledger", str(ledger), "--port", url, cwd=tmp_path)
        assert r.returncode == 9 and "refused, unknown_gateway" in r.stdout and "kept on the board" in r.stdout, r
        assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
        with Ledger(ledger) as led:
            led.add_gateway(gw, pub.hex())
        r = cli("ledger", "pull", "--ledger", str(ledger), "--port", url, cwd=tmp_path)
        assert r.returncode == 0 and r.stdout.strip() == "batch 0: taken (4 records)", r
        r = cli("ledger", "pull", "--ledger", str(ledger), "--port", url, cwd=tmp_path)
        assert r.returncode == 0 and "no batch held" in r.stdout, r
        with Ledger(ledger) as led:
            got = sorted(x for (x,) in led.db.execute("SELECT phy_hash FROM records"))
        assert got == sorted(hashlib.sha256(f).digest() for f in frames)
        # the board's profile (a stock ESP32's 112 KB with Wi-Fi on) cannot hold receipts: the tool
        # refuses to turn them on again there, in one line, and writes nothing
        r = cli("config", "set", "--port", url, "receipts_interval", "600", cwd=tmp_path)
        assert r.returncode == 2 and "signed receipts do not fit board virtual-ota" in r.stderr, r.stderr
        assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
        ev = Events(url)
        try:
            assert ev.client.request("receipts")["held"] == 0
            assert ev.client.request("config.get", {"key": "receipts_interval"})["value"] == 86400
        finally:
            ev.close()


def test_a_hotspot_on_mqtt_publishes_its_batches_beside_the_gateway_bridge_topics(make_board, tmp_path):
    """With the MQTT backhaul the batches go to the broker (PREFIX/gateway/ID/event/receipts, QoS 1,
    a connection of their own): one leaves the board on the broker's PUBACK, and the ledger service
    takes it even when it was away at the time (its persistent session). `listen` on the same
    broker goes on decoding the Gateway Bridge messages and takes no receipts for them."""
    from tests.broker import Broker

    seed, pub = identity()
    ledger = tmp_path / "ledger.sqlite"
    broker = Broker(tmp_path)
    taken: list[dict] = []
    try:
        with Medium(speed=SPEED) as medium, Listener({}, port=0, udp=False, mqtt=broker.url) as ls:
            path = receipts_image(tmp_path / "hs.bin", 1, 1, seed, pub, interval_s=86400, backhaul="mqtt",
                                  mqtt_port=broker.port, ledger_server="")
            h = make_board(path, speed=SPEED, medium=medium.address, register=False, heap_kb=MQTT_HEAP_KB)
            ev = Events(h.info["url"])
            node = MediumClient(medium.address, "n", (10.0, 0.0, 0.0), speed=SPEED)
            try:
                gw = eui64(ev.hello["id"])
                with Ledger(ledger) as led:
                    led.add_gateway(gw, pub.hex())
                # the service subscribes once, then is away while the batch is published
                LedgerService(ledger, port=0, mqtt=broker.url).close()
                assert wait(lambda: ev.client.request("stats").get("backhaul") == "up", 60), ev.events[-5:]
                frames = [_frame(9, k) for k in range(3)]
                for f in frames:
                    send(node, f)
                assert wait(lambda: ev.client.request("receipts")["open"] == 3, 60), ev.client.request("receipts")
                ev.client.request("receipts.close")
                assert wait(lambda: ev.client.request("receipts")["sent"] == 1, 60), ev.client.request("receipts")
                assert ev.client.request("receipts")["held"] == 0  # the broker has it: it left the board
                assert wait(lambda: ev.client.request("stats")["forwarded"] == 3, 60)  # the uplinks went on
                with LedgerService(ledger, port=0, mqtt=broker.url, log=taken.append) as svc:
                    assert wait(lambda: svc.head(gw) is not None, 60), taken
                    assert svc.head(gw)["seq"] == 0
            finally:
                node.close()
                ev.close()
            assert [t["ok"] for t in taken] == [True]
            with Ledger(ledger) as led:
                got = sorted(x for (x,) in led.db.execute("SELECT phy_hash FROM records"))
            assert got == sorted(hashlib.sha256(f).digest() for f in frames)
            assert wait(lambda: ls.counts["frames"] >= 3, 30) and not ls.counts.get("malformed"), ls.counts
    finally:
        broker.stop()
