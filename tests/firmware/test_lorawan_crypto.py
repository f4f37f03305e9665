# LoRaWAN crypto in the firmware against tests/vectors/lorawan.json and RFC 4493's CMAC examples.
import json
from binascii import hexlify, unhexlify

import cryptolib
from fwtest import eq, raises
from spot.lorawan import crypto, join

VECTORS = "../vectors/lorawan.json"


def _v():
    with open(VECTORS) as f:
        return json.load(f)


def h(s):
    return unhexlify(s)


def test_cmac_rfc4493_examples():
    k = crypto.Key(h("2b7e151628aed2a6abf7158809cf4f3c"))
    eq(hexlify(k.k1), b"fbeed618357133667c85e08f7236a8de", "K1")
    eq(hexlify(k.k2), b"f7ddac306ae266ccf90bc11ee46d513b", "K2")
    msg = h("6bc1bee22e409f96e93d7e117393172aae2d8a571e03ac9c9eb76fac45af8e5130c81c46a35ce411")
    eq(hexlify(k.cmac(None, b"")), b"bb1d6929e95937287fa37d129b756746", "empty")
    eq(hexlify(k.cmac(None, msg[:16])), b"070a16b46b4d4144f79bdd9dd04a287c", "16 bytes")
    eq(hexlify(k.cmac(None, msg)), b"dfa66747de9ae63030ca32611497c827", "40 bytes")
    # the same message split into a 16-byte head and the rest
    eq(hexlify(k.cmac(msg[:16], msg[16:])), b"dfa66747de9ae63030ca32611497c827", "head + rest")


def test_data_frame_vectors():
    for c in _v()["data_frames"]:
        phy = h(c["phy"])
        devaddr = phy[1:5]
        eq(hexlify(bytes(reversed(devaddr))).upper(), c["devaddr"].encode())
        s = crypto.Session(h(c["nwkskey"]), h(c.get("appskey", c["nwkskey"])))
        d = crypto.UP if c["dir"] == "up" else crypto.DOWN
        mic = s.mic(phy[:-4], d, devaddr, c["fcnt"])
        eq(mic.to_bytes(4, "little"), h(c["mic"]), c["phy"])
        if "plaintext_ascii" in c:
            fopts = phy[5] & 0x0F
            start = 8 + fopts + 1
            buf = bytearray(phy)
            s.crypt(buf, start, len(phy) - 4, c["fport"], d, devaddr, c["fcnt"])
            eq(bytes(buf[start:-4]), c["plaintext_ascii"].encode())
            s.crypt(buf, start, len(phy) - 4, c["fport"], d, devaddr, c["fcnt"])
            eq(bytes(buf), phy, "encrypting the plaintext gives the wire bytes back")


def test_join_vectors():
    j = _v()["join"]
    appkey = crypto.Key(h(j["appkey"]))
    req = h(j["join_request_phy"])
    eq(join.join_mic(appkey, req[:-4]).to_bytes(4, "little"), h(j["join_request_mic"]))
    plain = h(j["join_accept_plaintext_phy"])
    eq(join.join_mic(appkey, plain[:-4]).to_bytes(4, "little"), h(j["join_accept_mic"]))
    # the wire form is MHDR + AES-decrypt(rest); the device undoes it by encrypting
    dec = cryptolib.aes(h(j["appkey"]), 1)
    wire = plain[:1] + dec.decrypt(plain[1:])
    eq(bytes(join.decrypt_join_accept(appkey, wire)), plain)
    raises(ValueError, join.decrypt_join_accept, appkey, wire[:-1])
    kg = j["keygen"]
    nwk, app = join.derive(appkey, h(kg["appnonce_wire"] + kg["netid_wire"]), h(kg["devnonce_wire"]))
    eq((hexlify(nwk), hexlify(app)), (kg["nwkskey"].encode(), kg["appskey"].encode()))


def test_bad_key_length():
    raises(ValueError, crypto.Key, bytes(15))
