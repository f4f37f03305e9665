"""Anchoring the ledger on an Ethereum-compatible chain (docs/proofs.md), for operators whose
records must be checkable by third parties: now and then the ledger's head is written as the data
of a transaction, so that anyone holding the ledger's batches can show the chain had them then.

The ledger's head: SHA-256 over b"loraspot ledger head 1\\n" and, for each gateway in the order of
its EUI, the EUI (16 hex digits), the sequence number of its last batch (u32, big-endian) and that
batch's hash. Each batch's hash names the one before it, so the head commits to every batch taken.
The transaction: from the operator's account to itself, value 0, data b"LSLH" + version 1 (u8) +
the head; no contract, so nothing is compiled. An account the node holds unlocked sends it
(eth_sendTransaction, a test chain), or a private key in a file signs it here.

Optional: the ledger works without it. A chain that does not answer is tried again (ATTEMPTS in
all), each failure counted in the ledger (anchor_failures); the ledger itself is not touched."""

from __future__ import annotations

import hashlib
import struct
import time
from pathlib import Path

from loraspot.errors import LoraspotError
from loraspot.proofs.ledger import Ledger

MAGIC = b"LSLH\x01"
ATTEMPTS = 3


class AnchorError(LoraspotError):
    exit_code = 9


def ledger_head(led: Ledger) -> tuple[bytes, int]:
    """(the ledger's head, the number of batches it covers)."""
    rows = led.db.execute("SELECT eui, seq, hash FROM batches b WHERE seq = "
                          "(SELECT max(seq) FROM batches WHERE eui = b.eui) ORDER BY eui").fetchall()
    h = hashlib.sha256(b"loraspot ledger head 1\n")
    for eui, seq, digest in rows:
        h.update(eui.encode() + struct.pack(">I", seq) + digest)
    count = led.db.execute("SELECT count(*) FROM batches").fetchone()[0]
    return h.digest(), count


def connect(url: str):
    """A web3 connection: an http(s):// JSON-RPC node, or "eth-tester" for a chain in this process
    (it ends with the process: for trying anchoring out)."""
    try:
        from web3 import EthereumTesterProvider, Web3
    except ImportError:
        raise AnchorError("anchoring needs web3: pip install 'loraspot[anchor]'") from None
    if url == "eth-tester":
        try:
            return Web3(EthereumTesterProvider())
        except ImportError:
            raise AnchorError("an in-process chain needs eth-tester: pip install 'eth-tester[py-evm]'") from None
    if not url.startswith(("http://", "https://")):
        raise AnchorError(f"a chain is an http(s):// JSON-RPC address or eth-tester, got {url!r}")
    return Web3(Web3.HTTPProvider(url, request_kwargs={"timeout": 20}))


def _chain_errors() -> tuple[type[BaseException], ...]:
    from web3.exceptions import Web3Exception

    return (Web3Exception, OSError, ValueError, TimeoutError)


class Anchorer:
    def __init__(self, w3, key_file: Path | None = None, pause_s: float = 2.0):
        self.w3 = w3
        self.key = None
        if key_file is not None:
            try:
                text = key_file.read_text().strip()
                self.key = w3.eth.account.from_key(bytes.fromhex(text.removeprefix("0x")))
            except (OSError, ValueError) as e:
                why = getattr(e, "strerror", None) or "unreadable"
                raise AnchorError(f"{key_file}: not a private key in hex ({why})") from None
        self.pause_s = pause_s  # between tries

    def anchor(self, led: Ledger) -> dict | None:
        """Write the ledger's head to the chain (None: nothing new since the last anchor, or no
        batch yet); AnchorError when every try failed, each failure counted in the ledger."""
        head, count = ledger_head(led)
        last = led.db.execute("SELECT head FROM anchors ORDER BY id DESC LIMIT 1").fetchone()
        if count == 0 or (last is not None and last[0] == head):
            return None
        errors = _chain_errors()
        for attempt in range(1, ATTEMPTS + 1):
            try:
                tx, block, chain_id = self._send(MAGIC + head)
            except errors as e:
                why = f"{type(e).__name__}: {e}"
                led.db.execute("INSERT INTO anchor_failures VALUES (?, ?)", (time.time(), why[:300]))
                if attempt == ATTEMPTS:
                    raise AnchorError(f"the chain did not take the anchor after {ATTEMPTS} tries "
                                      f"({type(e).__name__}: {str(e)[:120]}); the ledger is unchanged") from None
                time.sleep(self.pause_s * attempt)
                continue
            led.db.execute("INSERT INTO anchors (head, batches, chain_id, tx, block, anchored_at) "
                           "VALUES (?, ?, ?, ?, ?, ?)", (head, count, chain_id, tx, block, time.time()))
            return {"head": head.hex(), "batches": count, "chain_id": chain_id, "tx": tx, "block": block}
        return None

    def _send(self, data: bytes) -> tuple[str, int, int]:
        eth = self.w3.eth
        chain_id = eth.chain_id
        if self.key is None:
            sender = eth.accounts[0]
            tx = eth.send_transaction({"from": sender, "to": sender, "value": 0, "data": data})
        else:
            sender = self.key.address
            fields = {"from": sender, "to": sender, "value": 0, "data": data, "chainId": chain_id,
                      "nonce": eth.get_transaction_count(sender)}
            fields["gas"] = eth.estimate_gas(fields)
            fields["gasPrice"] = eth.gas_price
            signed = self.key.sign_transaction(fields)
            tx = eth.send_raw_transaction(signed.raw_transaction)
        receipt = eth.wait_for_transaction_receipt(tx, timeout=120)
        if receipt["status"] != 1:
            raise ValueError("the anchor transaction failed")
        return "0x" + bytes(tx).hex(), int(receipt["blockNumber"]), int(chain_id)


def check(w3, tx: str, head: bytes) -> bool:
    """Does the chain hold this anchor: a successful transaction whose data is the head's?"""
    try:
        got = w3.eth.get_transaction(tx)
        receipt = w3.eth.get_transaction_receipt(tx)
    except _chain_errors():
        return False
    return bytes(got["input"]) == MAGIC + head and receipt["status"] == 1
