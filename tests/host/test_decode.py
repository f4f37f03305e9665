"""`loraspot decode`: every field, MIC verification, decryption, join-accept keys; bad frames."""

from __future__ import annotations

import base64
import json

from loraspot.cli.main import main
from loraspot.lorawan import crypto, frame
from loraspot.lorawan.decode import decode, mac_commands

from tests.conftest import ROOT

V = json.loads((ROOT / "tests" / "vectors" / "lorawan.json").read_text())


def run(capsys, *args: str) -> tuple[int, dict | str]:
    code = main(["--json", "decode", *args])
    out, err = capsys.readouterr()
    return code, (json.loads(out) if code == 0 else err)


def test_data_frame_fields_and_payload(capsys):
    c = V["data_frames"][1]
    code, d = run(capsys, c["phy"], "--nwkskey", c["nwkskey"], "--appskey", c["appskey"])
    assert code == 0
    assert d["mhdr"]["mtype"] == "UnconfirmedDataUp" and d["dev_addr"] == c["devaddr"]
    assert d["f_cnt"] == c["fcnt"] and d["f_port"] == 1 and d["mic_ok"] is True
    assert bytes.fromhex(d["payload"]).decode() == c["plaintext_ascii"]
    # base64 input, no keys: fields but no verdicts
    code, d2 = run(capsys, base64.b64encode(bytes.fromhex(c["phy"])).decode())
    assert code == 0 and "mic_ok" not in d2 and "payload" not in d2 and d2["frm_payload"] == d["frm_payload"]
    # a wrong key says so
    code, d3 = run(capsys, c["phy"], "--nwkskey", "00" * 16)
    assert d3["mic_ok"] is False


def test_downlink_ack_and_mac_commands(capsys):
    c = V["data_frames"][3]
    code, d = run(capsys, c["phy"], "--nwkskey", c["nwkskey"])
    assert d["mhdr"]["mtype"] == "UnconfirmedDataDown" and d["fctrl"]["ack"] is True and d["mic_ok"]
    key = bytes.fromhex(c["nwkskey"])
    phy = frame.build(key, key, bytes.fromhex("f17dbe49"), 7, uplink=False, fopts=bytes.fromhex("0307ff0001" + "06"))
    code, d = run(capsys, phy.hex(), "--nwkskey", c["nwkskey"])
    assert code == 0
    assert [m["command"] for m in d["mac_commands"]] == ["LinkADRReq", "DevStatusReq"]
    # MAC commands on FPort 0 are encrypted with the NwkSKey
    phy = frame.build(key, key, bytes.fromhex("f17dbe49"), 8, uplink=True, fport=0, payload=bytes.fromhex("0602ff"))
    code, d = run(capsys, phy.hex(), "--nwkskey", c["nwkskey"])
    assert code == 0
    assert d["mac_commands"] == [{"cid": 6, "command": "DevStatusAns", "payload": "02ff"}]


def test_join_request_and_accept_with_session_keys(capsys):
    j = V["join"]
    code, d = run(capsys, j["join_request_phy"], "--appkey", j["appkey"])
    # DevNonce in hex, as network servers show it and as --devnonce takes it back
    assert d["mic_ok"] is True and d["mhdr"]["mtype"] == "JoinRequest" and d["dev_nonce"] == "8904"
    code, _ = run(capsys, "20" + "00" * 16, "--appkey", j["appkey"], "--devnonce", d["dev_nonce"])
    assert code == 0  # what decode shows, --devnonce takes
    key = bytes.fromhex(j["appkey"])
    wire = crypto.encrypt_join_accept(key, bytes.fromhex(j["join_accept_plaintext_phy"]))
    code, d = run(capsys, wire.hex())
    assert code == 0 and "give --appkey" in d["note"]
    nonce = int.from_bytes(bytes.fromhex(j["keygen"]["devnonce_wire"]), "little")
    code, d = run(capsys, wire.hex(), "--appkey", j["appkey"], "--devnonce", f"{nonce:04X}")
    assert d["mic_ok"] is True and d["app_nonce"] == "376338" and d["net_id"] == "AABBCC"
    assert d["session_keys"] == {"nwk_s_key": j["keygen"]["nwkskey"], "app_s_key": j["keygen"]["appskey"]}


def test_bad_frames_are_clear_errors(capsys):
    for bad in ("zz", "", "40F17DBE49", "40F17DBE490F0300012A3518AF", "20" + "00" * 15):
        code, err = run(capsys, bad) if bad else (main(["decode", ""]), capsys.readouterr().err)
        assert code == 2, bad
        assert "Traceback" not in err
    code, err = run(capsys, V["join"]["join_request_phy"], "--appkey", "abcd")
    assert code == 2 and "16 bytes" in err


def test_truncated_and_unknown_mac_commands():
    assert mac_commands(bytes.fromhex("0307ff00"), uplink=False)[0]["error"].startswith("truncated")
    assert "unknown" in mac_commands(bytes.fromhex("02" + "ee01"), uplink=True)[1]["error"]
    assert decode(bytes.fromhex("e0aabb"))["proprietary"] == "aabb"


def test_lpp_payload_decoded(capsys):
    nwk, app = bytes(range(16)), bytes(range(16, 32))
    vec = json.loads((ROOT / "tests" / "vectors" / "lpp.json").read_text())["examples"][0]
    phy = frame.build(nwk, app, bytes.fromhex("04030201"), 7, uplink=True, fport=2, payload=bytes.fromhex(vec["hex"]))
    code, d = run(capsys, phy.hex(), "--nwkskey", nwk.hex(), "--appskey", app.hex(), "--lpp")
    assert code == 0
    assert [(v["channel"], v["name"], v["value"], v["unit"]) for v in d["lpp"]] == [
        (3, "temperature", 27.2, "°C"), (5, "temperature", 25.5, "°C")]
    # without the AppSKey there is nothing to decode, and a payload that is not LPP is refused
    code, err = run(capsys, phy.hex(), "--lpp")
    assert code == 2 and "--appskey" in err
    bad = frame.build(nwk, app, bytes.fromhex("04030201"), 8, uplink=True, fport=2, payload=b"\x03\xfe\x00")
    code, err = run(capsys, bad.hex(), "--nwkskey", nwk.hex(), "--appskey", app.hex(), "--lpp")
    assert code == 2 and "unknown type 254" in err
