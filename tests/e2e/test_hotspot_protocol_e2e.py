"""The hotspot against a raw Semtech UDP server written in the test: every datagram it sends is
decoded strictly (header bytes, field names and types), and bad downstream input is refused with
the right TX_ACK error or dropped, counted, nothing transmitted, and the hotspot keeps going."""

from __future__ import annotations

import base64
import json
import socket
import time

import pytest
from loraspot.listen import semtech
from loraspot.sim.medium import F_CRC, Cfg, Medium, MediumClient

from tests.e2e.hotspot_world import FREQ, SF, Events, hotspot_image, wait

pytestmark = pytest.mark.e2e
SPEED = 5


class RawServer:
    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.05)
        self.port = self.sock.getsockname()[1]
        self.seen: list[tuple[semtech.Upstream, tuple]] = []
        self.raw: list[bytes] = []
        self.pull_addr = None

    def pump(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            try:
                data, addr = self.sock.recvfrom(65535)
            except TimeoutError:
                continue
            self.raw.append(data)
            up = semtech.decode(data)  # strict: raises on anything out of the protocol
            self.seen.append((up, addr))
            if up.ident == semtech.PULL_DATA:
                self.pull_addr = addr
            if up.ident in (semtech.PUSH_DATA, semtech.PULL_DATA):
                self.sock.sendto(semtech.ack(up), addr)

    def tx_acks(self) -> dict[int, str]:
        return {up.token: up.body["txpk_ack"]["error"] for up, _ in self.seen if up.ident == semtech.TX_ACK}

    def close(self) -> None:
        self.sock.close()


def _txpk(tmst: int, **over) -> dict:
    data = base64.b64encode(b"\x60" + bytes(11)).decode()
    t = {"imme": False, "tmst": tmst, "freq": 868.1, "rfch": 0, "powe": 14, "modu": "LORA", "datr": "SF7BW125",
         "codr": "4/5", "ipol": True, "size": 12, "data": data}
    t.update(over)
    return {k: v for k, v in t.items() if v is not None}


def test_datagrams_are_to_the_letter_and_bad_downlinks_are_refused(tmp_path, make_board):
    srv = RawServer()
    with Medium(speed=SPEED) as medium:
        h = make_board(hotspot_image(tmp_path / "hs.bin", server_port=srv.port, keepalive=2, gw_stat_interval=5),
                       speed=SPEED, medium=medium.address, register=False)
        ev = Events(h.info["url"])
        node = MediumClient(medium.address, "n", (10, 0, 0), SPEED)
        try:
            srv.pump(1.0)
            assert srv.pull_addr is not None, srv.seen
            # an uplink on the hotspot's channel, for a real tmst to schedule against
            node.transmit(b"\x40\x01\x02\x03\x04\x00\x00\x00\x01" + bytes(7),
                          Cfg(FREQ, SF, 125_000, 5, 8, F_CRC, 0x34, 14), medium.now() + 50_000 * SPEED)
            srv.pump(1.5)
            rx = [p for up, _ in srv.seen if up.rxpk for p in up.rxpk]
            assert len(rx) == 1, srv.seen
            tmst = rx[0]["tmst"]
            pull = srv.pull_addr
            body = lambda t: json.dumps({"txpk": t}).encode()  # noqa: E731
            head = lambda tok: bytes([2]) + tok.to_bytes(2, "big") + b"\x03"  # noqa: E731
            bad = {
                101: head(101) + b'{"txpk":{"imme":tr',  # truncated JSON
                102: head(102) + b"42",  # a scalar
                103: head(103) + b"\x00",  # NUL
                104: head(104) + body(_txpk(tmst + 20_000_000, datr=None)),  # a required field missing
                105: head(105) + body(_txpk(tmst + 20_000_000, size=13)),  # size not matching data
                106: head(106) + body(_txpk(tmst + 20_000_000, size=256,
                                            data=base64.b64encode(bytes(256)).decode())),
            }
            refused = {
                201: (_txpk(tmst + 20_000_000, freq=915.0), "TX_FREQ"),  # outside EU868
                202: (_txpk(tmst + 20_000_000, powe=30), "TX_POWER"),  # above the board's 20 dBm
                203: (_txpk(tmst - 2_000_000), "TOO_LATE"),
                204: (_txpk(tmst + 60_000_000), "TOO_EARLY"),
                205: (_txpk(tmst + 20_000_000), "NONE"),
                206: (_txpk(tmst + 20_010_000), "COLLISION_PACKET"),  # overlaps 205
            }
            for data in (b"", b"\x02", b"\x02\x00\x01", b"\x01\x00\x01\x03{}", b"\x02\x00\x01\x09",
                         *bad.values()):
                srv.sock.sendto(data, pull)
            for tok, (t, _) in refused.items():
                srv.sock.sendto(head(tok) + body(t), pull)
            # a PULL_RESP from another address than the server's
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as other:
                other.sendto(head(301) + body(_txpk(tmst + 25_000_000)), pull)
            srv.pump(2.0)
            st = ev.client.request("stats")
            assert wait(lambda: ev.of("tx"), 15), ev.of("downlink")  # the accepted one, at its time
            st = ev.client.request("stats")
        finally:
            ev.close()
            node.close()
            srv.close()
    acks = srv.tx_acks()
    assert {tok: acks.get(tok) for tok in refused} == {tok: want for tok, (_, want) in refused.items()}
    # malformed ones: no TX_ACK (as Semtech's forwarder); the foreign one never reached the firmware
    # (its sockets are connected to the server) and went neither into the queue nor on air
    assert not set(acks) & (set(bad) | {301})
    # each malformed one refused (no TX_ACK, as Semtech's forwarder), or, on a board at exactly its
    # heap budget whose events queue up for a starved host, lost for want of a block, never unsaid:
    # each recv that failed for heap is counted (spot.hotspot.udp._recv)
    counts = {k: st[k] for k in ("down", "down_bad", "nomem", "bad_datagrams")}
    assert st["down_bad"] <= len(bad) and st["down_bad"] + st["nomem"] >= len(bad), counts
    assert st["bad_datagrams"] == 5  # short, version, identifier ones
    assert st["tx"] == 1 and st["tx_refused"] == 5  # only the good one went on air
    # every datagram: version 2, a known identifier, the gateway EUI from the MAC with FFFE
    eui = (h.info["id"][:6] + "fffe" + h.info["id"][6:]).lower()
    for raw in srv.raw:
        assert raw[0] == 2 and raw[3] in (0, 2, 5) and raw[4:12].hex() == eui
    stat = [up.stat for up, _ in srv.seen if up.stat]
    assert stat and set(stat[0]) <= {"time", "rxnb", "rxok", "rxfw", "ackr", "dwnb", "txnb", "lati", "long", "alti"}
    assert stat[0]["time"].endswith(" GMT")
