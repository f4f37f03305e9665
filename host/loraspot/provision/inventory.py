"""The device inventory: SQLite (one file, user data dir by default), secrets encrypted at rest
with AES-256-GCM under a master key, schema versioned with migrations.

The master key comes from, in order: LORASPOT_MASTER_KEY (64 hex digits), the system keyring
(when the `keyring` package is installed and has one), or a key file next to the inventory
(created 0600 with a random key; refused when others may read it). A wrong master key is
detected on open through an encrypted check value, before anything is read or written.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import os
import secrets
import sqlite3
import stat
import time
from dataclasses import dataclass, fields
from pathlib import Path

import platformdirs
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from loraspot.errors import LoraspotError

ENV_KEY = "LORASPOT_MASTER_KEY"
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
UNIQUE_KINDS = ("app_key", "nwk_key", "nwk_s_key", "app_s_key", "admin_key", "admin_key_pending")
STATES = ("registered", "provisioning", "provisioned", "locked")


class InventoryError(LoraspotError):
    exit_code = 6


def default_path() -> Path:
    return Path(platformdirs.user_data_dir("loraspot")) / "inventory.sqlite"


def _parse_key(text: str, source: str) -> bytes:
    try:
        key = bytes.fromhex(text.strip())
    except ValueError:
        key = b""
    if len(key) != 32:
        raise InventoryError(f"master key from {source} must be 64 hex digits (32 bytes)")
    return key


def master_key(inventory_path: Path, create: bool = True) -> bytes:
    """The master key for inventory_path (see the module documentation for the order)."""
    env = os.environ.get(ENV_KEY)
    if env:
        return _parse_key(env, ENV_KEY)
    try:
        import keyring  # pyright: ignore[reportMissingImports]

        stored = keyring.get_password("loraspot", str(inventory_path.resolve()))
        if stored:
            return _parse_key(stored, "the system keyring")
    except Exception:  # no keyring package, or no usable backend: fall back to the key file
        pass
    path = inventory_path.with_name(inventory_path.name + ".key")
    if path.exists():
        if os.name == "posix" and stat.S_IMODE(path.stat().st_mode) & 0o077:
            raise InventoryError(f"{path} can be read by other users: chmod 600 it")
        return _parse_key(path.read_text(), str(path))
    if not create:
        raise InventoryError(f"no master key: set {ENV_KEY} or restore {path}")
    path.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_bytes(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(key.hex() + "\n")
    return key


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


def _statements(script: str) -> list[str]:
    """The SQL statements of a migration, one by one (a script run with executescript would commit
    the transaction it is part of): split where sqlite says a statement is complete."""
    out, part = [], ""
    for piece in script.split(";"):
        part += piece + ";"
        if sqlite3.complete_statement(part):
            if part.strip(" \n;"):
                out.append(part.strip())
            part = ""
    return out


def _mac(value: str) -> str:
    return hex_id(value, 12, "MAC")


def _eui(value: str, what: str = "DevEUI") -> str:
    return hex_id(value, 16, what)


def peek_by_mac(path: Path, mac: str) -> Device | None:
    """The device of a MAC, read without the master key (public columns only, read-only): for a
    check that must not need the key, such as flash asking whether a board is provisioned."""
    uri = f"file:{Path(path).resolve()}?mode=ro"
    try:
        db = sqlite3.connect(uri, uri=True, timeout=30)
    except sqlite3.Error as e:
        raise InventoryError(f"{path}: cannot open the inventory ({e})") from None
    try:
        if db.execute("PRAGMA user_version").fetchone()[0] != len(MIGRATIONS):
            db.close()
            with Inventory(path) as inv:  # an older schema: migrated (this needs the key)
                return inv.by_mac(mac)
        row = db.execute(f"SELECT {_DEVICE_COLUMNS} FROM devices WHERE mac = ?", (_mac(mac),)).fetchone()
        return Device(*row) if row else None
    except sqlite3.DatabaseError as e:
        raise InventoryError(f"{path}: not a loraspot inventory, or damaged ({e})") from None
    finally:
        db.close()


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
    def __init__(self, path: Path | None = None, key: bytes | None = None):
        self.path = Path(path) if path else default_path()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        new = not self.path.exists()
        # WAL: readers (listen, a backup) and one writer at a time from several processes and the
        # threads of a batch, each with a connection of its own; a writer waits up to 30 s
        try:
            self.db = sqlite3.connect(self.path, isolation_level=None, timeout=30, check_same_thread=False)
        except sqlite3.Error as e:
            raise InventoryError(f"{self.path}: cannot open the inventory ({e})") from None
        try:
            self.db.execute("PRAGMA foreign_keys = ON")
            self._wal()
            self._migrate()
            self._key = key if key is not None else master_key(self.path, create=new or self._empty())
            self._aead = AESGCM(self._key)
            self._check_key()
        except sqlite3.DatabaseError as e:
            self.db.close()
            raise InventoryError(f"{self.path}: not a loraspot inventory, or damaged ({e}); "
                                 "restore it from a backup (loraspot devices backup)") from None
        except Exception:
            self.db.close()
            raise

    def _wal(self) -> None:
        """WAL mode. Switching a new file to it needs the file to itself, and SQLite answers "database
        is locked" at once, without its busy wait, while another process opening the same new
        inventory holds it: that is retried, with a growing pause, for as long as a writer waits."""
        import time

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
    def _migrate(self) -> None:
        version = self.db.execute("PRAGMA user_version").fetchone()[0]
        if version > len(MIGRATIONS):
            raise InventoryError(f"{self.path} was written by a newer loraspot (schema {version}); upgrade loraspot")
        if version == len(MIGRATIONS):
            return
        # another process may be opening the same new inventory: the version is read again under
        # the write lock, so each migration runs once
        self.db.execute("BEGIN IMMEDIATE")
        try:
            version = self.db.execute("PRAGMA user_version").fetchone()[0]
            for n in range(version, len(MIGRATIONS)):
                for statement in _statements(MIGRATIONS[n]):
                    self.db.execute(statement)
                self.db.execute(f"PRAGMA user_version = {n + 1}")
            self.db.execute("COMMIT")
        except BaseException:
            self.db.execute("ROLLBACK")
            raise

    def schema_version(self) -> int:
        return self.db.execute("PRAGMA user_version").fetchone()[0]

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
            raise InventoryError(f"wrong master key for {self.path}") from None

    # ---- devices --------------------------------------------------------------------------------
    def add_device(self, dev_eui: str, join_eui: str | None = None, name: str | None = None,
                   board: str | None = None) -> Device:
        eui = _eui(dev_eui)
        now = time.time()
        self.db.execute(
            "INSERT INTO devices (dev_eui, join_eui, dev_addr, name, board, created_at, updated_at) "
            "VALUES (?, ?, NULL, ?, ?, ?, ?) ON CONFLICT(dev_eui) DO UPDATE SET "
            "join_eui = COALESCE(excluded.join_eui, join_eui), name = COALESCE(excluded.name, name), "
            "board = COALESCE(excluded.board, board), updated_at = excluded.updated_at",
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
        sets = ", ".join(f"{k} = ?" for k in fields)
        try:
            self.db.execute(f"UPDATE devices SET {sets}, updated_at = ? WHERE dev_eui = ?",
                            (*fields.values(), time.time(), _eui(dev_eui)))
        except sqlite3.IntegrityError as e:
            if "identity" in str(e):
                other = self.db.execute("SELECT dev_eui FROM devices WHERE identity = ?",
                                        (fields["identity"],)).fetchone()
                raise InventoryError(f"identity key {fields['identity']} already belongs to "
                                     f"{other[0] if other else 'another device'}") from None
            raise

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
        rows = self.db.execute(query + " ORDER BY at, rowid", args).fetchall()
        return [{"mac": m, "board": b, "at": at, "ok": bool(ok), "checks": json.loads(r)} for m, b, at, ok, r in rows]

    @contextlib.contextmanager
    def transaction(self):
        """One write transaction (BEGIN IMMEDIATE: other writers wait); nested calls join it."""
        if self.db.in_transaction:
            yield
            return
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    def backup(self, dest: Path) -> None:
        """A consistent copy through SQLite's online backup API, safe while others write."""
        dest = Path(dest)
        if dest.exists():
            raise InventoryError(f"{dest} exists; give a new file name")
        try:
            out = sqlite3.connect(dest)
            try:
                self.db.backup(out)
            finally:
                out.close()
        except sqlite3.Error as e:
            raise InventoryError(f"{dest}: cannot write the backup there ({e})") from None

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
            self.db.execute("INSERT OR REPLACE INTO secrets VALUES (?, ?, ?, ?, ?)",
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
