# Admin authentication of console commands (docs/security.md, docs/console-protocol.md). Once a
# device is locked, the commands registered as needing it (keys.set, config.set of all but a few
# harmless keys, file writes, factory_reset) carry an envelope, the request's "auth" member
# {"nonce": hex, "mac": hex}: the HMAC-SHA256 under the device's admin key of
# nonce || op || "\n" || canonical JSON of args. A nonce comes from auth.nonce, is good for one
# answer and expires after NONCE_TTL_MS. lock and unlock always need the envelope. A request too
# long for it (requests are at most 256 bytes) has it sent just before by auth.sign; it is good
# for the next command that needs one.
# Loaded on first use: a device that is never locked pays nothing.
import binascii
import errno
import hashlib
import os

import micropython

from spot.clock import ticks_diff
from spot.codec import canonical
from spot.console import CommandError, arg
from spot.fsnames import LOCK_PATH

NONCE_TTL_MS = 300000
MAX_NONCES = 4  # outstanding nonces; the oldest is dropped for a new one
# config keys that config.set may change on a locked device without the envelope
PUBLIC_CONFIG = ("name", "stats_interval", "console_events", "log_level")
# what factory_reset removes besides the secrets store
RESET_FILES = ("/config.json", "/config.json.bak", "/lorawan.json", "/lorawan.json.bak", "/crash.json", "/lock")


def hmac_sha256(key, msg):
    if len(key) > 64:
        key = hashlib.sha256(key).digest()
    key = bytes(key) + bytes(64 - len(key))
    inner = hashlib.sha256(bytes(b ^ 0x36 for b in key))
    inner.update(msg)
    outer = hashlib.sha256(bytes(b ^ 0x5C for b in key))
    outer.update(inner.digest())
    return outer.digest()


def same(want, got):
    """Constant-time comparison over the whole expected value; any other length differs."""
    diff = len(want) ^ len(got)
    for i in range(len(want)):
        diff |= want[i] ^ (got[i] if i < len(got) else 0)
    return diff == 0


def message(nonce, op, args):
    return nonce + op.encode() + b"\n" + canonical(args)


class Auth:
    def __init__(self, app):
        self.app = app
        self._nonces = []  # [nonce bytes, ticks_ms when issued], oldest first
        self._armed = None  # the envelope auth.sign sent for the next command

    def _now(self):
        return self.app.clock.ticks_ms()

    # --- the envelope -------------------------------------------------------------------------
    def check(self, op, args):
        """The console's guard on a locked device, for commands registered as needing auth."""
        if op == "config.set" and self.app.console.envelope is None:
            keys = args["values"] if isinstance(args.get("values"), dict) else {args.get("key"): 0}
            if all(k in PUBLIC_CONFIG for k in keys):
                return
        self.verify(op, args)

    def verify(self, op, args):
        console = self.app.console
        env, console.envelope = console.envelope, None
        if env is None:
            env, self._armed = self._armed, None
        if env is None:
            raise CommandError("auth_required", "the device is locked: '%s' needs admin authentication" % op)
        try:
            nonce = binascii.unhexlify(env["nonce"])
            mac = binascii.unhexlify(env["mac"])
        except (TypeError, KeyError, ValueError, AttributeError):
            raise CommandError("auth_failed", "the auth envelope needs hex 'nonce' and 'mac'")
        issued = None
        for i, entry in enumerate(self._nonces):
            if entry[0] == nonce:
                issued = self._nonces.pop(i)[1]  # single use, whatever the outcome
                break
        if issued is None:
            raise CommandError("auth_failed", "unknown or already used nonce")
        if ticks_diff(self._now(), issued) > NONCE_TTL_MS:
            raise CommandError("nonce_expired", "the nonce expired: ask auth.nonce again")
        key = self.app.secrets.get("admin_key")
        if key is None:
            raise CommandError("auth_failed", "no admin key is stored")
        if not same(hmac_sha256(key, message(nonce, op, args)), mac):
            raise CommandError("auth_failed", "wrong authentication for '%s'" % op)

    # --- commands -----------------------------------------------------------------------------
    async def arm(self, args):
        self._armed = {"nonce": arg(args, "nonce", str), "mac": arg(args, "mac", str)}

    async def nonce(self, args):
        if len(self._nonces) >= MAX_NONCES:
            self._nonces.pop(0)
        n = os.urandom(16)
        self._nonces.append([n, self._now()])
        return {"nonce": binascii.hexlify(n).decode(), "ttl_s": NONCE_TTL_MS // 1000}

    def _set_lock(self, state):
        # a file of one byte (the config's whole rewrite needs more heap than a running node has);
        # written to a temporary name and renamed, so a power cut leaves the old state or the new
        try:
            if state:
                with open(LOCK_PATH + ".part", "wb") as f:
                    f.write(state)
                os.rename(LOCK_PATH + ".part", LOCK_PATH)
            else:
                try:
                    os.remove(LOCK_PATH)
                except OSError as e:
                    if e.errno != errno.ENOENT:
                        raise
        except OSError as e:
            raise CommandError("io", "lock state not saved: %s" % e)
        self.app.apply_lock(state)

    async def lock(self, args):
        self.verify("lock", args)
        production = arg(args, "production", bool, False, required=False)
        self._set_lock(b"P" if production else b"L")
        return {"locked": True, "production": production}

    async def unlock(self, args):
        self.verify("unlock", args)
        self._set_lock(b"")
        return {"locked": False, "production": False}

    async def factory_reset(self, args):
        app = self.app
        app.secrets.clear()
        for path in RESET_FILES:
            try:
                os.remove(path)
            except OSError:
                pass
        micropython.kbd_intr(3)
        await app.reboot({})
        return {"reset": True}

