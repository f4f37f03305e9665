# SHA-512 (FIPS 180-4) in Python for MicroPython, whose hashlib has no SHA-512 (Ed25519 needs it:
# spot.ed25519). Words are Python ints: on a 32-bit port every word of 2^30 or more is a heap object,
# so this is for signing a batch now and then, never for a packet (docs/proofs.md has the figures).
# The constants are the first 64 bits of the fractional parts of the cube roots of the first 80
# primes (K) and of the square roots of the first 8 (H0), as the standard defines them (section
# 4.2.3 and 5.3.5); tests/host/test_ed25519.py derives them again by integer roots.
from micropython import const

_M = const(0xFFFFFFFFFFFFFFFF)

K = (
    0x428a2f98d728ae22, 0x7137449123ef65cd, 0xb5c0fbcfec4d3b2f, 0xe9b5dba58189dbbc,
    0x3956c25bf348b538, 0x59f111f1b605d019, 0x923f82a4af194f9b, 0xab1c5ed5da6d8118,
    0xd807aa98a3030242, 0x12835b0145706fbe, 0x243185be4ee4b28c, 0x550c7dc3d5ffb4e2,
    0x72be5d74f27b896f, 0x80deb1fe3b1696b1, 0x9bdc06a725c71235, 0xc19bf174cf692694,
    0xe49b69c19ef14ad2, 0xefbe4786384f25e3, 0x0fc19dc68b8cd5b5, 0x240ca1cc77ac9c65,
    0x2de92c6f592b0275, 0x4a7484aa6ea6e483, 0x5cb0a9dcbd41fbd4, 0x76f988da831153b5,
    0x983e5152ee66dfab, 0xa831c66d2db43210, 0xb00327c898fb213f, 0xbf597fc7beef0ee4,
    0xc6e00bf33da88fc2, 0xd5a79147930aa725, 0x06ca6351e003826f, 0x142929670a0e6e70,
    0x27b70a8546d22ffc, 0x2e1b21385c26c926, 0x4d2c6dfc5ac42aed, 0x53380d139d95b3df,
    0x650a73548baf63de, 0x766a0abb3c77b2a8, 0x81c2c92e47edaee6, 0x92722c851482353b,
    0xa2bfe8a14cf10364, 0xa81a664bbc423001, 0xc24b8b70d0f89791, 0xc76c51a30654be30,
    0xd192e819d6ef5218, 0xd69906245565a910, 0xf40e35855771202a, 0x106aa07032bbd1b8,
    0x19a4c116b8d2d0c8, 0x1e376c085141ab53, 0x2748774cdf8eeb99, 0x34b0bcb5e19b48a8,
    0x391c0cb3c5c95a63, 0x4ed8aa4ae3418acb, 0x5b9cca4f7763e373, 0x682e6ff3d6b2b8a3,
    0x748f82ee5defb2fc, 0x78a5636f43172f60, 0x84c87814a1f0ab72, 0x8cc702081a6439ec,
    0x90befffa23631e28, 0xa4506cebde82bde9, 0xbef9a3f7b2c67915, 0xc67178f2e372532b,
    0xca273eceea26619c, 0xd186b8c721c0c207, 0xeada7dd6cde0eb1e, 0xf57d4f7fee6ed178,
    0x06f067aa72176fba, 0x0a637dc5a2c898a6, 0x113f9804bef90dae, 0x1b710b35131c471b,
    0x28db77f523047d84, 0x32caab7b40c72493, 0x3c9ebe0a15c9bebc, 0x431d67c49c100d4c,
    0x4cc5d4becb3e42b6, 0x597f299cfc657e2a, 0x5fcb6fab3ad6faec, 0x6c44198c4a475817,
)
H0 = (
    0x6a09e667f3bcc908, 0xbb67ae8584caa73b, 0x3c6ef372fe94f82b, 0xa54ff53a5f1d36f1,
    0x510e527fade682d1, 0x9b05688c2b3e6c1f, 0x1f83d9abfb41bd6b, 0x5be0cd19137e2179,
)


def _compress(h, block, w):
    """h after one 128-byte block; w is a list of 80 the schedule is written into (made once per
    hash: a list grown here would need ever larger blocks of a fragmented heap)."""
    for t in range(16):
        w[t] = int.from_bytes(block[8 * t : 8 * t + 8], "big")
    for t in range(16, 80):
        x = w[t - 15]
        y = w[t - 2]
        s0 = ((x >> 1 | x << 63) ^ (x >> 8 | x << 56) ^ (x >> 7)) & _M
        s1 = ((y >> 19 | y << 45) ^ (y >> 61 | y << 3) ^ (y >> 6)) & _M
        w[t] = (w[t - 16] + s0 + w[t - 7] + s1) & _M
    a, b, c, d, e, f, g, hh = h
    for t in range(80):
        s1 = ((e >> 14 | e << 50) ^ (e >> 18 | e << 46) ^ (e >> 41 | e << 23)) & _M
        t1 = (hh + s1 + ((e & f) ^ (~e & g)) + K[t] + w[t]) & _M
        s0 = ((a >> 28 | a << 36) ^ (a >> 34 | a << 30) ^ (a >> 39 | a << 25)) & _M
        t2 = (s0 + ((a & b) ^ (a & c) ^ (b & c))) & _M
        hh, g, f, e, d, c, b, a = g, f, e, (d + t1) & _M, c, b, a, (t1 + t2) & _M
    return [(x + y) & _M for x, y in zip(h, (a, b, c, d, e, f, g, hh))]


class sha512:
    """hashlib's interface: update(data), digest() (the object can go on after a digest)."""

    digest_size = 64
    block_size = 128

    def __init__(self, data=b""):
        self._h = list(H0)
        self._w = [0] * 80
        self._buf = b""
        self._n = 0
        if data:
            self.update(data)

    def update(self, data):
        data = self._buf + bytes(data)
        self._n += len(data) - len(self._buf)
        full = len(data) & ~127
        h = self._h
        for i in range(0, full, 128):
            h = _compress(h, data[i : i + 128], self._w)
        self._h = h
        self._buf = data[full:]

    def digest(self):
        n = self._n
        tail = self._buf + b"\x80" + bytes((111 - n) % 128) + (n * 8).to_bytes(16, "big")
        h = self._h
        for i in range(0, len(tail), 128):
            h = _compress(h, tail[i : i + 128], self._w)
        return b"".join(x.to_bytes(8, "big") for x in h)

    def hexdigest(self):
        from binascii import hexlify

        return hexlify(self.digest()).decode()
