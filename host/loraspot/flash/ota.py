"""`loraspot deploy --ota HOST[:PORT]`: the changed app files of a hotspot sent over its network
in one authenticated TCP session with its update service (firmware spot/ota.py, config
`ota_port`; the session is described there and in docs/ota.md). The board stages the files,
checks each one, and switches to them at its next boot; the new app then has 3 boots and 5
device-minutes each to pass its health check, or the board goes back to the previous app."""

from __future__ import annotations

import hashlib
import hmac
import json
import socket
import time
from pathlib import Path

from loraspot import boards
from loraspot.console.codec import canonical
from loraspot.errors import LoraspotError
from loraspot.flash import deploy as serial_deploy
from loraspot.flash import image as fsimage

DEFAULT_PORT = 3232  # the port ESP32 boards answer updates over the air on (ArduinoOTA's)
GUARD = ("boot.py", "main.py", "lib/otaboot.mpy")  # firmware otaboot.GUARD: never replaced over the air
MAX_GREETING = 4096


class OtaError(serial_deploy.DeployError):
    def __init__(self, msg: str, code: str = "") -> None:
        super().__init__(msg)
        self.code = code  # the board's refusal code, when it refused


RETRY = ("busy", "no_memory")  # refusals that say "try again": a session closing, a heap peak
ATTEMPTS = 3


def parse_target(target: str) -> tuple[str, int]:
    """HOST[:PORT] (an IPv6 address in brackets) as (host, port); OtaError when malformed."""
    text = target.strip()
    host, port = text, DEFAULT_PORT
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise OtaError(f"{target!r}: an IPv6 address ends with ']'")
        host, rest = text[1:end], text[end + 1 :]
        if rest:
            if not rest.startswith(":"):
                raise OtaError(f"{target!r}: give HOST[:PORT]")
            port = _port(rest[1:], target)
    elif text.count(":") == 1:
        host, p = text.split(":")
        port = _port(p, target)
    if not host or any(c.isspace() for c in host):
        raise OtaError(f"{target!r}: give HOST[:PORT]")
    return host, port


def _port(text: str, target: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise OtaError(f"{target!r}: the port is a number from 1 to 65535")
    return int(text)


class _Session:
    """One TCP session with a board's update service."""

    def __init__(self, host: str, port: int, timeout: float) -> None:
        try:
            self.sock = socket.create_connection((host, port), timeout=timeout)
        except OSError as e:
            raise OtaError(f"{host}:{port}: no update service answers ({e.strerror or e}): is ota_port set on "
                           "the board, and is it on this network?") from None
        self.f = self.sock.makefile("rwb")
        self.where = f"{host}:{port}"

    def line(self) -> dict:
        try:
            raw = self.f.readline(MAX_GREETING)
        except OSError as e:
            raise OtaError(f"{self.where}: the connection broke ({e})") from None
        if not raw.endswith(b"\n"):
            raise OtaError(f"{self.where}: the board closed the session")
        try:
            obj = json.loads(raw)
        except ValueError:
            raise OtaError(f"{self.where}: not an update service (it said {raw[:60]!r})") from None
        if not isinstance(obj, dict):
            raise OtaError(f"{self.where}: not an update service")
        return obj

    def read(self, n: int) -> bytes:
        data = self.f.read(n)
        if len(data) != n:
            raise OtaError(f"{self.where}: the board's manifest ended early")
        return data

    def send(self, data: bytes) -> None:
        try:
            self.f.write(data)
            self.f.flush()
        except OSError as e:
            raise OtaError(f"{self.where}: the connection broke ({e})") from None

    def close(self) -> None:
        for c in (self.f, self.sock):
            try:
                c.close()
            except OSError:
                pass


def greeting(target: str, timeout: float = 10.0) -> dict:
    """What a board's update service says first (board, id, app version, update phase), the
    session then closed unused."""
    host, port = parse_target(target)
    s = _Session(host, port, timeout)
    try:
        g = s.line()
    finally:
        s.close()
    if "err" in g:
        raise OtaError(f"{host}:{port}: {g.get('msg') or g['err']}")
    return g


def sign(key: bytes, nonce: bytes, head: dict) -> str:
    return hmac.new(key, nonce + b"ota\n" + canonical(head), hashlib.sha256).hexdigest()


def deploy_ota(target: str, files: dict[str, bytes] | None = None, inventory: Path | None = None,
               admin_key: bytes | None = None, label: str = "", dry_run: bool = False,
               wait: float = 120.0, timeout: float = 30.0) -> serial_deploy.DeployResult:
    """Send the files that differ from the board's manifest; wait (up to `wait` wall seconds)
    until it is back with the new version. The admin key comes from the inventory that
    provisioned the board unless given. A refusal that says "try again" (another session still
    closing, the board's heap at a peak) is tried again, ATTEMPTS times in all."""
    for attempt in range(1, ATTEMPTS):
        try:
            return _deploy_ota(target, files, inventory, admin_key, label, dry_run, wait, timeout)
        except OtaError as e:
            if e.code not in RETRY:
                raise
            time.sleep(attempt)
    return _deploy_ota(target, files, inventory, admin_key, label, dry_run, wait, timeout)


def _deploy_ota(target: str, files: dict[str, bytes] | None, inventory: Path | None, admin_key: bytes | None,
                label: str, dry_run: bool, wait: float, timeout: float) -> serial_deploy.DeployResult:
    host, port = parse_target(target)
    start = time.monotonic()
    res = serial_deploy.DeployResult(f"{host}:{port}")
    s = _Session(host, port, timeout)
    try:
        greet = s.line()
        if "err" in greet:
            raise OtaError(f"{res.port}: {greet.get('msg') or greet['err']}", greet["err"])
        if greet.get("ota") != 1 or not isinstance(greet.get("nonce"), str):
            raise OtaError(f"{res.port}: not a loraspot update service")
        remote_bytes = s.read(int(greet.get("manifest") or 0))
        try:
            remote = json.loads(remote_bytes)["files"] if remote_bytes else {}
        except (ValueError, KeyError, TypeError):
            remote = {}
        profile = boards.get(str(greet.get("board")))
        files = serial_deploy._deployable(profile, files)
        local = fsimage.manifest_of(files)
        manifest = fsimage.manifest_bytes(files)
        changed = [p for p in local if remote.get(p) != local[p]]
        res.unchanged = len(local) - len(changed)
        if not changed and manifest == remote_bytes:
            return res
        if dry_run:
            res.sent = changed
            return res
        guard = [p for p in changed if p in GUARD]
        if guard:
            raise OtaError(f"{res.port}: {', '.join(guard)} changed: the boot guard of updates over the air changes "
                           "only by cable (loraspot deploy --port)")
        if greet.get("romfs") and any(p.startswith(fsimage.ROMFS_DIR) for p in changed):
            raise OtaError(f"{res.port}: this board runs its library from a read-only ROMFS: library changes need "
                           "`loraspot flash`")
        if admin_key is None:
            from loraspot.provision.provision import held_admin_key

            try:
                admin_key, _ = held_admin_key({"id": greet.get("id")}, res.port, inventory)
            except LoraspotError as e:  # its words are for a locked console: an update always needs the key
                raise OtaError(str(e).replace("the board is locked; its", "an update over the air is signed with "
                                              "the board's admin key; it", 1)) from None
        pack = serial_deploy.make_pack({"/" + p: files[p] for p in changed})
        head = {"manifest": [len(manifest), hashlib.sha256(manifest).hexdigest()],
                "pack": [len(pack), hashlib.sha256(pack).hexdigest()], "label": label}
        s.send(json.dumps({**head, "mac": sign(admin_key, bytes.fromhex(greet["nonce"]), head)}).encode() + b"\n")
        go = s.line()
        if "err" in go:
            raise OtaError(f"{res.port}: refused: {go.get('msg') or go['err']}", go["err"])
        s.send(manifest + pack)
        done = s.line()
        if "err" in done:
            raise OtaError(f"{res.port}: refused: {done.get('msg') or done['err']}; nothing was staged", done["err"])
        res.sent = changed
        res.bytes_sent = len(pack)
        res.rebooted = True
        new_version = hashlib.sha256(manifest).hexdigest()[:12]
    finally:
        s.close()
        res.seconds = time.monotonic() - start
    if wait > 0:
        _wait_back(host, port, new_version, wait)
    res.seconds = time.monotonic() - start
    return res


def _wait_back(host: str, port: int, version: str, wait: float) -> dict:
    """Greet the board until its update service answers with `version` on trial or passed."""
    end = time.monotonic() + wait
    last = ""
    while time.monotonic() < end:
        try:
            g = greeting(f"{host}:{port}", timeout=5)
            if g.get("app") == version:
                return g
            last = f"it runs {g.get('app')} ({g.get('phase')})"
        except OtaError as e:
            last = str(e)
        time.sleep(0.5)
    raise OtaError(f"{host}:{port}: not back with app {version} after {wait:.0f} s: {last}")


