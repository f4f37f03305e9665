"""The device inventory: an SQLite file (in the user data dir by default) or a PostgreSQL server
several stations share (a postgresql:// URL), secrets encrypted at rest with AES-256-GCM under a
master key, one schema versioned with one set of migrations for both (loraspot.store translates).
No two devices share a MAC, DevEUI, gateway EUI, DevAddr, identity or key: the database's own
unique indexes say so, whichever station writes.

The master key comes from, in order: LORASPOT_MASTER_KEY (64 hex digits), the system keyring
(when the `keyring` package is installed and has one), or a key file (created 0600 with a random
key; refused when others may read it): next to an inventory file, or in the user data dir for a
server's inventory. A wrong master key is detected on open through an encrypted check value,
before anything is read or written.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import secrets
import sqlite3
import time
from dataclasses import dataclass, fields
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from loraspot.errors import InventoryError, LoraspotError
from loraspot.provision.masterkey import (  # noqa: F401  (the inventory's own names, as before)
    ENV_KEY,
    Target,
    configured_key,
    default_path,
    inventory_target,
    key_file,
    master_key,
    write_key_file,
)
from loraspot.store import Store, StoreError, is_url, where

_CHECK = b"loraspot inventory master key check"
SECRET_KINDS = ("app_key", "nwk_key", "nwk_s_key", "app_s_key", "admin_key", "admin_key_pending", "pairing_code",
                "wifi_password", "mqtt_password")

MIGRATIONS = [
    # 1: devices and their secrets
    """
    CREATE TABLE meta (key TEXT PRIMARY KEY, value BLOB NOT NULL);
    CREATE TABLE devices (
        dev_eui TEXT PRIMARY KEY, join_eui TEXT, dev_addr TEXT, name TEXT, board TEXT,
        created_at REAL NOT NULL, updated_at REAL NOT NULL);
    CREATE TABLE secrets (
        dev_eui TEXT NOT NULL REFERENCES devices(dev_eui) ON DELETE CASCADE, kind TEXT NOT NULL,
        nonce BLOB NOT NULL, sealed BLOB NOT NULL, updated_at REAL NOT NULL, PRIMARY KEY (dev_eui, kind));
    """,
    # 2: provisioning: role, MAC, gateway EUI, region, firmware, state; no MAC, gateway EUI or key
    # used twice (a keyed fingerprint of each key, so the keys themselves stay sealed)
    """
    ALTER TABLE devices ADD COLUMN role TEXT;
    ALTER TABLE devices ADD COLUMN mac TEXT;
    ALTER TABLE devices ADD COLUMN gateway_eui TEXT;
    ALTER TABLE devices ADD COLUMN region TEXT;
    ALTER TABLE devices ADD COLUMN fw TEXT;
    ALTER TABLE devices ADD COLUMN provisioned_at REAL;
    ALTER TABLE devices ADD COLUMN state TEXT NOT NULL DEFAULT 'registered';
    CREATE UNIQUE INDEX devices_mac ON devices(mac) WHERE mac IS NOT NULL;
    CREATE UNIQUE INDEX devices_gateway_eui ON devices(gateway_eui) WHERE gateway_eui IS NOT NULL;
    CREATE TABLE key_prints (
        print BLOB PRIMARY KEY, dev_eui TEXT NOT NULL REFERENCES devices(dev_eui) ON DELETE CASCADE,
        kind TEXT NOT NULL);
    """,
    # 3: the one channel (frequency in Hz, spreading factor) a single-channel hotspot listens on,
    # and a SINGLE-plan node sends on: provisioning puts nodes where a hotspot hears them
    """
    ALTER TABLE devices ADD COLUMN freq INTEGER;
    ALTER TABLE devices ADD COLUMN sf INTEGER;
    """,
    # 4: factory self-test results, by board (MAC): a board is tested before it has a DevEUI
    """
    CREATE TABLE selftests (
        mac TEXT NOT NULL, board TEXT, at REAL NOT NULL, ok INTEGER NOT NULL, result TEXT NOT NULL);
    CREATE INDEX selftests_mac ON selftests(mac, at);
    """,
    # 5: ABP devices: a DevAddr is never given to two devices
    """
    CREATE UNIQUE INDEX devices_dev_addr ON devices(dev_addr) WHERE dev_addr IS NOT NULL;
    """,
    # 6: where a hotspot's update service answers on the network (host:port), for deploy --all-ota
    """
    ALTER TABLE devices ADD COLUMN ota TEXT;
    """,
    # 7: the board's identity: the public half of the Ed25519 key it made itself at provisioning
    # (64 hex digits; the private half never leaves the board), one board's only
    """
    ALTER TABLE devices ADD COLUMN identity TEXT;
    CREATE UNIQUE INDEX devices_identity ON devices(identity) WHERE identity IS NOT NULL;
    """,
]
# never the same on two devices
SCHEMA = "inventory"  # the name of its schema version on a PostgreSQL server (loraspot.store.migrate)
UNIQUE_KINDS = ("app_key", "nwk_key", "nwk_s_key", "app_s_key", "admin_key", "admin_key_pending")
STATES = ("registered", "provisioning", "provisioned", "locked")


@dataclass
class Device:
    dev_eui: str
    join_eui: str | None
    dev_addr: str | None
    name: str | None
    board: str | None
    created_at: float
    updated_at: float
    role: str | None = None
    mac: str | None = None
    gateway_eui: str | None = None
    region: str | None = None
    fw: str | None = None
    provisioned_at: float | None = None
    state: str = "registered"
    freq: int | None = None
    sf: int | None = None
    ota: str | None = None  # a hotspot's update service, host:port
    identity: str | None = None  # the public key of the board's Ed25519 identity, hex

    def public(self) -> dict:
        """Everything but secrets, for listings and exports."""
        return dict(self.__dict__)


def hex_id(value: str, digits: int, what: str, error: type[LoraspotError] = InventoryError) -> str:
    """An EUI or MAC in upper-case hex without separators, or `error` saying what is wrong."""
    v = value.strip().replace(":", "").replace("-", "").upper()
    if len(v) != digits or any(c not in "0123456789ABCDEF" for c in v):
        raise error(f"{what} must be {digits} hex digits, got {value!r}")
    return v


def _mac(value: str) -> str:
    return hex_id(value, 12, "MAC")


def _eui(value: str, what: str = "DevEUI") -> str:
    return hex_id(value, 16, what)


def peek_by_mac(target: str | Path | None, mac: str) -> Device | None:
    """The device of a MAC, read without the master key (public columns only, read-only): for a
    check that must not need the key, such as flash asking whether a board is provisioned."""
    target = inventory_target(target)
    query = f"SELECT {_DEVICE_COLUMNS} FROM devices WHERE mac = ?"
    if is_url(target):
        try:
            store = Store(target)
        except StoreError as e:
            raise InventoryError(str(e)) from None
        try:
            current = store.version(SCHEMA) == len(MIGRATIONS)
            row = store.execute(query, (_mac(mac),)).fetchone() if current else None
        except store.errors as e:
            raise InventoryError(f"{where(target)}: the inventory cannot be read ({_first_line(e)})") from None
        finally:
            store.close()
        if current:
            return Device(*row) if row else None
        with Inventory(target) as inv:  # an older schema: migrated (this needs the key)
            return inv.by_mac(mac)
    uri = f"file:{Path(target).resolve()}?mode=ro"
    try:
        db = sqlite3.connect(uri, uri=True, timeout=30)
    except sqlite3.Error as e:
        raise InventoryError(f"{target}: cannot open the inventory ({e})") from None
    try:
        if db.execute("PRAGMA user_version").fetchone()[0] != len(MIGRATIONS):
            db.close()
            with Inventory(target) as inv:  # an older schema: migrated (this needs the key)
                return inv.by_mac(mac)
        row = db.execute(query, (_mac(mac),)).fetchone()
        return Device(*row) if row else None
    except sqlite3.DatabaseError as e:
        raise InventoryError(f"{target}: not a loraspot inventory, or damaged ({e})") from None
    finally:
        db.close()


def _first_line(e: BaseException) -> str:
    return (str(e).strip().splitlines() or [type(e).__name__])[0]


def _blob(value: object) -> bytes:
    """A sealed value as stored (a BLOB); ValueError for anything else in its place (a damaged
    or hand-edited inventory: bytes() of a number would make that many zero bytes)."""
    if not isinstance(value, bytes):
        raise ValueError("not a sealed value")
    return value


# the columns a Device is made of, named: a row is read by name, never by the table's own order
# (a damaged or hand-edited table with a column more or less is an error, not a shifted device)
_DEVICE_COLUMNS = ", ".join(f.name for f in fields(Device))


class Inventory:
    def __init__(self, target: str | Path | None = None, key: bytes | None = None, existing: bool = False):
        """The inventory at target (a file or a postgresql:// URL; None: LORASPOT_INVENTORY or the
        user data folder's). A file that is not there is made, with its master key, unless
        `existing` (commands that only read or change what is there: a mistyped path is an error,
        not a new empty inventory and key file)."""
        self.target = inventory_target(target)
        self.where = where(self.target)
        self.postgres = is_url(self.target)
        if existing and isinstance(self.target, Path) and not self.target.exists():
            raise InventoryError(f"{self.where}: no inventory there (loraspot provision makes one)")
        if isinstance(self.target, Path):
            self.target.parent.mkdir(parents=True, exist_ok=True)
        # SQLite in WAL: readers (listen, a backup) and one writer at a time from several processes
        # and the threads of a batch, each with a connection of its own; a writer waits up to 30 s.
        # PostgreSQL: as many stations as the server takes; writers wait for each other likewise.
        try:
            self.db = Store(self.target, timeout=30)
        except StoreError as e:
            raise InventoryError(str(e).replace("cannot open", "cannot open the inventory")) from None
        try:
            if not self.postgres:
                self.db.execute("PRAGMA foreign_keys = ON")
                self._wal()
            found = self.db.migrate(MIGRATIONS, SCHEMA)
            if found > len(MIGRATIONS):
                raise InventoryError(f"{self.where} was written by a newer loraspot (schema {found}); upgrade loraspot")
            self._key = key if key is not None else master_key(self.target, create=self._empty())
            self._aead = AESGCM(self._key)
            self._check_key()
        except self.db.errors as e:
            self.db.close()
            if self.postgres:
                raise InventoryError(f"{self.where}: the inventory cannot be opened ({_first_line(e)})") from None
            raise InventoryError(f"{self.where}: not a loraspot inventory, or damaged ({e}); "
                                 "restore it from a backup (loraspot devices backup)") from None
        except Exception:
            self.db.close()
            raise

    def _wal(self) -> None:
        """WAL mode. Switching a new file to it needs the file to itself, and SQLite answers "database
        is locked" at once, without its busy wait, while another process opening the same new
        inventory holds it: that is retried, with a growing pause, for as long as a writer waits."""
        deadline = time.monotonic() + 30
        pause = 0.01
        while True:
            try:
                self.db.execute("PRAGMA journal_mode = WAL")
                return
            except sqlite3.OperationalError as e:
                if ("locked" not in str(e) and "busy" not in str(e)) or time.monotonic() > deadline:
                    raise
            time.sleep(pause)
            pause = min(0.5, pause * 2)

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> Inventory:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ---- schema ---------------------------------------------------------------------------------
    def schema_version(self) -> int:
        return self.db.version(SCHEMA)

    def _empty(self) -> bool:
        return self.db.execute("SELECT COUNT(*) FROM meta").fetchone()[0] == 0

    def _check_key(self) -> None:
        row = self.db.execute("SELECT value FROM meta WHERE key = 'key_check'").fetchone()
        if row is None:
            nonce = secrets.token_bytes(12)
            sealed = nonce + self._aead.encrypt(nonce, _CHECK, b"key_check")
            # another process opening the same new inventory may have written its check first:
            # then that one is verified like any other
            # (the write lock taken first, where SQLite's busy wait applies: an autocommit write that
            # finds another committed since it began reading is refused at once)
            with self.transaction():
                self.db.execute("INSERT OR IGNORE INTO meta VALUES ('key_check', ?)", (sealed,))
            row = self.db.execute("SELECT value FROM meta WHERE key = 'key_check'").fetchone()
        try:
            blob = _blob(row[0])
            self._aead.decrypt(blob[:12], blob[12:], b"key_check")
        except (InvalidTag, ValueError):
            raise InventoryError(f"wrong master key for {self.where}") from None

    # ---- devices --------------------------------------------------------------------------------
    def add_device(self, dev_eui: str, join_eui: str | None = None, name: str | None = None,
                   board: str | None = None) -> Device:
        eui = _eui(dev_eui)
        now = time.time()
        with self.transaction():
            self.db.execute(
                "INSERT INTO devices (dev_eui, join_eui, dev_addr, name, board, created_at, updated_at) "
                "VALUES (?, ?, NULL, ?, ?, ?, ?) ON CONFLICT(dev_eui) DO UPDATE SET "
                "join_eui = COALESCE(excluded.join_eui, devices.join_eui), "
                "name = COALESCE(excluded.name, devices.name), "
                "board = COALESCE(excluded.board, devices.board), updated_at = excluded.updated_at",
                (eui, _eui(join_eui, "JoinEUI") if join_eui else None, name, board, now, now))
        return self.device(eui)

    def device(self, dev_eui: str) -> Device:
        row = self.db.execute(f"SELECT {_DEVICE_COLUMNS} FROM devices WHERE dev_eui = ?", (_eui(dev_eui),)).fetchone()
        if row is None:
            raise InventoryError(f"device {dev_eui} is not in the inventory")
        return Device(*row)

    def devices(self) -> list[Device]:
        return [Device(*r) for r in self.db.execute(f"SELECT {_DEVICE_COLUMNS} FROM devices ORDER BY dev_eui")]

    def by_mac(self, mac: str) -> Device | None:
        row = self.db.execute(f"SELECT {_DEVICE_COLUMNS} FROM devices WHERE mac = ?", (_mac(mac),)).fetchone()
        return Device(*row) if row else None

    def register(self, dev_eui: str, mac: str, **fields) -> Device:
        """Add or update the device of this MAC. A DevEUI or gateway EUI that another device
        has is refused, as is a second DevEUI for the same MAC."""
        eui, mac = _eui(dev_eui), _mac(mac)
        gw = fields.get("gateway_eui")
        if gw:
            fields["gateway_eui"] = _eui(gw, "gateway EUI")
        with self.transaction():
            same_mac = self.by_mac(mac)
            if same_mac is not None and same_mac.dev_eui != eui:
                raise InventoryError(f"MAC {mac} is already in the inventory as {same_mac.dev_eui}")
            row = self.db.execute("SELECT mac FROM devices WHERE dev_eui = ?", (eui,)).fetchone()
            if row is not None and row[0] not in (None, mac):
                raise InventoryError(f"DevEUI {eui} already belongs to the board with MAC {row[0]}")
            if gw:
                other = self.db.execute("SELECT dev_eui FROM devices WHERE gateway_eui = ? AND dev_eui != ?",
                                        (fields["gateway_eui"], eui)).fetchone()
                if other:
                    raise InventoryError(f"gateway EUI {fields['gateway_eui']} already belongs to {other[0]}")
            self.add_device(eui, fields.pop("join_eui", None), fields.pop("name", None), fields.pop("board", None))
            self.update(eui, mac=mac, **fields)
        return self.device(eui)

    _COLUMNS = ("role", "mac", "gateway_eui", "region", "fw", "provisioned_at", "state", "name", "board",
                "join_eui", "freq", "sf", "dev_addr", "ota", "identity")

    def update(self, dev_eui: str, **fields) -> None:
        unknown = set(fields) - set(self._COLUMNS)
        if unknown:
            raise InventoryError(f"unknown device fields: {', '.join(sorted(unknown))}")
        if "state" in fields and fields["state"] not in STATES:
            raise InventoryError(f"unknown state {fields['state']!r} ({', '.join(STATES)})")
        if not fields:
            return
        if fields.get("identity") is not None:
            fields["identity"] = hex_id(fields["identity"], 64, "identity public key").lower()
        eui = _eui(dev_eui)
        sets = ", ".join(f"{k} = ?" for k in fields)
        with self.transaction():
            if fields.get("identity") is not None:
                other = self.db.execute("SELECT dev_eui FROM devices WHERE identity = ? AND dev_eui != ?",
                                        (fields["identity"], eui)).fetchone()
                if other:
                    raise InventoryError(f"identity key {fields['identity']} already belongs to {other[0]}")
            self.db.execute(f"UPDATE devices SET {sets}, updated_at = ? WHERE dev_eui = ?",
                            (*fields.values(), time.time(), eui))

    def new_dev_addr(self, net_id: int = 0x000013) -> str:
        """A DevAddr no device of the inventory has, in the address block of NetID net_id (type 0:
        its 6-bit NwkID in the 7 top bits, as The Things Network's 0x000013 gives 26/27xxxxxx)."""
        for _ in range(64):
            addr = f"{((net_id & 0x3F) << 25) | secrets.randbits(25):08X}"
            if self.db.execute("SELECT 1 FROM devices WHERE dev_addr = ?", (addr,)).fetchone() is None:
                return addr
        raise InventoryError("no free DevAddr found")

    def add_selftest(self, mac: str, board: str | None, ok: bool, checks: list, at: float | None = None) -> None:
        """Keep one self-test result (the checks as the board answered them) for the board of mac."""
        with self.transaction():
            self.db.execute("INSERT INTO selftests (mac, board, at, ok, result) VALUES (?, ?, ?, ?, ?)",
                            (_mac(mac), board, time.time() if at is None else at, int(ok), json.dumps(checks)))

    def selftests(self, mac: str | None = None) -> list[dict]:
        """Self-test results, oldest first: {mac, board, at, ok, checks}."""
        query = "SELECT mac, board, at, ok, result FROM selftests"
        args: tuple = ()
        if mac is not None:
            query += " WHERE mac = ?"
            args = (_mac(mac),)
        rows = self.db.execute(query + " ORDER BY at", args).fetchall()
        return [{"mac": m, "board": b, "at": at, "ok": bool(ok), "checks": json.loads(r)} for m, b, at, ok, r in rows]

    @contextlib.contextmanager
    def transaction(self):
        """One write transaction (writers of the inventory wait for each other from its start);
        nested calls join it. A write the database refuses (a unique index: another station took
        that MAC, EUI or key first) is said in words, and the whole transaction is undone."""
        try:
            with self.db.transaction(lock="devices"):
                yield
        except self.db.integrity_errors as e:
            raise _taken(e) from None

    @contextlib.contextmanager
    def claim(self, mac: str):
        """This station works on the board of `mac` until the block ends. On a server several
        stations share, a second station is refused meanwhile (a session advisory lock, which the
        server lets go of when this station's connection ends: a station that dies leaves the
        board's row, in `provisioning`, to be resumed by another). A file's inventory serves one
        machine, whose boards each have their own port: nothing to hold there."""
        mac = _mac(mac)
        if not self.postgres:
            yield
            return
        lock = int.from_bytes(hashlib.sha256(b"loraspot board " + mac.encode()).digest()[:8], "big", signed=True)
        if not self.db.execute("SELECT pg_try_advisory_lock(?::bigint)", (lock,)).fetchone()[0]:
            raise InventoryError(f"the board with MAC {mac} is being provisioned by another station right now")
        try:
            yield
        finally:
            with contextlib.suppress(*self.db.errors):
                self.db.execute("SELECT pg_advisory_unlock(?::bigint)", (lock,))

    def backup(self, dest: Path) -> None:
        """A consistent copy, safe while others write: SQLite's online backup API for a file; an
        inventory file with the same schema and sealed rows for a server's (a logical export,
        which `devices migrate` takes back to a server)."""
        dest = Path(dest)
        if dest.exists():
            raise InventoryError(f"{dest} exists; give a new file name")
        if self.postgres:
            with Inventory(dest, key=self._key) as out:
                self.copy_to(out)
            return
        try:
            out = sqlite3.connect(dest)
            try:
                self.db.conn.backup(out)
            finally:
                out.close()
        except sqlite3.Error as e:
            raise InventoryError(f"{dest}: cannot write the backup there ({e})") from None

    _TABLES = (("devices", _DEVICE_COLUMNS), ("secrets", "dev_eui, kind, nonce, sealed, updated_at"),
               ("key_prints", "print, dev_eui, kind"), ("selftests", "mac, board, at, ok, result"))

    def copy_to(self, dst: Inventory) -> dict[str, int]:
        """Every row into the empty inventory `dst` under the same master key, secrets still sealed
        (never decrypted on the way). Returns the rows copied, by table."""
        if dst._key != self._key:
            raise InventoryError(f"{dst.where} has another master key than {self.where}")
        if dst.db.execute("SELECT (SELECT COUNT(*) FROM devices) + (SELECT COUNT(*) FROM selftests)").fetchone()[0]:
            raise InventoryError(f"{dst.where} already holds devices: copy into an empty inventory")
        with self.transaction():  # one consistent state: writers wait while it is read
            rows = {table: self.db.execute(f"SELECT {columns} FROM {table}").fetchall()
                    for table, columns in self._TABLES}
        with dst.transaction():
            for table, columns in self._TABLES:
                if rows[table]:
                    marks = ", ".join("?" * len(columns.split(",")))
                    dst.db.executemany(f"INSERT INTO {table} ({columns}) VALUES ({marks})",
                                       [tuple(r) for r in rows[table]])
        return {table: len(r) for table, r in rows.items()}

    # ---- secrets --------------------------------------------------------------------------------
    def set_secret(self, dev_eui: str, kind: str, value: bytes) -> None:
        if kind not in SECRET_KINDS:
            raise InventoryError(f"unknown secret kind {kind!r} ({', '.join(SECRET_KINDS)})")
        eui = self.device(dev_eui).dev_eui
        nonce = secrets.token_bytes(12)
        sealed = self._aead.encrypt(nonce, bytes(value), f"{eui}/{kind}".encode())
        with self.transaction():
            if kind in UNIQUE_KINDS:
                fp = self._print(value)
                owner = self.db.execute("SELECT dev_eui, kind FROM key_prints WHERE print = ?", (fp,)).fetchone()
                if owner is not None and tuple(owner) != (eui, kind):
                    raise InventoryError(f"this {kind} is already the {owner[1]} of {owner[0]}: every device "
                                         "needs keys of its own")
                self.db.execute("DELETE FROM key_prints WHERE dev_eui = ? AND kind = ?", (eui, kind))
                self.db.execute("INSERT INTO key_prints VALUES (?, ?, ?)", (fp, eui, kind))
            self.db.execute("INSERT INTO secrets VALUES (?, ?, ?, ?, ?) ON CONFLICT (dev_eui, kind) DO UPDATE SET "
                            "nonce = excluded.nonce, sealed = excluded.sealed, updated_at = excluded.updated_at",
                            (eui, kind, nonce, sealed, time.time()))

    def promote_admin_key(self, dev_eui: str) -> None:
        """The pending admin key (written to the device) becomes the one in force."""
        eui = _eui(dev_eui)
        with self.transaction():
            new = self.secret(eui, "admin_key_pending")
            self.db.execute("DELETE FROM key_prints WHERE dev_eui = ? AND kind = 'admin_key_pending'", (eui,))
            self.db.execute("DELETE FROM secrets WHERE dev_eui = ? AND kind = 'admin_key_pending'", (eui,))
            self.set_secret(eui, "admin_key", new)

    def _print(self, value: bytes) -> bytes:
        """A fingerprint of a key that tells equal keys apart without revealing them."""
        return hmac.new(self._key, b"key print\0" + bytes(value), hashlib.sha256).digest()

    def secret(self, dev_eui: str, kind: str) -> bytes:
        eui = _eui(dev_eui)
        row = self.db.execute("SELECT nonce, sealed FROM secrets WHERE dev_eui = ? AND kind = ?",
                              (eui, kind)).fetchone()
        if row is None:
            raise InventoryError(f"no {kind} stored for {eui}")
        try:
            return self._aead.decrypt(_blob(row[0]), _blob(row[1]), f"{eui}/{kind}".encode())
        except (InvalidTag, ValueError):  # ValueError: not a blob, or a nonce of a length AES-GCM refuses
            raise InventoryError(f"{kind} of {eui} does not decrypt: the inventory was altered") from None

    def secret_kinds(self, dev_eui: str) -> list[str]:
        return [r[0] for r in self.db.execute("SELECT kind FROM secrets WHERE dev_eui = ? ORDER BY kind",
                                              (_eui(dev_eui),))]


_COLUMN_WORDS = (("gateway_eui", "gateway EUI"), ("dev_addr", "DevAddr"), ("identity", "identity key"),
                 ("print", "key"), ("mac", "MAC"), ("dev_eui", "DevEUI"), ("devices_pkey", "DevEUI"))


def _taken(e: Exception) -> InventoryError:
    """A write a unique index refused (SQLite: "UNIQUE constraint failed: devices.mac", PostgreSQL:
    'duplicate key value violates unique constraint "devices_mac"'), in words."""
    text = str(e)
    for column, words in _COLUMN_WORDS:
        if column in text:
            return InventoryError(f"that {words} already belongs to another device of the inventory (another "
                                  "station may have just taken it); nothing was written")
    return InventoryError(f"the inventory refused the write ({_first_line(e)}); nothing was written")


def migrate(source: str | Path, dest: str | Path) -> dict[str, int]:
    """Move an inventory (an SQLite file to a PostgreSQL server, or back) into an empty one: every
    row, secrets still sealed under the same master key. A destination without a master key of
    its own gets a key file with the source's; one with another key is refused before anything
    is written."""
    source, dest = inventory_target(source), inventory_target(dest)
    if source == dest:
        raise InventoryError("--from and --to are the same inventory")
    with Inventory(source, existing=True) as src:
        held = configured_key(dest)
        if held is not None and held != src._key:
            raise InventoryError(f"{where(dest)} has a master key of its own, not the one of {src.where}: "
                                 f"give both the same ({ENV_KEY})")
        with Inventory(dest, key=src._key) as dst:
            counts = src.copy_to(dst)
        if held is None:
            write_key_file(dest, src._key)
    return counts


PAIRING_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I: read off a label


def pairing_code(inv: Inventory, dev_eui: str) -> str:
    """The board's pairing code, the passphrase of its set-up access point (docs/setup.md): made
    (12 characters, about 60 bits, in groups of 4) on first use and kept, sealed like its keys."""
    if "pairing_code" in inv.secret_kinds(dev_eui):
        return inv.secret(dev_eui, "pairing_code").decode()
    code = "".join(secrets.choice(PAIRING_ALPHABET) for _ in range(12))
    code = "-".join(code[i:i + 4] for i in range(0, 12, 4))
    inv.set_secret(dev_eui, "pairing_code", code.encode())
    return code
