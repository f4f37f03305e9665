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

    def greet(self) -> tuple[dict, bytes]:
        """The board's greeting and the manifest bytes that follow it; OtaError for a refusal
        (its code kept) or a service that is not ours."""
        g = self.line()
        if "err" in g:
            raise OtaError(f"{self.where}: {g.get('msg') or g['err']}", g["err"])
        if g.get("ota") != 1 or not isinstance(g.get("nonce"), str):
            raise OtaError(f"{self.where}: not a loraspot update service")
        return g, self.read(int(g.get("manifest") or 0))

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


def deploy_ota(target: str, files: dict[str, bytes] | None = None, inventory: Path | str | None = None,
               admin_key: bytes | None = None, label: str = "", dry_run: bool = False,
               wait: float = 120.0, timeout: float = 30.0) -> serial_deploy.DeployResult:
    """Send the files that differ from the board's manifest; wait (up to `wait` wall seconds)
    until it is back with the new version. The admin key comes from the inventory that
    provisioned the board unless given. A refusal that says "try again" (another session still
    closing, the board's heap at a peak) is tried again, ATTEMPTS times in all."""
    return _retried(_deploy_ota, target, files, inventory, admin_key, label, dry_run, wait, timeout)


def _admin_key(greet: dict, where: str, inventory: Path | str | None) -> bytes:
    """The board's admin key from the inventory that provisioned it (found by the id it greets with)."""
    from loraspot.provision.provision import held_admin_key

    try:
        key, _ = held_admin_key({"id": greet.get("id")}, where, inventory)
    except LoraspotError as e:  # its words are for a locked console: an update always needs the key
        raise OtaError(str(e).replace("the board is locked; its", "an update over the air is signed with "
                                      "the board's admin key; it", 1)) from None
    return key


def _retried(session, *args):
    """session(*args), tried again (ATTEMPTS in all) while the board says "try again"."""
    for attempt in range(1, ATTEMPTS):
        try:
            return session(*args)
        except OtaError as e:
            if e.code not in RETRY:
                raise
            time.sleep(attempt)
    return session(*args)


def _deploy_ota(target: str, files: dict[str, bytes] | None, inventory: Path | str | None, admin_key: bytes | None,
                label: str, dry_run: bool, wait: float, timeout: float) -> serial_deploy.DeployResult:
    host, port = parse_target(target)
    start = time.monotonic()
    res = serial_deploy.DeployResult(f"{host}:{port}")
    s = _Session(host, port, timeout)
    try:
        greet, remote_bytes = s.greet()
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
        res.app = str(greet.get("app") or "")
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
        admin_key = admin_key or _admin_key(greet, res.port, inventory)
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
        new_version = res.app = hashlib.sha256(manifest).hexdigest()[:12]
    finally:
        s.close()
        res.seconds = time.monotonic() - start
    if wait > 0:
        _wait_back(host, port, new_version, wait)
    res.seconds = time.monotonic() - start
    return res


def deploy_firmware_ota(target: str, firmware: bytes, inventory: Path | str | None = None,
                        admin_key: bytes | None = None, label: str = "", wait: float = 120.0,
                        timeout: float = 30.0) -> dict:
    """MicroPython itself (an application image, as the .app-bin of a MicroPython release) into
    the app slot a board with two (ESP32_GENERIC-OTA) is not running; the board boots it once on
    trial and keeps it when its health check passes, else its bootloader goes back. Waits (up to
    `wait` wall seconds) for the outcome; returns {"slot", "bytes", "seconds"}. A refusal that
    says "try again" is tried again, as for the app's files."""
    return _retried(_deploy_firmware_ota, target, firmware, inventory, admin_key, label, wait, timeout)


def _deploy_firmware_ota(target: str, firmware: bytes, inventory: Path | str | None, admin_key: bytes | None,
                         label: str, wait: float, timeout: float) -> dict:
    from loraspot.flash import espimage

    host, port = parse_target(target)
    where = f"{host}:{port}"
    try:  # an ESP32 image at all, before the board is reached (its chip is checked once it greets)
        espimage.read_image(firmware)
    except LoraspotError as e:
        raise OtaError(f"not an application image: {e}") from None
    start = time.monotonic()
    s = _Session(host, port, timeout)
    try:
        greet, _ = s.greet()
        profile = boards.get(str(greet.get("board")))
        if not profile["flash"]["partitions"].get("ota_1"):
            raise OtaError(f"{where}: the {profile['id']} image ({profile['image']['name']}) has one app slot: "
                           "MicroPython itself is replaced by cable (loraspot flash)", "one_slot")
        try:
            app = espimage.read_image(firmware, profile["chip"])
        except LoraspotError as e:
            raise OtaError(f"{where}: not an application image for this board: {e}") from None
        if not app.project:
            raise OtaError(f"{where}: this is not an application image (a full flash image starts with the "
                           "bootloader): give the release's .app-bin")
        admin_key = admin_key or _admin_key(greet, where, inventory)
        head = {"firmware": [len(firmware), hashlib.sha256(firmware).hexdigest()], "label": label}
        s.send(json.dumps({**head, "mac": sign(admin_key, bytes.fromhex(greet["nonce"]), head)}).encode() + b"\n")
        go = s.line()
        if "err" in go:
            raise OtaError(f"{where}: refused: {go.get('msg') or go['err']}", go["err"])
        s.send(firmware)
        done = s.line()
        if "err" in done:
            raise OtaError(f"{where}: refused: {done.get('msg') or done['err']}; the running MicroPython stays",
                           done["err"])
        slot = str(done.get("ok", {}).get("slot"))
    finally:
        s.close()
    out = {"slot": slot, "bytes": len(firmware), "seconds": 0.0}
    if wait > 0:
        def kept(g: dict) -> bool:
            if g.get("phase") == "rolledback":
                why = g.get("why") or "see loraspot info"
                raise OtaError(f"{where}: the new MicroPython was rolled back: {why}", "rolled_back")
            return g.get("phase") == "good" and g.get("slot") == slot

        _wait_for(where, wait, kept, "the new MicroPython did not pass its health check")
    out["seconds"] = time.monotonic() - start
    return out


def wait_healthy(target: str, version: str, wait: float) -> dict:
    """Greet the board until it runs app `version` having passed its health check (phase `good`);
    an OtaError (code `rolled_back`) as soon as it says it went back to its previous app."""
    host, port = parse_target(target)
    where = f"{host}:{port}"

    def done(g: dict) -> bool:
        if g.get("phase") == "rolledback":
            raise OtaError(f"{where}: app {version} failed its health check; the board went back to app "
                           f"{g.get('app')}", "rolled_back")
        return g.get("app") == version and g.get("phase") == "good"

    return _wait_for(where, wait, done, f"app {version} did not pass its health check")


def _wait_back(host: str, port: int, version: str, wait: float) -> dict:
    """Greet the board until its update service answers with `version` on trial or passed."""
    return _wait_for(f"{host}:{port}", wait, lambda g: g.get("app") == version, f"not back with app {version}")


def _wait_for(where: str, wait: float, done, what: str) -> dict:
    """Greet the board (once its service answers again) until done(greeting); done may raise an
    OtaError, which ends the wait. After `wait` wall seconds: OtaError saying `what`."""
    end = time.monotonic() + wait
    last = ""
    while time.monotonic() < end:
        try:
            g = greeting(where, timeout=5)
        except OtaError as e:
            last = str(e)
        else:
            if done(g):
                return g
            slot = f" from {g['slot']}" if g.get("slot") else ""
            last = f"it runs app {g.get('app')}{slot} ({g.get('phase')})"
        time.sleep(0.5)
    raise OtaError(f"{where}: {what} after {wait:.0f} s: {last}")


