# Admin authentication: HMAC-SHA256 (RFC 4231 vectors), constant-time comparison, canonical
# arguments, and the envelope's rules (single-use nonce, expiry, whole-value comparison).
import asyncio
from binascii import hexlify, unhexlify

from fwtest import eq, raises
from spot.auth import NONCE_TTL_MS, Auth, canonical, hmac_sha256, message, same
from spot.console import CommandError

ADMIN = bytes(range(32))


def test_hmac_sha256_rfc4231():
    # RFC 4231 test cases 1, 2 and 6 (a key longer than the block is hashed first)
    eq(hexlify(hmac_sha256(b"\x0b" * 20, b"Hi There")).decode(),
       "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7")
    eq(hexlify(hmac_sha256(b"Jefe", b"what do ya want for nothing?")).decode(),
       "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")
    eq(hexlify(hmac_sha256(b"\xaa" * 131, b"Test Using Larger Than Block-Size Key - Hash Key First")).decode(),
       "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54")


def test_same_compares_whole_values():
    a = bytes(range(32))
    eq(same(a, bytes(a)), True)
    eq(same(a, a[:31]), False)  # a prefix
    eq(same(a, a + b"\0"), False)
    eq(same(a, b""), False)
    eq(same(a, a[:31] + b"\x20"), False)


def test_canonical_sorts_keys_without_spaces():
    eq(canonical({"b": 1, "a": {"y": [1, "x"], "x": True}, "c": None}), '{"a":{"x":true,"y":[1,"x"]},"b":1,"c":null}')
    eq(canonical({}), "{}")


class Clock:
    def __init__(self):
        self.now = 1000

    def ticks_ms(self):
        return self.now


class Store:
    def __init__(self, admin):
        self.v = {"admin_key": admin} if admin else {}

    def get(self, name):
        return self.v.get(name)


class App:
    def __init__(self, admin=ADMIN):
        self.clock = Clock()
        self.secrets = Store(admin)


def _signed(auth, op, args, key=ADMIN):
    n = unhexlify(asyncio.run(auth.nonce({}))["nonce"])
    mac = hmac_sha256(key, message(n, op, args))
    out = dict(args)
    out["auth"] = {"nonce": hexlify(n).decode(), "mac": hexlify(mac).decode()}
    return out, n, mac


def _code(fn, *a):
    return raises(CommandError, fn, *a).code


def test_envelope_rules():
    auth = Auth(App())
    args = {"kind": "app_key", "value": "00" * 16}
    eq(_code(auth.check, "keys.set", dict(args)), "auth_required")
    signed, n, mac = _signed(auth, "keys.set", args)
    auth.check("keys.set", signed)
    eq(signed, args)  # the envelope is gone before the handler sees the arguments
    # replayed: the nonce was used
    replay = dict(args)
    replay["auth"] = {"nonce": hexlify(n).decode(), "mac": hexlify(mac).decode()}
    eq(_code(auth.check, "keys.set", replay), "auth_failed")
    # a prefix of the right value, a wrong key, other arguments, another command
    signed, n, mac = _signed(auth, "keys.set", args)
    signed["auth"]["mac"] = signed["auth"]["mac"][:32]
    eq(_code(auth.check, "keys.set", signed), "auth_failed")
    signed, _, _ = _signed(auth, "keys.set", args, key=bytes(32))
    eq(_code(auth.check, "keys.set", signed), "auth_failed")
    signed, _, _ = _signed(auth, "keys.set", args)
    signed["value"] = "11" * 16
    eq(_code(auth.check, "keys.set", signed), "auth_failed")
    signed, _, _ = _signed(auth, "keys.set", args)
    eq(_code(auth.check, "fs.put", signed), "auth_failed")
    # expired
    signed, _, _ = _signed(auth, "keys.set", args)
    auth.app.clock.now += NONCE_TTL_MS + 1
    eq(_code(auth.check, "keys.set", signed), "auth_failed")
    # garbage envelope
    eq(_code(auth.check, "keys.set", {"auth": {"nonce": "zz", "mac": 1}}), "auth_failed")
    eq(_code(auth.check, "keys.set", {"auth": "x"}), "auth_failed")


def test_few_outstanding_nonces_and_public_config():
    auth = Auth(App())
    first, _, _ = _signed(auth, "keys.set", {})
    for _ in range(4):
        asyncio.run(auth.nonce({}))
    eq(_code(auth.check, "keys.set", first), "auth_failed")  # dropped for newer ones
    auth.check("config.set", {"values": {"name": "x", "stats_interval": 30}})
    auth.check("config.set", {"key": "name", "value": "x"})
    eq(_code(auth.check, "config.set", {"values": {"name": "x", "role": "node"}}), "auth_required")
    eq(_code(auth.check, "config.set", {"key": "join_eui", "value": "00" * 8}), "auth_required")


def test_no_admin_key_never_authenticates():
    auth = Auth(App(admin=None))
    signed, _, _ = _signed(auth, "keys.set", {}, key=b"")
    eq(_code(auth.check, "keys.set", signed), "auth_failed")


def test_envelope_sent_ahead_is_good_for_one_command():
    auth = Auth(App())
    args = {"kind": "wifi_password", "value": "41" * 63}
    signed, _, _ = _signed(auth, "keys.set", args)
    asyncio.run(auth.arm(signed["auth"]))
    auth.check("keys.set", dict(args))
    eq(_code(auth.check, "keys.set", dict(args)), "auth_required")  # used up
    signed, _, _ = _signed(auth, "keys.set", args)
    asyncio.run(auth.arm(signed["auth"]))
    eq(_code(auth.check, "keys.set", {"kind": "wifi_password", "value": "42" * 63}), "auth_failed")
