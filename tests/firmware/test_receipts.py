# The board's receipts codec (spot.receipts) against the host's (tests/vectors/receipts.json):
# records, the Merkle root of every prefix of a batch, the header and its signature by the board's
# Ed25519 code, and the batch hash the next batch names.
import json
from binascii import hexlify, unhexlify

from fwtest import eq
from spot import ed25519, receipts

VECTORS = "../vectors/receipts.json"


def _v():
    with open(VECTORS) as f:
        return json.load(f)


def test_records_and_roots():
    v = _v()
    tree = receipts.Tree()
    eq(hexlify(tree.root()).decode(), v["roots"][0], "empty tree")
    for n, c in enumerate(v["records"], 1):
        rec = receipts.record(unhexlify(c["phy"]), c["tmst"], c["time_ms"], c["freq"], c["sf"], c["rssi"], c["snr"])
        eq(hexlify(rec).decode(), c["record"], "record %d" % n)
        tree.add(rec)
        eq(tree.count, n)
        eq(hexlify(tree.root()).decode(), v["roots"][n], "root of %d records" % n)


def test_header_signature_and_hash():
    v = _v()
    h = v["header"]
    head = receipts.header(unhexlify(h["gateway_eui"]), h["seq"], h["start_ms"], h["end_ms"], h["count"],
                           unhexlify(h["root"]), unhexlify(h["prev"]))
    eq(hexlify(head).decode(), h["bytes"], "header")
    sig = ed25519.sign(unhexlify(v["secret"]), head)
    eq(hexlify(sig).decode(), v["signature"], "signature")
    eq(hexlify(receipts.batch_hash(head, sig)).decode(), v["batch_hash"], "batch hash")
