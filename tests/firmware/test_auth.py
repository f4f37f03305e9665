# Admin authentication: HMAC-SHA256 (RFC 4231 vectors), constant-time comparison, canonical
# arguments, and the envelope's rules (single-use nonce, expiry, whole-value comparison).
import asyncio
from binascii import hexlify, unhexlify

from fwtest import eq, raises
from spot.auth import NONCE_TTL_MS, Auth, hmac_sha256, message, same
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


def test_message_is_nonce_op_and_canonical_arguments():
    eq(message(b"\x01\x02", "keys.set", {"b": 1, "a": "\u00e9"}), b'\x01\x02keys.set\n{"a":"\\u00e9","b":1}')


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


class Console:
    envelope = None


class App:
    def __init__(self, admin=ADMIN):
        self.clock = Clock()
        self.secrets = Store(admin)
        self.console = Console()


def _signed(auth, op, args, key=ADMIN):
    """The request's arguments and its envelope."""
    n = unhexlify(asyncio.run(auth.nonce({}))["nonce"])
    mac = hmac_sha256(key, message(n, op, args))
    return dict(args), {"nonce": hexlify(n).decode(), "mac": hexlify(mac).decode()}


def _check(auth, op, args, env=None):
    """What the console does with a request: its envelope aside, then the guard."""
    auth.app.console.envelope = env
    auth.check(op, args)


def _code(auth, op, args, env=None):
    return raises(CommandError, _check, auth, op, args, env).code


def test_envelope_rules():
    auth = Auth(App())
    args = {"kind": "app_key", "value": "00" * 16}
    eq(_code(auth, "keys.set", args), "auth_required")
    a, env = _signed(auth, "keys.set", args)
    _check(auth, "keys.set", a, env)
    eq(auth.app.console.envelope, None)  # used
    eq(_code(auth, "keys.set", a, dict(env)), "auth_failed")  # replayed: the nonce was used
    # a prefix of the right value, a wrong key, other arguments, another command
    a, env = _signed(auth, "keys.set", args)
    env["mac"] = env["mac"][:-2]
    eq(_code(auth, "keys.set", a, env), "auth_failed")
    a, env = _signed(auth, "keys.set", args, key=bytes(32))
    eq(_code(auth, "keys.set", a, env), "auth_failed")
    a, env = _signed(auth, "keys.set", args)
    a["value"] = "11" * 16
    eq(_code(auth, "keys.set", a, env), "auth_failed")
    a, env = _signed(auth, "keys.set", args)
    eq(_code(auth, "fs.put", a, env), "auth_failed")
    # expired
    a, env = _signed(auth, "keys.set", args)
    auth.app.clock.now += NONCE_TTL_MS + 1
    eq(_code(auth, "keys.set", a, env), "nonce_expired")
    # garbage envelopes
    eq(_code(auth, "keys.set", {}, {"nonce": "zz", "mac": 1}), "auth_failed")
    eq(_code(auth, "keys.set", {}, "x"), "auth_failed")


def test_few_outstanding_nonces_and_public_config():
    auth = Auth(App())
    first = _signed(auth, "keys.set", {})
    for _ in range(4):
        asyncio.run(auth.nonce({}))
    eq(_code(auth, "keys.set", *first), "auth_failed")  # dropped for newer ones
    _check(auth, "config.set", {"values": {"name": "x", "stats_interval": 30}})
    _check(auth, "config.set", {"key": "name", "value": "x"})
    eq(_code(auth, "config.set", {"values": {"name": "x", "role": "node"}}), "auth_required")
    eq(_code(auth, "config.set", {"key": "join_eui", "value": "00" * 8}), "auth_required")


def test_envelope_sent_ahead_is_good_for_one_command():
    auth = Auth(App())
    args = {"kind": "wifi_password", "value": "41" * 63}
    a, env = _signed(auth, "keys.set", args)
    asyncio.run(auth.arm(env))
    _check(auth, "keys.set", a)
    eq(_code(auth, "keys.set", a), "auth_required")  # used up
    a, env = _signed(auth, "keys.set", args)
    asyncio.run(auth.arm(env))
    eq(_code(auth, "keys.set", {"kind": "wifi_password", "value": "42" * 63}), "auth_failed")


def test_no_admin_key_never_authenticates():
    auth = Auth(App(admin=None))
    a, env = _signed(auth, "keys.set", {}, key=b"")
    eq(_code(auth, "keys.set", a, env), "auth_failed")
