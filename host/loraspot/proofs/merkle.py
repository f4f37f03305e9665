"""The Merkle tree of a receipt batch: RFC 6962's (Certificate Transparency, section 2.1), with
SHA-256: a leaf is H(0x00 || record), a node H(0x01 || left || right), a tree of n > 1 leaves
splits at the largest power of two below n, the empty tree is H(""). The board computes the same
root (spot.receipts); an inclusion proof is RFC 6962's audit path."""

from __future__ import annotations

import hashlib


def leaf_hash(record: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + record).digest()


def _node(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def root(leaves: list[bytes]) -> bytes:
    """The tree head of these leaf hashes."""
    if not leaves:
        return hashlib.sha256(b"").digest()
    if len(leaves) == 1:
        return leaves[0]
    k = _split(len(leaves))
    return _node(root(leaves[:k]), root(leaves[k:]))


def audit_path(index: int, leaves: list[bytes]) -> list[bytes]:
    """The hashes that lead from leaf `index` to the root (RFC 6962, section 2.1.1)."""
    if not 0 <= index < len(leaves):
        raise IndexError(f"leaf {index} of a tree of {len(leaves)}")
    if len(leaves) == 1:
        return []
    k = _split(len(leaves))
    if index < k:
        return [*audit_path(index, leaves[:k]), root(leaves[k:])]
    return [*audit_path(index - k, leaves[k:]), root(leaves[:k])]


def root_from_path(index: int, size: int, leaf: bytes, path: list[bytes]) -> bytes | None:
    """The root that leaf `index` of a tree of `size` leaves and its audit path lead to (None when
    the path has the wrong length for that place in that tree)."""
    if not 0 <= index < size:
        return None

    def walk(i: int, n: int, p: list[bytes]) -> tuple[bytes, list[bytes]] | None:
        if n == 1:
            return leaf, p
        if not p:
            return None
        k = _split(n)
        sub = walk(i, k, p[:-1]) if i < k else walk(i - k, n - k, p[:-1])
        if sub is None:
            return None
        h, rest = sub
        return (_node(h, p[-1]) if i < k else _node(p[-1], h)), rest

    out = walk(index, size, list(path))
    if out is None or out[1]:
        return None
    return out[0]
