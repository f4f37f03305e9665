"""The receipts ledger (loraspot.proofs): a chain of signed batches is taken; each way of tampering
is refused with its own reason and leaves the ledger as it was; inclusion proofs verify offline with
only the gateway's public key and fail when anything in them changes. The Merkle tree is checked
against pymerkle's RFC 6962 tree."""

from __future__ import annotations

import dataclasses
import os

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from loraspot.proofs import merkle
from loraspot.proofs.ledger import Ledger, LedgerError, Refused, verify_proof
from loraspot.proofs.receipts import ZERO, Batch, Record, make_batch
from pymerkle import InmemoryTree

EUI = bytes.fromhex("024C53FFFE000001")


def _pub(key: Ed25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


def _frames(n: int, seed: int) -> list[bytes]:
    return [bytes([seed, i]) + os.urandom(20) for i in range(n)]


def _records(frames: list[bytes], t0: int) -> list[Record]:
    return [Record.heard(f, 1000 * i, t0 + i, 868100000, 7, -60 - i, 7.5 - i / 10) for i, f in enumerate(frames)]


def _chain(key: Ed25519PrivateKey, sizes: list[int], eui: bytes = EUI) -> tuple[list[Batch], list[list[bytes]]]:
    batches, frames, prev = [], [], ZERO
    for seq, n in enumerate(sizes):
        f = _frames(n, seq)
        b = make_batch(key, eui, seq, 60000 * seq, 60000 * seq + 59999, _records(f, 60000 * seq), prev)
        batches.append(b)
        frames.append(f)
        prev = b.hash()
    return batches, frames


def test_the_tree_is_rfc6962s():
    for n in range(0, 34):
        data = [os.urandom(9) for _ in range(n)]
        tree = InmemoryTree(algorithm="sha256")
        for d in data:
            tree.append_entry(d)
        leaves = [merkle.leaf_hash(d) for d in data]
        want = tree.get_root() if n else merkle.root([])
        assert merkle.root(leaves) == want
        for i in range(n):
            path = merkle.audit_path(i, leaves)
            assert merkle.root_from_path(i, n, leaves[i], path) == want
            if path:
                assert merkle.root_from_path(i, n, leaves[i], path[:-1]) is None
                assert merkle.root_from_path(i, n, leaves[(i + 1) % n], path) != want or n == 1


def test_a_chain_is_taken_and_every_frame_proven(store_target):
    key = Ed25519PrivateKey.generate()
    batches, frames = _chain(key, [5, 1, 0, 17])
    with Ledger(store_target) as led:
        led.add_gateway(EUI.hex(), _pub(key).hex())
        assert [led.ingest(b) for b in batches] == [0, 1, 2, 3]
        for seq, fs in enumerate(frames):
            for f in fs:
                (proof,) = led.prove(f)
                rec = verify_proof(proof, _pub(key), f)
                assert proof["gateway_eui"] == EUI.hex().upper() and rec.freq == 868100000
                assert bytes.fromhex(proof["header"]) == batches[seq].header.encode()
        assert led.prove(b"never heard") == []


def _refused(led: Ledger, batch: Batch, reason: str) -> None:
    before = led.db.execute("SELECT count(*) FROM batches").fetchone()[0]
    with pytest.raises(Refused) as e:
        led.ingest(batch)
    assert e.value.reason == reason, str(e.value)
    assert led.db.execute("SELECT count(*) FROM batches").fetchone()[0] == before


def test_tampering_is_refused_with_its_reason(store_target):
    key, other = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    batches, _ = _chain(key, [4, 6, 3])
    b0, b1, b2 = batches
    with Ledger(store_target) as led:
        _refused(led, b0, "unknown_gateway")
        led.add_gateway(EUI.hex(), _pub(key).hex())
        led.ingest(b0)
        # a record changed (its RSSI), dropped, added, and two swapped
        recs = list(b1.records)
        changed = [dataclasses.replace(recs[0], rssi=recs[0].rssi + 30), *recs[1:]]
        _refused(led, dataclasses.replace(b1, records=tuple(changed)), "root_mismatch")
        _refused(led, dataclasses.replace(b1, records=tuple(recs[:-1])), "count_mismatch")
        _refused(led, dataclasses.replace(b1, records=tuple([*recs, recs[0]])), "count_mismatch")
        _refused(led, dataclasses.replace(b1, records=tuple([recs[1], recs[0], *recs[2:]])), "root_mismatch")
        # the header changed after signing (another count, to match a dropped record), another key
        h = dataclasses.replace(b1.header, count=len(recs) - 1)
        _refused(led, dataclasses.replace(b1, header=h, records=tuple(recs[:-1])), "bad_signature")
        _refused(led, make_batch(other, EUI, 1, 0, 1, list(recs), b0.hash()), "bad_signature")
        # a batch out of its place, a replay, a fork (the same number signed twice), a broken link
        _refused(led, b2, "out_of_order")
        led.ingest(b1)
        _refused(led, b1, "replayed")
        fork = make_batch(key, EUI, 1, 60000, 119999, list(recs[:2]), b0.hash())
        _refused(led, fork, "forked")
        skipped = make_batch(key, EUI, 2, 120000, 179999, list(b2.records), b0.hash())  # names b0, not b1
        _refused(led, skipped, "broken_chain")
        led.ingest(b2)
        # append-only in the database itself
        for sql, args in (("UPDATE records SET record = ?", (b"\x00",)), ("DELETE FROM batches", ()),
                          ("UPDATE batches SET seq = 9", ()), ("DELETE FROM records", ())):
            with pytest.raises(led.db.errors, match="append-only"):
                led.db.execute(sql, args)


def test_a_proof_with_anything_changed_fails_offline(store_target):
    key = Ed25519PrivateKey.generate()
    batches, frames = _chain(key, [9])
    with Ledger(store_target) as led:
        led.add_gateway(EUI.hex(), _pub(key).hex())
        led.ingest(batches[0])
        (proof,) = led.prove(frames[0][4])
    verify_proof(proof, _pub(key), frames[0][4])

    def flipped(hexstr: str, at: int) -> str:
        b = bytearray(bytes.fromhex(hexstr))
        b[at] ^= 1
        return b.hex()

    bad = [{**proof, "record": flipped(proof["record"], 40)},  # its RSSI
           {**proof, "header": flipped(proof["header"], 30)},
           {**proof, "signature": flipped(proof["signature"], 5)},
           {**proof, "path": [flipped(proof["path"][0], 0), *proof["path"][1:]]},
           {**proof, "index": proof["index"] + 1},
           {**proof, "path": proof["path"][:-1]},
           {k: v for k, v in proof.items() if k != "path"}]
    for p in bad:
        with pytest.raises(LedgerError):
            verify_proof(p, _pub(key), frames[0][4])
    with pytest.raises(LedgerError, match="another frame"):
        verify_proof(proof, _pub(key), frames[0][5])
    with pytest.raises(LedgerError, match="not signed"):
        verify_proof(proof, _pub(Ed25519PrivateKey.generate()))


def test_the_shared_vectors_are_the_host_codecs():
    """tests/vectors/receipts.json, which the board's codec is checked against, is what this codec makes."""
    import hashlib
    import json
    from pathlib import Path

    from loraspot.proofs.receipts import Header

    v = json.loads((Path(__file__).resolve().parents[1] / "vectors" / "receipts.json").read_text())
    recs = [Record.heard(bytes.fromhex(c["phy"]), c["tmst"], c["time_ms"], c["freq"], c["sf"], c["rssi"], c["snr"])
            for c in v["records"]]
    assert [r.encode().hex() for r in recs] == [c["record"] for c in v["records"]]
    assert [merkle.root([r.leaf() for r in recs[:n]]).hex() for n in range(len(recs) + 1)] == v["roots"]
    h = v["header"]
    head = Header(bytes.fromhex(h["gateway_eui"]), h["seq"], h["start_ms"], h["end_ms"], h["count"],
                  bytes.fromhex(h["root"]), bytes.fromhex(h["prev"]))
    assert head.encode().hex() == h["bytes"] and Header.decode(head.encode()) == head
    key = Ed25519PrivateKey.from_private_bytes(bytes.fromhex(v["secret"]))
    assert key.sign(head.encode()).hex() == v["signature"]
    assert hashlib.sha256(head.encode() + bytes.fromhex(v["signature"])).hexdigest() == v["batch_hash"]


def test_the_ledger_commands(tmp_path, capsys, store_target):
    import json

    from loraspot.cli.main import main

    key = Ed25519PrivateKey.generate()
    batches, frames = _chain(key, [3, 4])
    lines = [json.dumps(b.to_json()) for b in batches]
    tampered = batches[1].to_json()
    tampered["records"] = tampered["records"][:-1]
    (tmp_path / "batches.jsonl").write_text("\n".join([lines[0], json.dumps(tampered), "{not json", lines[1]]) + "\n")
    led = str(store_target)
    with Ledger(store_target) as ledger:
        ledger.add_gateway(EUI.hex(), _pub(key).hex())
    code = main(["--json", "ledger", "ingest", "--ledger", led, str(tmp_path / "batches.jsonl")])
    out = capsys.readouterr()
    res = json.loads(out.out)
    assert code == 9 and "2 of 4 batches refused" in out.err and len(out.err.strip().splitlines()) == 1
    assert [(r["ok"], r.get("reason")) for r in res] == [(True, None), (False, "count_mismatch"),
                                                         (False, "unreadable"), (True, None)]
    frame = frames[1][2]
    assert main(["ledger", "prove", "--ledger", led, "--frame", frame.hex()]) == 0
    (tmp_path / "proof.json").write_text(capsys.readouterr().out)
    assert main(["--json", "ledger", "verify", str(tmp_path / "proof.json"), "--key", _pub(key).hex(),
                 "--frame", frame.hex()]) == 0
    (ok,) = json.loads(capsys.readouterr().out)
    assert ok["ok"] and ok["gateway_eui"] == EUI.hex().upper() and ok["freq"] == 868100000
    # a proof changed on the way, another gateway's key, no key at all, a frame never heard
    proof = json.loads((tmp_path / "proof.json").read_text())
    proof[0]["record"] = proof[0]["record"][:-2] + ("00" if proof[0]["record"][-2:] != "00" else "01")
    (tmp_path / "bad.json").write_text(json.dumps(proof))
    for args, code_want, words in (
            (["ledger", "verify", str(tmp_path / "bad.json"), "--key", _pub(key).hex()], 9, "not in the signed batch"),
            (["ledger", "verify", str(tmp_path / "proof.json"), "--key", "ab" * 32], 9, "not signed"),
            (["ledger", "verify", str(tmp_path / "proof.json")], 2, "--key"),
            (["ledger", "prove", "--ledger", led, "--frame", "0102"], 9, "no batch"),
            (["ledger", "prove", "--ledger", led, "--frame", "xyz"], 2, "hex")):
        assert main(args) == code_want, args
        err = capsys.readouterr().err
        assert words in err and "Traceback" not in err and len(err.strip().splitlines()) == 1, err


def test_ledger_track_lists_positions_with_their_proofs(tmp_path, capsys):
    import base64
    import json

    from loraspot.cli.main import main
    from loraspot.lorawan import lpp

    key = Ed25519PrivateKey.generate()
    uplinks = [bytes([0x40, i]) + os.urandom(18) for i in range(3)]
    heard = make_batch(key, EUI, 0, 0, 1, _records(uplinks[:2], 1_765_000_000_000), ZERO)  # the third never heard
    led = tmp_path / "ledger.sqlite"
    with Ledger(led) as ledger:
        ledger.add_gateway(EUI.hex(), _pub(key).hex())
        ledger.ingest(heard)

    def frame(i: int, dev: str = "70B3D57ED0000777") -> str:
        gps = lpp.decode(lpp.encode([(1, 136, {"lat": 52.37 + i / 100, "lon": 4.89, "alt": 3.0})]))
        return json.dumps({"type": "uplink", "dev_eui": dev, "fcnt": i, "phy": base64.b64encode(uplinks[i]).decode(),
                           "decoded": gps})

    frames = tmp_path / "frames.jsonl"
    frames.write_text("\n".join([frame(0), frame(1, "70B3D57ED0000999"), frame(1), frame(2)]) + "\n")
    code = main(["--json", "ledger", "track", "70b3d57ed0000777", "--ledger", str(led), "--frames", str(frames)])
    out = capsys.readouterr()
    track = json.loads(out.out)
    assert [(p["fcnt"], p["proven_by"]) for p in track] == [(0, [EUI.hex().upper()]), (1, [EUI.hex().upper()]),
                                                              (2, [])]
    assert track[0]["lat"] == 52.37 and track[0]["time_ms"] == 1_765_000_000_000
    assert code == 9 and "1 of 3 positions have no proof" in out.err and len(out.err.strip().splitlines()) == 1
    assert main(["ledger", "track", "70B3D57ED0000777", "--ledger", str(led), "--frames", str(frames)]) == 9
    text = capsys.readouterr().out
    assert "fcnt 0: 52.3700, 4.8900, 3.0 m; heard by " + EUI.hex().upper() + ": proof holds" in text
    assert "fcnt 2: 52.3900, 4.8900, 3.0 m; NO PROOF" in text
    # bad input: one line each, nothing changed
    (tmp_path / "bad.jsonl").write_text(frame(0) + "\n{cut\n")
    for args, words in ((["70B3D57ED0000777", "--frames", str(tmp_path / "bad.jsonl")], "bad.jsonl:2"),
                        (["nothex", "--frames", str(frames)], "DEVEUI must be hex"),
                        (["70B3D57ED0000123", "--frames", str(frames)], "no GPS uplink"),
                        (["70B3D57ED0000777", "--frames", str(tmp_path / "missing.jsonl")], "cannot read it")):
        assert main(["ledger", "track", *args[:1], "--ledger", str(led), *args[1:]]) != 0, args
        err = capsys.readouterr().err
        assert words in err and "Traceback" not in err and len(err.strip().splitlines()) == 1, err
