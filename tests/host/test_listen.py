"""`loraspot listen` without boards: a hotspot played by the test over UDP. Join-Requests answered
with a Join-Accept PULL_RESP at RX1 (tmst + 5 s, same channel, IQ inverted), data uplinks
decrypted and decoded, copies from two hotspots merged with the downlink through the better one,
bad datagrams counted; the keys come from a JSON or CSV file or the inventory."""

from __future__ import annotations

import base64
import json
import socket
import subprocess
import sys
import time

import pytest
from loraspot.listen import semtech as st
from loraspot.listen.server import Listener, ListenError, inventory_keys, load_keys
from loraspot.lorawan import crypto, frame, lpp
from loraspot.provision.inventory import Inventory

DEV = "70B3D57ED0001234"
KEY = bytes(range(16))


class Hotspot:
    def __init__(self, port: int, eui: bytes):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.settimeout(2)
        self.port, self.eui, self.token = port, eui, 0

    def send(self, ident: int, body: dict | None = None) -> None:
        self.token += 1
        data = bytes([2]) + self.token.to_bytes(2, "big") + bytes([ident]) + self.eui
        self.sock.sendto(data + (json.dumps(body).encode() if body is not None else b""), ("127.0.0.1", self.port))

    def recv(self) -> bytes:
        return self.sock.recv(4096)

    def rxpk(self, phy: bytes, tmst: int, lsnr: float = 7.5, rssi: int = -60) -> None:
        self.send(st.PUSH_DATA, {"rxpk": [{"tmst": tmst, "chan": 0, "rfch": 0, "freq": 868.1, "stat": 1,
                                            "modu": "LORA", "datr": "SF7BW125", "codr": "4/5", "rssi": rssi,
                                            "lsnr": lsnr, "size": len(phy), "data": base64.b64encode(phy).decode()}]})


def _join_request(nonce: int) -> bytes:
    body = b"\x00" + bytes(8) + bytes.fromhex(DEV)[::-1] + nonce.to_bytes(2, "little")
    return body + crypto.join_mic(KEY, body)


def test_join_uplink_dedup_and_bad_datagrams():
    got: list[dict] = []
    with Listener({DEV: KEY}, port=0, dedup_ms=100, on_frame=got.append) as ls:
        a, b = Hotspot(ls.address[1], bytes(range(8))), Hotspot(ls.address[1], bytes(range(1, 9)))
        for h in (a, b):
            h.send(st.PULL_DATA)
            assert h.recv()[3] == st.PULL_ACK
        a.rxpk(_join_request(1), 1000, lsnr=2.0)
        b.rxpk(_join_request(1), 5000, lsnr=9.0)  # the better copy
        assert a.recv()[3] == st.PUSH_ACK and b.recv()[3] == st.PUSH_ACK
        resp = b.recv()  # the downlink goes through b
        assert resp[3] == st.PULL_RESP
        txpk = json.loads(resp[4:])["txpk"]
        assert (txpk["tmst"], txpk["freq"], txpk["datr"], txpk["ipol"]) == (5000 + 5_000_000, 868.1, "SF7BW125", True)
        session = ls.js.sessions[next(iter(ls.js.sessions))]
        payload = lpp.encode([(1, 103, 21.5)])
        up = frame.build(session.nwkskey, session.appskey, session.devaddr, 0, uplink=True, fport=2,
                          payload=payload, confirmed=True)
        a.rxpk(up, 2_000_000)
        assert a.recv()[3] == st.PUSH_ACK
        ack = json.loads(a.recv()[4:])["txpk"]
        assert ack["tmst"] == 3_000_000
        for bad in (b"", b"\x02\x00", b"\x01\x00\x00\x00" + bytes(8), b"\x02\x00\x00\x00" + bytes(8) + b"{",
                    b"\x02\x00\x00\x00" + bytes(8) + b"42", b"\x02\x00\x00\x09" + bytes(8)):
            a.sock.sendto(bad, ("127.0.0.1", ls.address[1]))
        time.sleep(0.3)
    assert ls.counts["malformed"] == 6 and ls.counts["duplicates"] == 1
    join, uplink = got
    assert join["type"] == "join" and join["best"] == b.eui.hex().upper() and len(join["gateways"]) == 2
    assert uplink["type"] == "uplink" and uplink["confirmed"] and uplink["decoded"][0]["value"] == 21.5
    assert uplink["downlink"]["sent"] and uplink["phy"] == base64.b64encode(up).decode()


def test_a_join_without_a_way_back_says_so():
    """A hotspot that has not sent PULL_DATA yet (it started before this server) forwards a
    Join-Request: the join verifies, but the Join-Accept cannot go out, and the line says so."""
    from loraspot.cli.listen import _row

    got: list[dict] = []
    with Listener({DEV: KEY}, port=0, dedup_ms=10, on_frame=got.append) as ls:
        h = Hotspot(ls.address[1], bytes(range(8)))
        h.rxpk(_join_request(1), 1000)
        assert h.recv()[3] == st.PUSH_ACK
        end = time.monotonic() + 10
        while not got:
            assert time.monotonic() < end, "the frame was never handled"
            time.sleep(0.01)
        h.send(st.PULL_DATA)  # the path opens: the next Join-Request is answered
        assert h.recv()[3] == st.PULL_ACK
        h.rxpk(_join_request(2), 2000)
        assert h.recv()[3] == st.PUSH_ACK
        assert h.recv()[3] == st.PULL_RESP
    first, second = got
    assert first["type"] == "join" and "error" not in first and not first["downlink"]["sent"]
    assert _row(first)[-1] == "error: no downlink: the gateway has not sent PULL_DATA (no downlink path)"
    assert second["downlink"]["sent"] and "error" not in _row(second)[-1]


def _join_request_with(key: bytes, nonce: int) -> bytes:
    body = b"\x00" + bytes(8) + bytes.fromhex(DEV)[::-1] + nonce.to_bytes(2, "little")
    return body + crypto.join_mic(key, body)


def test_keys_are_read_again_when_a_join_does_not_verify():
    """A node provisioned after listen started joins; one provisioned again (a new AppKey) too."""
    store: dict[str, bytes] = {}
    got: list[dict] = []
    new_key = bytes(range(16, 32))
    with Listener({}, port=0, dedup_ms=10, on_frame=got.append, keys_source=lambda: dict(store),
                  keys_every_s=0) as ls:
        h = Hotspot(ls.address[1], bytes(range(8)))
        h.send(st.PULL_DATA)
        assert h.recv()[3] == st.PULL_ACK

        def join(key: bytes, nonce: int) -> dict:
            n = len(got)
            h.rxpk(_join_request_with(key, nonce), 1000 * nonce)
            assert h.recv()[3] == st.PUSH_ACK
            end = time.monotonic() + 10
            while len(got) == n:
                assert time.monotonic() < end, "the frame was never handled"
                h.sock.settimeout(0.05)
                try:
                    h.recv()  # a Join-Accept PULL_RESP, if any
                except TimeoutError:
                    pass
            h.sock.settimeout(2)
            return got[-1]

        assert join(KEY, 1)["error"] == f"unknown DevEUI {DEV}"
        store[DEV] = KEY  # provisioned now
        assert "error" not in join(KEY, 2) and ls.js.keys[DEV] == KEY
        store[DEV] = new_key  # provisioned again, with a new key
        assert "error" not in join(new_key, 3) and ls.js.keys[DEV] == new_key
        assert "error" in join(bytes(16), 4)  # a key nobody has: still refused


def test_keys_files_and_inventory(tmp_path, inventory):
    (tmp_path / "k.json").write_text(json.dumps({DEV.lower(): KEY.hex()}))
    (tmp_path / "k.csv").write_text(f"dev_eui,app_key\n{DEV},{KEY.hex()}\n")
    assert load_keys(tmp_path / "k.json") == load_keys(tmp_path / "k.csv") == {DEV: KEY}
    (tmp_path / "bad.csv").write_text(f"{DEV},1234\n")
    with pytest.raises(ListenError, match="32-hex-digit AppKey"):
        load_keys(tmp_path / "bad.csv")
    with Inventory(inventory) as inv:
        inv.add_device(DEV)
        inv.set_secret(DEV, "app_key", KEY)
        inv.add_device("70B3D57ED0009999")  # no key yet: left out
    assert inventory_keys(inventory) == {DEV: KEY}


def test_port_in_use_is_a_clear_error():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        with pytest.raises(ListenError, match="cannot listen"):
            Listener({}, port=s.getsockname()[1])


def test_cli_json_lines(tmp_path):
    (tmp_path / "k.json").write_text(json.dumps({DEV: KEY.hex()}))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "loraspot.cli", "--json", "listen", "--udp-port", str(port),
                             "--keys", str(tmp_path / "k.json"), "--duration", "3", "--dedup-ms", "20"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        h = Hotspot(port, bytes(8))
        for _ in range(50):
            h.send(st.PULL_DATA)
            try:
                h.recv()
                break
            except TimeoutError:
                continue
        h.rxpk(_join_request(7), 123)
        out, err = proc.communicate(timeout=20)
    finally:
        proc.kill()
    frames_out = [json.loads(line) for line in out.splitlines()]
    assert proc.returncode == 0, err
    assert [f["type"] for f in frames_out] == ["join"] and frames_out[0]["dev_eui"] == DEV


def test_no_datagram_stops_the_server():
    """What once killed the serving thread is counted: JSON nested 1,000 deep as malformed, an
    empty rxpk (valid, but no frame) as empty; frames whose handling fails inside the server as
    internal errors; the server answers the next datagram every time."""
    got: list[dict] = []
    with Listener({DEV: KEY}, port=0, dedup_ms=1, on_frame=got.append) as ls:
        h = Hotspot(ls.address[1], bytes(range(8)))
        eui = bytes([2, 0, 1, st.PUSH_DATA]) + bytes(range(8))
        nasty = [eui + b"[" * 1000, eui + b"{\"rxpk\":" + b"[" * 5000, eui + b"\xff\xfe", b"\x02", eui + b"null"]
        for data in nasty:
            h.sock.sendto(data, ("127.0.0.1", ls.address[1]))
        h.send(st.PUSH_DATA, {"rxpk": [{"tmst": 1, "chan": 0, "rfch": 0, "freq": 868.1, "stat": 1, "modu": "LORA",
                                        "datr": "SF7BW125", "codr": "4/5", "rssi": -60, "lsnr": 5.0, "size": 0,
                                        "data": ""}]})
        assert h.recv()[3] == st.PUSH_ACK
        for phy in (b"\x40", b"\x80\x01", b"\x00", b"\xe0" + bytes(3), b"\x20" + bytes(40)):  # too short to parse
            h.rxpk(phy, 100)
            assert h.recv()[3] == st.PUSH_ACK
        h.send(st.PULL_DATA)
        assert h.recv()[3] == st.PULL_ACK  # still serving
        h.rxpk(_join_request(7), 9000)
        assert h.recv()[3] == st.PUSH_ACK
        assert h.recv()[3] == st.PULL_RESP  # and still answering joins
        assert ls.counts["malformed"] == len(nasty) and ls.counts["empty"] == 1
        assert ls._thread is not None and ls._thread.is_alive()


def test_made_up_gateway_euis_do_not_grow_the_server_without_end():
    """A stream of PULL_DATA from ever new gateway EUIs (what make fuzz's listen targets sent):
    the server keeps the newest KEEP_GATEWAYS, forgets the oldest and counts them."""
    from loraspot.listen.gateways import KEEP_GATEWAYS

    with Listener({}, port=0) as ls:
        h = Hotspot(ls.address[1], bytes(8))
        for n in range(KEEP_GATEWAYS + 50):
            h.eui = n.to_bytes(8, "big")
            h.send(st.PULL_DATA)
            assert h.recv()[3] == st.PULL_ACK
        snap = ls.snapshot()
    assert len(snap["gateways"]) == KEEP_GATEWAYS
    assert snap["counts"]["gateways_forgotten"] == 50
    assert (KEEP_GATEWAYS + 49).to_bytes(8, "big").hex().upper() in snap["gateways"]
    assert bytes(8).hex().upper() not in snap["gateways"]


def test_a_late_copy_of_an_uplink_is_refused_as_such_and_says_whose_it_was():
    """A gateway's store-and-forward can deliver FCnt 5 after FCnt 6 went through another: the
    server refuses it (its count is not above the last) and names it, as a network server does,
    instead of a bare MIC failure of the count rolled over."""
    from loraspot.listen.server import _Group

    addr, nwk, app = "26011BDA", bytes(range(16, 32)), bytes(range(32, 48))
    ls = Listener({}, port=0, udp=False, abp={addr: (DEV, nwk, app)})
    try:
        wire = bytes.fromhex(addr)[::-1]
        rx = {"rssi": -60, "lsnr": 7.5, "tmst": 1, "freq": 868.1, "datr": "SF7BW125", "chan": 0}

        def handle(fcnt: int, key: bytes = nwk) -> dict:
            phy = frame.build(key, app, wire, fcnt, uplink=True, fport=2, payload=b"\x01")
            return ls._handle(_Group(0.0, phy, [("AA555A0000000101", rx)]))

        assert handle(6)["fcnt"] == 6 and "error" not in handle(7)
        late = handle(5)
        assert late["error"] == "FCnt 5 not above the last (7): a late or replayed frame", late
        assert (late["dev_eui"], late["devaddr"], late["fcnt16"]) == (DEV, addr, 5)
        forged = handle(8, key=bytes(16))  # a wrong key is still a MIC failure, of a known DevAddr
        assert forged["error"] == "MIC does not verify" and forged["fcnt16"] == 8
        assert handle(8)["fcnt"] == 8  # the session went on
    finally:
        ls.close()
