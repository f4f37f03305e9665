"""Semtech UDP protocol v2 conformance from the outside: datagrams built by the firmware under
MicroPython are decoded by the host's strict server-side decoder (every field name and type, the
header bytes), and the decoder refuses what breaks PROTOCOL.TXT."""

from __future__ import annotations

import base64
import json

import pytest
from loraspot.listen import semtech as st

from tests.conftest import run_micropython

SCRIPT = r"""
from binascii import hexlify
from spot.hotspot import semtech as s
from spot.radio.base import Packet

eui = s.gateway_eui("024c53115089")
w = s.Writer()
s.push_start(w, 0x1234, eui)
for i, (length, sf, bw, cr, rssi, snr, freq) in enumerate(((23, 7, 125000, 5, -40, 38, 868100000),
                                                       (0, 12, 125000, 8, -137, -80, 867900000),
                                                       (255, 9, 500000, 6, -90, 0, 923300000))):
    p = Packet()
    for k in range(length):
        p.buf[k] = (k * 7 + i) & 0xFF
    p.length, p.sf, p.bw, p.cr, p.rssi, p.snr_x4, p.freq = length, sf, bw, cr, rssi, snr, freq
    if i:
        w.byte(0x2C)
    s.rxpk(w, p, 0xFFFF if i == 2 else 0, 0xFFFF if i == 2 else 1000 + i, stat=-1 if i == 1 else 1,
           utc=(2026, 11, 22, 10, 0, i, 999999) if i != 1 else None)
n = s.push_end(w)
print(hexlify(w.buf[:n]).decode())
c = {"rxnb": 3, "rxok": 2, "rxfw": 2, "ackr": 50.0, "dwnb": 0, "txnb": 0}
print(hexlify(s.stat_datagram(7, eui, c)).decode())
print(hexlify(s.stat_datagram(8, eui, c, (2026, 11, 22, 10, 0, 5, 0), (52.52, 13.405, 34.0))).decode())
buf = bytearray(64)
for err in (s.NONE, s.TOO_LATE, s.TOO_EARLY, s.COLLISION_PACKET, s.TX_FREQ, s.TX_POWER):
    print(hexlify(buf[: s.tx_ack(buf, 0xBEEF, eui, err)]).decode())
"""


@pytest.fixture(scope="module")
def datagrams(tmp_path_factory):
    script = tmp_path_factory.mktemp("semtech") / "build.py"
    script.write_text(SCRIPT)
    proc = run_micropython(script)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return [bytes.fromhex(line) for line in proc.stdout.split()]


def test_push_data_from_the_firmware_conforms(datagrams):
    up = st.decode(datagrams[0])
    assert datagrams[0][:4] == b"\x02\x12\x34\x00" and up.eui == "024c53fffe115089"
    assert up.ident == st.PUSH_DATA and up.token == 0x1234 and up.stat is None
    a, b, c = up.rxpk
    assert a["time"] == "2026-11-22T10:00:00.999999Z" and "time" not in b
    assert (a["tmst"], b["tmst"], c["tmst"]) == (1000, 1001, 0xFFFFFFFF)
    assert (a["freq"], b["freq"], c["freq"]) == (868.1, 867.9, 923.3)
    assert (a["datr"], b["datr"], c["datr"]) == ("SF7BW125", "SF12BW125", "SF9BW500")
    assert (a["codr"], b["codr"], c["codr"]) == ("4/5", "4/8", "4/6")
    assert (a["rssi"], a["lsnr"], b["lsnr"], c["lsnr"]) == (-40, 9.5, -20.0, 0.0)
    assert (a["stat"], b["stat"]) == (1, -1)
    assert base64.b64decode(c["data"]) == bytes((k * 7 + 2) & 0xFF for k in range(255))
    assert (b["size"], b["data"]) == (0, "")


def test_stat_from_the_firmware_conforms(datagrams):
    plain, timed = st.decode(datagrams[1]), st.decode(datagrams[2])
    assert plain.rxpk == [] and set(plain.stat) == {"rxnb", "rxok", "rxfw", "ackr", "dwnb", "txnb"}
    assert timed.stat["time"] == "2026-11-22 10:00:05 GMT"
    assert (timed.stat["lati"], timed.stat["long"], timed.stat["alti"]) == (52.52, 13.405, 34)


def test_tx_ack_from_the_firmware_conforms(datagrams):
    errors = []
    for d in datagrams[3:]:
        up = st.decode(d)
        assert d[:4] == b"\x02\xbe\xef\x05" and up.ident == st.TX_ACK and up.eui == "024c53fffe115089"
        errors.append(up.body["txpk_ack"]["error"])
    assert errors == ["NONE", "TOO_LATE", "TOO_EARLY", "COLLISION_PACKET", "TX_FREQ", "TX_POWER"]


GOOD_RXPK = {"tmst": 1, "freq": 868.1, "chan": 0, "rfch": 0, "stat": 1, "modu": "LORA", "datr": "SF7BW125",
             "codr": "4/5", "rssi": -40, "lsnr": 9.5, "size": 1, "data": "QA=="}
HEAD = b"\x02\x00\x01\x00" + bytes(8)


@pytest.mark.parametrize(("datagram", "message"), [
    (b"\x02\x00", "at least 4"),
    (b"\x01\x00\x01\x00" + bytes(8), "version 1"),
    (b"\x02\x00\x01\x01", "not sent by a gateway"),
    (b"\x02\x00\x01\x00" + bytes(4), "at least 12"),
    (HEAD + b'{"rxpk":[', "JSON"),
    (HEAD + b"42", "not an object"),
    (HEAD + b'{"rxpk":[]}', "non-empty"),
    (HEAD + json.dumps({"rxpk": [dict(GOOD_RXPK, tmst="1")]}).encode(), "'tmst' should be int"),
    (HEAD + json.dumps({"rxpk": [dict(GOOD_RXPK, extra=1)]}).encode(), "does not define"),
    (HEAD + json.dumps({"rxpk": [{k: v for k, v in GOOD_RXPK.items() if k != "lsnr"}]}).encode(), "lacks 'lsnr'"),
    (HEAD + json.dumps({"rxpk": [dict(GOOD_RXPK, size=2)]}).encode(), "'size' 2"),
    (HEAD + json.dumps({"rxpk": [dict(GOOD_RXPK, data="QA")]}).encode(), "padded base64"),
    (HEAD + json.dumps({"rxpk": [dict(GOOD_RXPK, time="2026-11-22 10:00:00")]}).encode(), "ISO 8601"),
    (HEAD + json.dumps({"stat": {"rxnb": 1}}).encode(), "lacks"),
    (b"\x02\x00\x01\x02" + bytes(8) + b"x", "nothing after"),
    (b"\x02\x00\x01\x05" + bytes(8) + b'{"txpk_ack":{"error":"OOPS"}}', "TX_ACK JSON"),
])
def test_decoder_refuses_what_breaks_the_protocol(datagram, message):
    with pytest.raises(st.ProtocolError, match=message):
        st.decode(datagram)


def test_acks_and_pull_resp():
    up = st.decode(b"\x02\xab\xcd\x02" + bytes.fromhex("024c53fffe115089"))
    assert up.ident == st.PULL_DATA and st.ack(up) == b"\x02\xab\xcd\x04"
    assert st.ack(st.decode(HEAD + json.dumps({"rxpk": [GOOD_RXPK]}).encode())) == b"\x02\x00\x01\x01"
    assert st.decode(b"\x02\x00\x09\x05" + bytes(8)).body is None  # TX_ACK without JSON: no error
    resp = st.pull_resp(0x0102, {"imme": True})
    assert resp[:4] == b"\x02\x01\x02\x03" and json.loads(resp[4:]) == {"txpk": {"imme": True}}


def test_every_downlink_refusal_is_a_name_chirpstack_knows():
    """The TX_ACK errors (UDP) and event/ack statuses (MQTT) the firmware can answer are names of
    chirpstack-api's TxAckStatus: the Gateway Bridge maps txpk_ack.error by that name, and ChirpStack
    reads the ack's status as it."""
    from chirpstack_api.gw import gw_pb2

    from tests.conftest import run_firmware_json

    names = run_firmware_json("""
import json
from spot.hotspot import semtech as s
print(json.dumps([s.NONE, s.TOO_LATE, s.TOO_EARLY, s.COLLISION_PACKET, s.TX_FREQ, s.TX_POWER, s.GPS_UNLOCKED,
                  s.DUTY_CYCLE_OVERFLOW]))
""", None)
    assert set(names) - {"NONE"} <= set(gw_pb2.TxAckStatus.keys()) and set(names) <= set(st.TX_ERRORS)
    assert {"GPS_UNLOCKED", "DUTY_CYCLE_OVERFLOW"} <= set(names)
