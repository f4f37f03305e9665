# SHA-512 and Ed25519 in the firmware (spot.sha512, spot.ed25519) against RFC 8032's and NIST's
# published vectors (tests/vectors/ed25519.json), under the unix port at the board's heap.
import gc
import json
from binascii import hexlify, unhexlify

from fwtest import eq
from spot import ed25519
from spot.sha512 import sha512

VECTORS = "../vectors/ed25519.json"


def _v():
    with open(VECTORS) as f:
        return json.load(f)


def test_sha512_published_examples():
    for c in _v()["sha512"]:
        eq(sha512(c["msg_ascii"].encode()).hexdigest(), c["digest"], c["msg_ascii"][:8])


def test_sha512_in_pieces_across_block_edges():
    msg = bytes(range(256)) * 3
    whole = sha512(msg).digest()
    for cut in (0, 1, 111, 112, 127, 128, 129, 255, 256, 700):
        h = sha512(msg[:cut])
        h.update(msg[cut:])
        eq(h.digest(), whole, "cut at %d" % cut)
    eq(len(whole), 64)


def test_rfc8032_vectors():
    for c in _v()["ed25519"]:
        sk, pk, msg, sig = (unhexlify(c[k]) for k in ("secret", "public", "message", "signature"))
        eq(hexlify(ed25519.public_key(sk)).decode(), c["public"], c["name"] + " public key")
        eq(hexlify(ed25519.sign(sk, msg)).decode(), c["signature"], c["name"] + " signature")
        eq(ed25519.sign(sk, msg, pk), sig, c["name"] + " signature with the public key given")
        eq(ed25519.verify(pk, msg, sig), True, c["name"] + " verifies")


def test_what_does_not_verify():
    c = _v()["ed25519"][2]
    sk, pk, msg, sig = (unhexlify(c[k]) for k in ("secret", "public", "message", "signature"))
    eq(ed25519.verify(pk, msg + b"\x00", sig), False, "another message")
    for i in (0, 31, 32, 63):  # a bit flipped in R, in S
        bad = bytearray(sig)
        bad[i] ^= 1
        eq(ed25519.verify(pk, msg, bytes(bad)), False, "signature byte %d changed" % i)
    other = ed25519.public_key(bytes(32))
    eq(ed25519.verify(other, msg, sig), False, "another key")
    eq(ed25519.verify(pk, msg, sig[:63]), False, "short signature")
    # S not reduced (S + L): the same point equation, refused as RFC 8032 requires (S < L)
    s = int.from_bytes(sig[32:], "little") + ed25519.L
    eq(ed25519.verify(pk, msg, sig[:32] + s.to_bytes(32, "little")), False, "S >= L")
    eq(ed25519.decode(b"\xff" * 32), None, "y >= p")
    try:
        ed25519.sign(bytes(31), msg)
        raise AssertionError("a 31-byte key was taken")
    except ValueError:
        pass


def test_signing_keeps_nothing_on_the_heap():
    sk = bytes(range(32))
    pk = ed25519.public_key(sk)

    def rounds(n):
        for i in range(n):
            msg = b"batch %d" % i
            if not ed25519.verify(pk, msg, ed25519.sign(sk, msg, pk)):
                raise AssertionError("round %d did not verify" % i)
        gc.collect()
        return gc.mem_free()

    rounds(2)  # warm-up: what the first calls leave for good (names, stack-held pointers)
    first = rounds(3)
    second = rounds(6)
    # the GC scans the stack conservatively: a stale pointer may hold one small block, never more
    if first - second > 128:
        raise AssertionError("%d bytes more kept after six more signatures" % (first - second))


def test_signing_in_slices_gives_the_same_signature():
    for c in _v()["ed25519"]:
        sk, pk, msg, sig = (unhexlify(c[k]) for k in ("secret", "public", "message", "signature"))
        for every in (1, 4, 16):
            pauses = 0
            out = None
            for out in ed25519.signing(sk, msg, pk, every):
                if out is None:
                    pauses += 1
            eq(out, sig, "%s in slices of %d bits" % (c["name"], every))
            # a pause after every `every` bits of a scalar of up to 253 bits (r is reduced mod L)
            if not 240 // every <= pauses <= 253 // every + 1:
                raise AssertionError("%d pauses in slices of %d bits" % (pauses, every))
