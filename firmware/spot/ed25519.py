# Ed25519 (RFC 8032, section 5.1) in Python for MicroPython: the board's identity key signs its
# receipt batches with it. Field elements are Python ints modulo p = 2^255 - 19 (heap objects on
# every port), points are kept in extended coordinates (X, Y, Z, T) with x = X/Z, y = Y/Z,
# x*y = T/Z, and a scalar multiplication is 255 doublings and additions: a signature takes one, a
# verification two, so a board signs a batch now and then, never a packet (docs/proofs.md has the
# measured figures). Not constant-time: the timing of a signature depends on the secret scalar, which
# matters to an attacker who can time many signatures closely; a board signs a few batches an hour.
from spot.sha512 import sha512

P = 2**255 - 19
L = 2**252 + 27742317777372353535851937790883648493  # the order of the base point
D = -121665 * pow(121666, P - 2, P) % P
_D2 = 2 * D % P
_SQRT_M1 = pow(2, (P - 1) // 4, P)


def _inv(x):
    return pow(x, P - 2, P)


def _recover_x(y, sign):
    """x from y and the sign bit (section 5.1.3), or None for a y that is on no point."""
    if y >= P:
        return None
    x2 = (y * y - 1) * _inv(D * y * y + 1) % P
    if x2 == 0:
        return None if sign else 0
    x = pow(x2, (P + 3) // 8, P)
    if (x * x - x2) % P:
        x = x * _SQRT_M1 % P
        if (x * x - x2) % P:
            return None
    if x & 1 != sign:
        x = P - x
    return x


_BY = 4 * _inv(5) % P
_BX = _recover_x(_BY, 0)
B = (_BX, _BY, 1, _BX * _BY % P)
_ZERO = (0, 1, 1, 0)


def _add(p, q):
    x1, y1, z1, t1 = p
    x2, y2, z2, t2 = q
    a = (y1 - x1) * (y2 - x2) % P
    b = (y1 + x1) * (y2 + x2) % P
    c = t1 * _D2 * t2 % P
    d = 2 * z1 * z2 % P
    e, f, g, h = b - a, d - c, d + c, b + a
    return (e * f % P, g * h % P, f * g % P, e * h % P)


def _double(p):
    x1, y1, z1, _ = p
    a = x1 * x1 % P
    b = y1 * y1 % P
    c = 2 * z1 * z1 % P
    h = a + b
    e = h - (x1 + y1) * (x1 + y1) % P
    g = a - b
    f = c + g
    return (e * f % P, g * h % P, f * g % P, e * h % P)


def _steps(s, p, every):
    """s * p a bit at a time: yields None after every `every` bits (0: never), the point last."""
    q = _ZERO
    top = 254  # scalars here are below 2^255 (MicroPython's int has no bit_length)
    while top > 0 and not (s >> top) & 1:
        top -= 1
    for i in range(top, -1, -1):
        q = _double(q)
        if (s >> i) & 1:
            q = _add(q, p)
        if every and not i % every:
            yield None
    yield q


def _mul(s, p):
    for q in _steps(s, p, 0):
        return q


def _equal(p, q):
    x1, y1, z1, _ = p
    x2, y2, z2, _ = q
    return (x1 * z2 - x2 * z1) % P == 0 and (y1 * z2 - y2 * z1) % P == 0


def encode(p):
    x, y, z, _ = p
    zi = _inv(z)
    x, y = x * zi % P, y * zi % P
    return (y | (x & 1) << 255).to_bytes(32, "little")


def decode(s):
    """The point of a 32-byte encoding, or None when it encodes none."""
    if len(s) != 32:
        return None
    y = int.from_bytes(s, "little")
    sign = y >> 255
    y &= (1 << 255) - 1
    x = _recover_x(y, sign)
    if x is None:
        return None
    return (x, y, 1, x * y % P)


def _h(*parts):
    h = sha512()
    for p in parts:
        h.update(p)
    return int.from_bytes(h.digest(), "little")


def _expand(seed):
    if len(seed) != 32:
        raise ValueError("an Ed25519 private key is 32 bytes")
    h = sha512(seed).digest()
    a = int.from_bytes(h[:32], "little")
    a = (a & ((1 << 254) - 8)) | (1 << 254)
    return a, h[32:]


def public_key(seed):
    """The 32-byte public key of a 32-byte private key (seed)."""
    return encode(_mul(_expand(seed)[0], B))


def sign(seed, msg, pub=None):
    """The 64-byte signature of msg; pub (the public key) spares a scalar multiplication."""
    if pub is None:
        pub = public_key(seed)
    for sig in signing(seed, msg, pub, 0):
        if sig is not None:
            return sig


def signing(seed, msg, pub, every):
    """sign() in slices: yields None after every `every` bits of its scalar multiplication (so a
    caller can serve the radio between them), the signature last."""
    a, prefix = _expand(seed)
    r = _h(prefix, msg) % L
    for q in _steps(r, B, every):
        if q is None:
            yield None
    rs = encode(q)
    k = _h(rs, pub, msg) % L
    yield rs + ((r + k * a) % L).to_bytes(32, "little")


def verify(pub, msg, sig):
    """True when sig is a valid signature of msg by pub (the cofactorless check of section 5.1.7)."""
    if len(sig) != 64:
        return False
    a = decode(bytes(pub))
    r = decode(bytes(sig[:32]))
    s = int.from_bytes(sig[32:], "little")
    if a is None or r is None or s >= L:
        return False
    k = _h(sig[:32], pub, msg) % L
    return _equal(_mul(s, B), _add(r, _mul(k, a)))
