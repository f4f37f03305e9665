"""Anchoring the ledger on an Ethereum-compatible chain (loraspot.proofs.anchor), against a chain in
the test's process (eth-tester's py-evm backend: nothing downloaded, no contract compiled): the
head is written as a transaction's data and read back; nothing new, nothing written; a new batch,
a new head; a private key in a file signs the transaction; a chain that does not answer is tried
again and every failure counted, the ledger unchanged; the CLI says so in one line."""

from __future__ import annotations

import json
import socket

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from eth_tester import EthereumTester
from loraspot.proofs import anchor
from loraspot.proofs.ledger import Ledger
from web3 import EthereumTesterProvider, Web3

from tests.host.test_ledger import EUI, _chain, _pub

OTHER = bytes.fromhex("024C53FFFE000002")


def _dead_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"  # closed again: nothing answers there


@pytest.fixture
def ledger(tmp_path):
    key = Ed25519PrivateKey.generate()
    batches, _ = _chain(key, [3, 2, 4])
    with Ledger(tmp_path / "ledger.sqlite") as led:
        led.add_gateway(EUI.hex(), _pub(key).hex())
        for b in batches[:2]:
            led.ingest(b)
        yield led, batches


def test_the_head_is_written_and_read_back(ledger):
    led, batches = ledger
    w3 = Web3(EthereumTesterProvider())
    a = anchor.Anchorer(w3, pause_s=0)
    head, count = anchor.ledger_head(led)
    assert count == 2
    got = a.anchor(led)
    assert got is not None and got["head"] == head.hex() and got["batches"] == 2
    tx = w3.eth.get_transaction(got["tx"])
    assert bytes(tx["input"]) == b"LSLH\x01" + head and tx["from"] == tx["to"] and tx["value"] == 0
    assert anchor.check(w3, got["tx"], head) and not anchor.check(w3, got["tx"], bytes(32))
    assert a.anchor(led) is None  # nothing new since
    led.ingest(batches[2])
    again = a.anchor(led)
    assert again is not None and again["head"] != got["head"] and again["block"] > got["block"]
    rows = led.db.execute("SELECT head, batches, tx FROM anchors ORDER BY id").fetchall()
    assert [(r[0].hex(), r[1], r[2]) for r in rows] == [(got["head"], 2, got["tx"]), (again["head"], 3, again["tx"])]
    # the head changes with any gateway's chain, and only with what was taken
    same, _ = anchor.ledger_head(led)
    assert same.hex() == again["head"]


def test_a_private_key_in_a_file_signs_the_anchor(ledger, tmp_path):
    led, _ = ledger
    tester = EthereumTester()
    w3 = Web3(EthereumTesterProvider(tester))
    key = tester.backend.account_keys[1]
    (tmp_path / "key").write_text("0x" + key.to_bytes().hex() + "\n")
    got = anchor.Anchorer(w3, key_file=tmp_path / "key", pause_s=0).anchor(led)
    assert got is not None and w3.eth.get_transaction(got["tx"])["from"] == key.public_key.to_checksum_address()
    (tmp_path / "bad").write_text("not a key")
    with pytest.raises(anchor.AnchorError, match="not a private key"):
        anchor.Anchorer(w3, key_file=tmp_path / "bad")


def test_a_chain_down_is_tried_again_and_counted_and_the_ledger_goes_on(ledger):
    led, batches = ledger
    w3 = anchor.connect(_dead_url())
    with pytest.raises(anchor.AnchorError, match="after 3 tries") as e:
        anchor.Anchorer(w3, pause_s=0).anchor(led)
    assert "ledger is unchanged" in str(e.value)
    assert led.db.execute("SELECT count(*) FROM anchor_failures").fetchone()[0] == anchor.ATTEMPTS
    assert led.db.execute("SELECT count(*) FROM anchors").fetchone()[0] == 0
    led.ingest(batches[2])  # the ledger takes batches as before
    assert anchor.ledger_head(led)[1] == 3


def test_the_cli_anchors_lists_and_fails_in_one_line(ledger, tmp_path, capsys):
    from loraspot.cli.main import main

    led, _ = ledger
    path = str(tmp_path / "ledger.sqlite")
    assert main(["ledger", "anchor", "--ledger", path, "--chain", _dead_url()]) == 9
    err = capsys.readouterr().err
    assert "after 3 tries" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert main(["ledger", "anchor", "--ledger", path, "--chain", "ftp://x"]) == 9
    assert "http(s)://" in capsys.readouterr().err
    assert main(["--json", "ledger", "anchor", "--ledger", path, "--chain", "eth-tester"]) == 0
    got = json.loads(capsys.readouterr().out)
    assert got["batches"] == 2 and got["head"] == anchor.ledger_head(led)[0].hex()
    assert main(["--json", "ledger", "anchors", "--ledger", path]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [a["tx"] for a in listed["anchors"]] == [got["tx"]] and listed["failures"] == anchor.ATTEMPTS
    assert main(["ledger", "anchors", "--ledger", path]) == 0
    text = capsys.readouterr().out
    assert got["tx"] in text and "3 failed tries" in text
