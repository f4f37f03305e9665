"""The ledger: receipt batches checked and kept append-only (in SQLite, or on PostgreSQL), and
inclusion proofs out of it that anyone can check offline with only the gateway's public key
(docs/proofs.md).

A batch is taken only when every check passes, and refused with the first failing one's reason:
unknown_gateway, bad_signature (another key, or a changed header), count_mismatch (a record
dropped or added), root_mismatch (a record changed, or records reordered), replayed (a batch taken
before), forked (another batch with the same sequence number), out_of_order (not the next number)
and broken_chain (it does not name the hash of the batch before it)."""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

from loraspot.errors import LoraspotError
from loraspot.proofs import merkle
from loraspot.proofs.receipts import ZERO, Batch, Header, Record, signature_ok
from loraspot.store import Store, StoreError, where

TABLES = """
CREATE TABLE IF NOT EXISTS gateways (eui TEXT PRIMARY KEY, public_key TEXT NOT NULL UNIQUE);
CREATE TABLE IF NOT EXISTS batches (
    id INTEGER PRIMARY KEY, eui TEXT NOT NULL REFERENCES gateways(eui), seq INTEGER NOT NULL,
    hash BLOB NOT NULL UNIQUE, header BLOB NOT NULL, signature BLOB NOT NULL, received_at REAL NOT NULL,
    UNIQUE (eui, seq));
CREATE TABLE IF NOT EXISTS records (
    batch INTEGER NOT NULL REFERENCES batches(id), idx INTEGER NOT NULL, phy_hash BLOB NOT NULL,
    record BLOB NOT NULL, PRIMARY KEY (batch, idx));
CREATE INDEX IF NOT EXISTS records_phy ON records(phy_hash);
CREATE TABLE IF NOT EXISTS anchors (
    id INTEGER PRIMARY KEY, head BLOB NOT NULL, batches INTEGER NOT NULL, chain_id INTEGER NOT NULL,
    tx TEXT NOT NULL, block INTEGER NOT NULL, anchored_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS anchor_failures (at REAL NOT NULL, error TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS challenges (eui TEXT NOT NULL, nonce BLOB NOT NULL UNIQUE, issued_at REAL NOT NULL,
    given_at REAL);
"""
APPEND_ONLY = ("batches", "records", "anchors")  # no row of these is ever changed or removed
SQLITE_TRIGGERS = "".join(f"""
CREATE TRIGGER IF NOT EXISTS {t}_append_only BEFORE UPDATE ON {t}
    BEGIN SELECT RAISE(ABORT, 'the ledger is append-only'); END;
CREATE TRIGGER IF NOT EXISTS {t}_no_delete BEFORE DELETE ON {t}
    BEGIN SELECT RAISE(ABORT, 'the ledger is append-only'); END;""" for t in APPEND_ONLY)
POSTGRES_TRIGGERS = """
CREATE OR REPLACE FUNCTION ledger_append_only() RETURNS trigger LANGUAGE plpgsql AS
    $$ BEGIN RAISE EXCEPTION 'the ledger is append-only'; END $$;
""" + "".join(f"""
CREATE OR REPLACE TRIGGER {t}_append_only BEFORE UPDATE OR DELETE ON {t}
    FOR EACH ROW EXECUTE FUNCTION ledger_append_only();""" for t in APPEND_ONLY)


class LedgerError(LoraspotError):
    exit_code = 9


class Refused(LedgerError):
    def __init__(self, reason: str, detail: str):
        super().__init__(f"{reason}: {detail}")
        self.reason = reason


class Ledger:
    """The ledger in an SQLite file (a path) or on a PostgreSQL server (a postgresql:// URL): the
    same tables, statements and checks (loraspot.store)."""

    def __init__(self, path: Path | str):
        try:
            self.db = Store(path)
            self.db.schema(TABLES, SQLITE_TRIGGERS, POSTGRES_TRIGGERS)
        except StoreError as e:
            raise LedgerError(str(e)) from None
        except self.db.errors as e:
            raise LedgerError(f"{where(path)}: cannot open the ledger ({e})") from None

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def add_gateway(self, eui: str, public_key: str) -> None:
        """A gateway and the public half of its identity key (from the inventory)."""
        eui, public_key = eui.upper(), public_key.lower()
        row = self.db.execute("SELECT public_key FROM gateways WHERE eui = ?", (eui,)).fetchone()
        if row is not None and row[0] != public_key:
            raise LedgerError(f"gateway {eui} is in the ledger with another identity key")
        self.db.execute("INSERT OR IGNORE INTO gateways VALUES (?, ?)", (eui, public_key))

    def public_key(self, eui: str) -> bytes | None:
        row = self.db.execute("SELECT public_key FROM gateways WHERE eui = ?", (eui.upper(),)).fetchone()
        return None if row is None else bytes.fromhex(row[0])

    def ingest(self, batch: Batch) -> int:
        """Check a batch and keep it (its sequence number), or Refused naming why."""
        h = batch.header
        eui = h.gateway_eui.hex().upper()
        row = self.db.execute("SELECT public_key FROM gateways WHERE eui = ?", (eui,)).fetchone()
        if row is None:
            raise Refused("unknown_gateway", f"gateway {eui} has no identity key in the ledger")
        if not signature_ok(bytes.fromhex(row[0]), h, batch.signature):
            raise Refused("bad_signature", f"batch {h.seq} of {eui} is not signed by its identity key")
        if h.count != len(batch.records):
            raise Refused("count_mismatch",
                          f"batch {h.seq} of {eui} signs {h.count} records, {len(batch.records)} came")
        if merkle.root([r.leaf() for r in batch.records]) != h.root:
            raise Refused("root_mismatch", f"batch {h.seq} of {eui}: its records do not make the signed Merkle root")
        digest = batch.hash()
        with self.db.transaction(lock="batches"):
            if self.db.execute("SELECT 1 FROM batches WHERE hash = ?", (digest,)).fetchone():
                raise Refused("replayed", f"batch {h.seq} of {eui} is in the ledger already")
            if self.db.execute("SELECT 1 FROM batches WHERE eui = ? AND seq = ?", (eui, h.seq)).fetchone():
                raise Refused("forked", f"{eui} signed another batch {h.seq}: its chain forks")
            last = self.db.execute("SELECT seq, hash FROM batches WHERE eui = ? ORDER BY seq DESC LIMIT 1",
                                   (eui,)).fetchone()
            want_seq, want_prev = (0, ZERO) if last is None else (last[0] + 1, last[1])
            if last is not None and h.seq != want_seq:
                raise Refused("out_of_order", f"batch {h.seq} of {eui} after batch {last[0]}")
            if h.prev != want_prev:
                raise Refused("broken_chain", f"batch {h.seq} of {eui} does not follow the batch before it")
            self.db.execute("INSERT INTO batches (eui, seq, hash, header, signature, received_at) "
                            "VALUES (?, ?, ?, ?, ?, ?)", (eui, h.seq, digest, h.encode(), batch.signature, time.time()))
            (batch_id,) = self.db.execute("SELECT id FROM batches WHERE hash = ?", (digest,)).fetchone()
            self.db.executemany("INSERT INTO records VALUES (?, ?, ?, ?)",
                                [(batch_id, i, r.phy_hash, r.encode()) for i, r in enumerate(batch.records)])
        return h.seq

    def prove(self, phy: bytes) -> list[dict]:
        """An inclusion proof for each batch that holds this frame (one per hotspot that heard it)."""
        out = []
        for batch_id, idx in self.db.execute("SELECT batch, idx FROM records WHERE phy_hash = ? ORDER BY batch",
                                             (hashlib.sha256(phy).digest(),)).fetchall():
            eui, header, signature = self.db.execute("SELECT eui, header, signature FROM batches WHERE id = ?",
                                                     (batch_id,)).fetchone()
            leaves = [merkle.leaf_hash(r) for (r,) in self.db.execute(
                "SELECT record FROM records WHERE batch = ? ORDER BY idx", (batch_id,))]
            record = self.db.execute("SELECT record FROM records WHERE batch = ? AND idx = ?",
                                     (batch_id, idx)).fetchone()[0]
            out.append({"gateway_eui": eui, "header": header.hex(), "signature": signature.hex(),
                        "record": record.hex(), "index": idx, "size": len(leaves),
                        "path": [p.hex() for p in merkle.audit_path(idx, leaves)]})
        return out


def verify_proof(proof: dict, public_key: bytes, phy: bytes | None = None) -> Record:
    """Check an inclusion proof offline with only the gateway's public key (and, given, the frame):
    the record it proves, or LedgerError naming what does not hold."""
    try:
        header = Header.decode(bytes.fromhex(proof["header"]))
        record_bytes = bytes.fromhex(proof["record"])
        record = Record.decode(record_bytes)
        path = [bytes.fromhex(p) for p in proof["path"]]
        signature = bytes.fromhex(proof["signature"])
        index, size = int(proof["index"]), int(proof["size"])
    except (KeyError, TypeError, ValueError) as e:
        raise LedgerError(f"not an inclusion proof: {e}") from None
    if not signature_ok(public_key, header, signature):
        raise LedgerError("the batch header is not signed by this gateway's key")
    if size != header.count:
        raise LedgerError("the proof's tree size is not the batch's")
    if merkle.root_from_path(index, size, merkle.leaf_hash(record_bytes), path) != header.root:
        raise LedgerError("the record is not in the signed batch (its path does not lead to the root)")
    if phy is not None and hashlib.sha256(phy).digest() != record.phy_hash:
        raise LedgerError("the record is of another frame")
    return record
