"""The firmware's virtual radio (spot/radio/virtual.py) in separate MicroPython processes, talking
to the RF medium: frames cross between boards with exactly computed times."""

from __future__ import annotations

import json
import subprocess
import time

import pytest
from loraspot.sim.medium import RX, Cfg, Medium, airtime_module

from tests.conftest import FIRMWARE_TESTS, HEAP, firmware_env, micropython

PEER = FIRMWARE_TESTS / "vradio_peer.py"


class Peer:
    def __init__(self, medium: Medium, rid: str, x: float, speed: int, *args: str):
        env = firmware_env()
        host, port = medium.address
        self.proc = subprocess.Popen([micropython(), "-X", f"heapsize={HEAP}", str(PEER), host, str(port), rid,
                                      str(x), str(speed), *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     text=True, env=env)

    def line(self, timeout: float = 20) -> dict:
        assert self.proc.stdout is not None
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            text = self.proc.stdout.readline()
            if not text:
                break
            if text.startswith("{"):
                return json.loads(text)
        self.proc.kill()
        raise AssertionError(f"peer said nothing useful (exit {self.proc.wait()})")

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        if self.proc.stdout:
            self.proc.stdout.close()


@pytest.fixture
def peers():
    made: list[Peer] = []

    def make(*a) -> Peer:
        p = Peer(*a)
        made.append(p)
        return p

    yield make
    for p in made:
        p.close()


# how far ahead of the medium's clock a deadline is set: the peer processes must be running by then,
# and a loaded machine can take seconds to start one (the medium keeps world time with the wall)
MARGIN_US = 4_000_000


def toa(n: int) -> int:
    return airtime_module().time_on_air_us(n, 7, 125_000)


def test_two_boards_exchange_frames_rx_done_is_deadline_plus_airtime(peers):
    with Medium() as medium:
        rx = peers(medium, "rx", 500, 1, "rx-cont", "2")
        assert rx.line()["event"] == "ready"
        for payload in (b"first uplink", bytes(range(51))):
            deadline = medium.now() + MARGIN_US
            tx = peers(medium, "tx", 0, 1, "tx", str(deadline), payload.hex())
            sent = tx.line()
            assert sent["world_start"] == deadline  # the medium honoured the deadline exactly
            assert sent["start"] == sent["deadline"]
            assert sent["world_end"] == deadline + toa(len(payload))
            got = rx.line()
            assert bytes.fromhex(got["payload"]) == payload
            assert got["world"] == deadline + toa(len(payload))  # computed, not measured
            assert got["airtime"] == toa(len(payload))  # the firmware's own time on air agrees
            assert got["freq"] == 868_100_000 and got["sf"] == 7
            assert got["rssi"] == round(14 - medium.path_loss_db((0, 0, 0), (500, 0, 0), 868_100_000))


class _PacketBeforeTransmit(Medium):
    """A medium that, on a radio's transmit command, first hands it a frame heard before it (on a
    real medium the two cross: the packet was sent before the command was taken)."""

    frame = b"heard just before"

    def handle(self, data: bytes, addr) -> None:
        radio = self.by_addr.get(addr)
        if data[:1] == b"T" and radio is not None:
            now = self.now()
            cfg = Cfg.unpack(data, 9)
            self._send(addr, b"P" + RX.pack(now, -70, 28) + cfg.pack() + self.frame)
        super().handle(data, addr)


def test_a_packet_that_crosses_a_transmit_command_is_received_not_taken_for_its_answer(peers):
    with _PacketBeforeTransmit() as medium:
        deadline = medium.now() + MARGIN_US
        hs = peers(medium, "hs", 0, 1, "rx-tx", str(deadline), b"downlink".hex())
        assert hs.line()["event"] == "ready"
        sent = hs.line()
        assert (sent["world_start"], sent["world_end"]) == (deadline, deadline + toa(8))  # the real answer
        assert bytes.fromhex(hs.line()["payload"]) == _PacketBeforeTransmit.frame  # and the packet kept


def test_the_end_of_a_transmission_is_read_when_the_heap_is_full(peers):
    """recv takes a block of the heap for each datagram, where a chip's FIFO takes none: with the
    heap full while the transmission's end was awaited, a board once waited out its 10 s backstop,
    not listening, and lost the uplinks of that time. The block a virtual board keeps for this is
    lent to the heap and the answer read at once."""
    with Medium() as medium:
        deadline = medium.now() + MARGIN_US
        hs = peers(medium, "hs", 0, 1, "tx-full", str(deadline), b"join accept".hex())
        got = hs.line(timeout=60)
        assert got == {"error": None, "lent": True, "world_end": deadline + toa(11)}


def test_receive_window_across_processes(peers):
    with Medium() as medium:
        start = medium.now() + MARGIN_US
        node = peers(medium, "node", 100, 1, "rx-window", str(start), "8")
        ready = node.line()
        assert ready["roundtrip"] is True
        gw = peers(medium, "gw", 0, 1, "tx", str(start + 1024), b"join-accept".hex(), "down")
        gw.line()
        got = node.line()
        assert bytes.fromhex(got["payload"]) == b"join-accept"
        assert got["world"] == start + 1024 + toa(11)
        # a window with nothing on the air times out at start + 8 symbols
        start = medium.now() + MARGIN_US
        node = peers(medium, "node2", 100, 1, "rx-window", str(start), "8")
        node.line()
        assert node.line() == {"event": "timeout"}


def test_speed_factor_and_mismatch(peers):
    with Medium(speed=20) as medium:
        rx = peers(medium, "rx", 50, 20, "rx-cont", "1")
        assert rx.line()["event"] == "ready"
        deadline = medium.now() + 20 * 400_000
        tx = peers(medium, "tx", 0, 20, "tx", str(deadline), b"fast".hex())
        assert tx.line()["world_start"] == deadline
        assert rx.line()["world"] == deadline + toa(4)
        bad = peers(medium, "slow", 0, 1, "rx-cont", "1")
        with pytest.raises(AssertionError):
            bad.line(timeout=10)
        assert any("speed mismatch" in e for e in medium.errors)
