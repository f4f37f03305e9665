# Receipts (docs/proofs.md): what a hotspot heard, as records, the Merkle root of a batch of them,
# and the batch header it signs with its identity key. The host's codec is loraspot.proofs.receipts
# (formats there); tests/vectors/receipts.json holds vectors both pass. The tree is RFC 6962's,
# kept as the roots of its full subtrees (at most one per bit of the count): a batch of any size
# holds 32 bytes per bit, never a hash per record.
import hashlib
import struct

MAGIC = b"LSRB"
VERSION = 1
_RECORD = ">32sIQIBhh"
_HEADER = ">4sB8sIQQI32s32s"


def _h(data):
    return hashlib.sha256(data).digest()


def record(phy, tmst, time_ms, freq, sf, rssi, snr):
    """The 53-byte record of a frame heard (rssi in dBm, snr in dB)."""
    return struct.pack(_RECORD, _h(phy), tmst & 0xFFFFFFFF, time_ms, freq, sf, round(rssi), round(snr * 10))


class Tree:
    """The Merkle root of records added one by one."""

    def __init__(self):
        self.count = 0
        self._roots = []  # (size, hash) of full subtrees, largest first

    def add(self, rec):
        h = _h(b"\x00" + rec)
        size = 1
        roots = self._roots
        while roots and roots[-1][0] == size:
            h = _h(b"\x01" + roots.pop()[1] + h)
            size *= 2
        roots.append((size, h))
        self.count += 1

    def root(self):
        roots = self._roots
        if not roots:
            return _h(b"")
        h = roots[-1][1]
        for i in range(len(roots) - 2, -1, -1):
            h = _h(b"\x01" + roots[i][1] + h)
        return h


def header(gateway_eui, seq, start_ms, end_ms, count, root, prev):
    return struct.pack(_HEADER, MAGIC, VERSION, gateway_eui, seq, start_ms, end_ms, count, root, prev)


def batch_hash(head, signature):
    """What the next batch names as its previous one."""
    return _h(head + signature)
