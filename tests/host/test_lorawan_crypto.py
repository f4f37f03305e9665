"""The host twin's LoRaWAN crypto against the shared vectors, and against the firmware's crypto
(run under MicroPython) on random keys, addresses, counters and payloads."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st
from loraspot.lorawan import crypto

from tests.conftest import ROOT, run_firmware_json

VECTORS = json.loads((ROOT / "tests" / "vectors" / "lorawan.json").read_text())


def test_data_frame_vectors():
    for c in VECTORS["data_frames"]:
        phy = bytes.fromhex(c["phy"])
        devaddr = phy[1:5]
        d = crypto.UP if c["dir"] == "up" else crypto.DOWN
        assert crypto.frame_mic(bytes.fromhex(c["nwkskey"]), phy[:-4], d, devaddr, c["fcnt"]) == bytes.fromhex(c["mic"])
        if "plaintext_ascii" in c:
            start = 8 + (phy[5] & 0x0F) + 1
            plain = crypto.crypt_payload(bytes.fromhex(c["appskey"]), phy[start:-4], d, devaddr, c["fcnt"])
            assert plain.decode() == c["plaintext_ascii"]


def test_join_vectors():
    j = VECTORS["join"]
    key = bytes.fromhex(j["appkey"])
    req = bytes.fromhex(j["join_request_phy"])
    assert crypto.join_mic(key, req[:-4]) == bytes.fromhex(j["join_request_mic"])
    plain = bytes.fromhex(j["join_accept_plaintext_phy"])
    assert crypto.join_mic(key, plain[:-4]) == bytes.fromhex(j["join_accept_mic"])
    assert crypto.decrypt_join_accept(key, crypto.encrypt_join_accept(key, plain)) == plain
    kg = j["keygen"]
    nonce_net = bytes.fromhex(kg["appnonce_wire"] + kg["netid_wire"])
    nwk, app = crypto.derive(key, nonce_net, bytes.fromhex(kg["devnonce_wire"]))
    assert (nwk.hex(), app.hex()) == (kg["nwkskey"], kg["appskey"])


CASE = st.fixed_dictionaries({
    "nwk": st.binary(min_size=16, max_size=16), "app": st.binary(min_size=16, max_size=16),
    "devaddr": st.binary(min_size=4, max_size=4), "fcnt": st.integers(0, 2**32 - 1),
    "dir": st.integers(0, 1), "fport": st.integers(0, 223), "msg": st.binary(min_size=0, max_size=64),
    "payload": st.binary(min_size=0, max_size=80),
})


def _firmware(cases: list[dict]) -> list[dict]:
    script = ("import json, sys\nfrom binascii import hexlify, unhexlify\nfrom spot.lorawan import crypto\n"
              "out = []\n"
              "for c in json.loads(sys.stdin.read()):\n"
              "    s = crypto.Session(unhexlify(c['nwk']), unhexlify(c['app']))\n"
              "    da = unhexlify(c['devaddr'])\n"
              "    mic = s.mic(unhexlify(c['msg']), c['dir'], da, c['fcnt'])\n"
              "    buf = bytearray(unhexlify(c['payload']))\n"
              "    s.crypt(buf, 0, len(buf), c['fport'], c['dir'], da, c['fcnt'])\n"
              "    out.append({'mic': mic, 'enc': hexlify(buf).decode()})\n"
              "print(json.dumps(out))\n")
    return run_firmware_json(script, cases)


@settings(max_examples=5, deadline=None)
@given(st.lists(CASE, min_size=20, max_size=20))
def test_firmware_and_host_agree_on_random_frames(cases):
    wire = [{k: (v.hex() if isinstance(v, bytes) else v) for k, v in c.items()} for c in cases]
    got = _firmware(wire)
    for c, g in zip(cases, got, strict=True):
        assert g["mic"].to_bytes(4, "little") == crypto.frame_mic(c["nwk"], c["msg"], c["dir"], c["devaddr"], c["fcnt"])
        key = c["nwk"] if c["fport"] == 0 else c["app"]
        assert bytes.fromhex(g["enc"]) == crypto.crypt_payload(key, c["payload"], c["dir"], c["devaddr"], c["fcnt"])


UPLINK = st.fixed_dictionaries({
    "nwk": st.binary(min_size=16, max_size=16), "app": st.binary(min_size=16, max_size=16),
    "devaddr": st.binary(min_size=4, max_size=4), "fcnt": st.integers(0, 2**32 - 1),
    "fport": st.integers(1, 223), "payload": st.binary(min_size=0, max_size=51),
    "fopts": st.binary(min_size=0, max_size=15), "confirmed": st.booleans(), "adr": st.booleans(),
    "ack": st.booleans(),
})


def _firmware_uplinks(cases: list[dict]) -> list[str]:
    script = ("import json, sys\nfrom binascii import hexlify, unhexlify\nfrom spot.lorawan import crypto, frame\n"
              "out = []\nbuf = bytearray(255)\n"
              "for c in json.loads(sys.stdin.read()):\n"
              "    s = crypto.Session(unhexlify(c['nwk']), unhexlify(c['app']))\n"
              "    n = frame.build_uplink(buf, s, unhexlify(c['devaddr']), c['fcnt'], c['fport'],\n"
              "                           unhexlify(c['payload']), unhexlify(c['fopts']), c['confirmed'],\n"
              "                           c['adr'], c['ack'])\n"
              "    out.append(hexlify(buf[:n]).decode())\n"
              "print(json.dumps(out))\n")
    return run_firmware_json(script, cases)


@settings(max_examples=5, deadline=None)
@given(st.lists(UPLINK, min_size=20, max_size=20))
def test_firmware_uplinks_decode_and_verify_in_the_host_twin(cases):
    from loraspot.lorawan import frame

    wire = [{k: (v.hex() if isinstance(v, bytes) else v) for k, v in c.items()} for c in cases]
    for c, phy_hex in zip(cases, _firmware_uplinks(wire), strict=True):
        phy = bytes.fromhex(phy_hex)
        f = frame.decode(phy, c["nwk"], c["app"], fcnt=c["fcnt"])
        assert f.mic_ok and f.uplink
        assert (f.fport, f.payload, f.fopts, f.fcnt16) == (c["fport"], c["payload"], c["fopts"], c["fcnt"] & 0xFFFF)
        mtype = "ConfirmedDataUp" if c["confirmed"] else "UnconfirmedDataUp"
        assert (f.adr, f.ack, f.mtype) == (c["adr"], c["ack"], mtype)
        assert phy == frame.build(c["nwk"], c["app"], c["devaddr"], c["fcnt"], uplink=True, fport=c["fport"],
                                   payload=c["payload"], fopts=c["fopts"], confirmed=c["confirmed"], adr=c["adr"],
                                   ack=c["ack"])


DOWNLINK = st.fixed_dictionaries({
    "nwk": st.binary(min_size=16, max_size=16), "app": st.binary(min_size=16, max_size=16),
    "devaddr": st.binary(min_size=4, max_size=4), "fcnt": st.integers(1, 2**32 - 1),
    "fport": st.one_of(st.none(), st.integers(1, 223)), "payload": st.binary(min_size=0, max_size=51),
    "fopts": st.binary(min_size=0, max_size=15), "confirmed": st.booleans(), "ack": st.booleans(),
    "fpending": st.booleans(),
})


@settings(max_examples=5, deadline=None)
@given(st.lists(DOWNLINK, min_size=20, max_size=20))
def test_host_downlinks_parse_in_the_firmware(cases):
    from loraspot.lorawan import frame

    wire = []
    for c in cases:
        phy = frame.build(c["nwk"], c["app"], c["devaddr"], c["fcnt"], uplink=False, fport=c["fport"],
                           payload=c["payload"] if c["fport"] is not None else b"", fopts=c["fopts"],
                           confirmed=c["confirmed"], ack=c["ack"], bit4=c["fpending"])
        wire.append({"nwk": c["nwk"].hex(), "app": c["app"].hex(), "devaddr": c["devaddr"].hex(), "phy": phy.hex(),
                     "last": c["fcnt"] - 1})
    script = ("import json, sys\nfrom binascii import hexlify, unhexlify\nfrom spot.lorawan import crypto, frame\n"
              "out = []\n"
              "for c in json.loads(sys.stdin.read()):\n"
              "    s = crypto.Session(unhexlify(c['nwk']), unhexlify(c['app']))\n"
              "    buf = bytearray(unhexlify(c['phy']))\n"
              "    d = frame.parse_downlink(buf, len(buf), s, unhexlify(c['devaddr']), c['last'])\n"
              "    out.append([d.fcnt, d.fport, hexlify(d.payload).decode(), hexlify(d.fopts).decode(), d.confirmed,\n"
              "                d.ack, d.fpending])\n"
              "print(json.dumps(out))\n")
    for c, got in zip(cases, run_firmware_json(script, wire), strict=True):
        payload = c["payload"] if c["fport"] is not None else b""
        assert got == [c["fcnt"], c["fport"], payload.hex(), c["fopts"].hex(), c["confirmed"], c["ack"],
                       c["fpending"]]
