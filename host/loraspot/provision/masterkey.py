"""Where an inventory is and the master key that seals its secrets, from, in order:
LORASPOT_MASTER_KEY (64 hex digits), the system keyring (when the `keyring` package is installed and
has one), or a key file (created 0600 with a random key; refused when others may read it): next to
an inventory file, or in the user data dir for a server's inventory (loraspot.provision.inventory
checks it against the inventory's encrypted check value on open)."""

from __future__ import annotations

import os
import re
import secrets
import stat
from pathlib import Path
from urllib.parse import urlsplit

import platformdirs

from loraspot.errors import InventoryError
from loraspot.store import is_url, where

ENV_KEY = "LORASPOT_MASTER_KEY"


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


Target = Path | str  # an inventory: an SQLite file, or a postgresql:// URL


def inventory_target(target: str | Path | None) -> Target:
    """Where an inventory is, said once: the default file, a URL as it is, or a path expanded."""
    if target is None or str(target).strip() == "":
        return default_path()
    if is_url(target):
        return str(target).strip()
    return Path(target).expanduser()


def key_file(target: Target) -> Path:
    """The key file of an inventory: beside its file, or in the user data dir for a server's
    (named by user, host, port and database, never by the password)."""
    if is_url(target):
        u = urlsplit(str(target))
        label = f"{u.username or ''}@{u.hostname or 'localhost'}_{u.port or 5432}_{u.path.strip('/') or 'postgres'}"
        return Path(platformdirs.user_data_dir("loraspot")) / "keys" / (re.sub(r"[^\w@.-]", "_", label) + ".key")
    path = Path(target)
    return path.with_name(path.name + ".key")


def configured_key(target: Target) -> bytes | None:
    """The master key the environment, the keyring or the key file gives `target`, if any."""
    env = os.environ.get(ENV_KEY)
    if env:
        return _parse_key(env, ENV_KEY)
    try:
        import keyring  # pyright: ignore[reportMissingImports]

        stored = keyring.get_password("loraspot", where(target) if is_url(target) else str(Path(target).resolve()))
        if stored:
            return _parse_key(stored, "the system keyring")
    except Exception:  # no keyring package, or no usable backend: fall back to the key file
        pass
    path = key_file(target)
    if path.exists():
        if os.name == "posix" and stat.S_IMODE(path.stat().st_mode) & 0o077:
            raise InventoryError(f"{path} can be read by other users: chmod 600 it")
        return _parse_key(path.read_text(), str(path))
    return None


def write_key_file(target: Target, key: bytes) -> None:
    path = key_file(target)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(key.hex() + "\n")


def master_key(target: Target, create: bool = True) -> bytes:
    """The master key of the inventory at `target` (see the module documentation for the order)."""
    target = inventory_target(target)
    key = configured_key(target)
    if key is not None:
        return key
    if not create:
        raise InventoryError(f"no master key: set {ENV_KEY} or restore {key_file(target)}")
    key = secrets.token_bytes(32)
    write_key_file(target, key)
    return key
