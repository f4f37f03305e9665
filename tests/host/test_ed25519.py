"""The firmware's SHA-512 and Ed25519 (spot.sha512, spot.ed25519, run under MicroPython at the
board's heap) against the host's own implementations: hashlib, and cryptography's Ed25519
(OpenSSL). The published vectors (tests/vectors/ed25519.json) are checked here too, and the
SHA-512 constants derived again from their definition."""

from __future__ import annotations

import hashlib
import json
import secrets
from math import isqrt
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from tests.conftest import run_firmware_json

VECTORS = json.loads((Path(__file__).resolve().parents[1] / "vectors" / "ed25519.json").read_text())


def _raw_public(k: Ed25519PrivateKey) -> bytes:
    return k.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


def test_the_published_vectors_hold_on_the_host():
    for c in VECTORS["ed25519"]:
        k = Ed25519PrivateKey.from_private_bytes(bytes.fromhex(c["secret"]))
        assert _raw_public(k).hex() == c["public"], c["name"]
        assert k.sign(bytes.fromhex(c["message"])).hex() == c["signature"], c["name"]
    for c in VECTORS["sha512"]:
        assert hashlib.sha512(c["msg_ascii"].encode()).hexdigest() == c["digest"]


def _primes(n: int) -> list[int]:
    out: list[int] = []
    k = 2
    while len(out) < n:
        if all(k % q for q in out if q * q <= k):
            out.append(k)
        k += 1
    return out


def _icbrt(n: int) -> int:
    x = 1 << ((n.bit_length() + 2) // 3)
    while True:
        y = (2 * x + n // (x * x)) // 3
        if y >= x:
            break
        x = y
    while x**3 > n:
        x -= 1
    while (x + 1) ** 3 <= n:
        x += 1
    return x


def test_sha512_constants_are_the_roots_of_the_primes():
    got = run_firmware_json("from spot import sha512; import json; print(json.dumps([sha512.K, sha512.H0]))", None)
    m = (1 << 64) - 1
    assert got == [[_icbrt(p << 192) & m for p in _primes(80)], [isqrt(p << 128) & m for p in _primes(8)]]


SCRIPT = """
import json, sys
from binascii import hexlify, unhexlify
from spot import ed25519
from spot.sha512 import sha512
d = json.loads(sys.stdin.read())
out = {"sha": [hexlify(sha512(unhexlify(m)).digest()).decode() for m in d["sha"]], "signed": [], "checked": []}
for sk, msg in d["sign"]:
    sk, msg = unhexlify(sk), unhexlify(msg)
    out["signed"].append([hexlify(ed25519.public_key(sk)).decode(), hexlify(ed25519.sign(sk, msg)).decode()])
for pk, msg, sig in d["verify"]:
    out["checked"].append(ed25519.verify(unhexlify(pk), unhexlify(msg), unhexlify(sig)))
print(json.dumps(out))
"""


def test_board_and_host_agree_on_random_keys_and_messages():
    rng = secrets.SystemRandom()
    msgs = [secrets.token_bytes(rng.choice([0, 1, 63, 64, 111, 112, 127, 128, 129, 300])) for _ in range(6)]
    keys = [Ed25519PrivateKey.generate() for _ in range(3)]
    seeds = [k.private_bytes_raw() for k in keys]
    verify = []
    for k, m in zip(keys * 2, msgs, strict=True):
        sig = k.sign(m)
        verify.append([_raw_public(k).hex(), m.hex(), sig.hex()])  # made by the host: must verify
        bad = bytearray(sig)
        bad[rng.randrange(64)] ^= 1 << rng.randrange(8)
        verify.append([_raw_public(k).hex(), m.hex(), bad.hex()])  # one bit changed: must not
    out = run_firmware_json(SCRIPT, {"sha": [m.hex() for m in msgs], "verify": verify,
                                     "sign": [[s.hex(), m.hex()] for s, m in zip(seeds * 2, msgs, strict=True)]})
    assert out["sha"] == [hashlib.sha512(m).hexdigest() for m in msgs]
    for (pk, sig), seed, m in zip(out["signed"], seeds * 2, msgs, strict=True):
        key = Ed25519PrivateKey.from_private_bytes(seed)
        assert pk == _raw_public(key).hex()
        Ed25519PublicKey.from_public_bytes(bytes.fromhex(pk)).verify(bytes.fromhex(sig), m)  # raises if not
        assert sig == key.sign(m).hex()  # deterministic: the same bytes as OpenSSL's
    assert out["checked"] == [True, False] * len(msgs)


def test_a_board_signature_with_one_bit_changed_fails_on_the_host():
    seed, msg = secrets.token_bytes(32), b"receipts batch"
    out = run_firmware_json(SCRIPT, {"sha": [], "verify": [], "sign": [[seed.hex(), msg.hex()]]})
    pk, sig = (bytes.fromhex(x) for x in out["signed"][0])
    bad = bytearray(sig)
    bad[40] ^= 0x10
    try:
        Ed25519PublicKey.from_public_bytes(pk).verify(bytes(bad), msg)
    except InvalidSignature:
        return
    raise AssertionError("a changed signature verified")
