"""The RF medium: who hears what, and when, by computed (not measured) times."""

from __future__ import annotations

import socket

import pytest
from loraspot.sim.medium import (
    CAPTURE_DB,
    F_CRC,
    F_IQ_INVERTED,
    GRACE_S,
    Cfg,
    Medium,
    MediumClient,
    MediumError,
    Reception,
    airtime_module,
    chip_reading,
)

EU = Cfg(868_100_000, 7, 125_000, 5, 8, F_CRC, 0x34, 14)
LEAD = 150_000  # µs between sending a command and its deadline: room for a loaded machine


def cfg(**kw) -> Cfg:
    return Cfg(**{**EU.__dict__, **kw})


@pytest.fixture
def medium():
    with Medium() as m:
        yield m


@pytest.fixture
def radios(medium):
    made: list[MediumClient] = []

    def make(name: str, pos=(0, 0, 0)) -> MediumClient:
        c = MediumClient(medium.address, name, pos)
        made.append(c)
        return c

    yield make
    for c in made:
        c.close()


def toa(n: int, c: Cfg = EU) -> int:
    return airtime_module().time_on_air_us(n, c.sf, c.bw, c.cr, c.preamble, True, bool(c.flags & F_CRC))


def test_exchange_rx_done_is_start_plus_time_on_air(radios):
    a, b = radios("a"), radios("b", (300, 0, 0))
    b.listen(EU)
    t = a.now() + LEAD
    a.transmit(b"hello world", EU, t)
    got = b.receive()
    assert isinstance(got, Reception)
    assert got.payload == b"hello world"
    assert got.rx_done == t + toa(11)  # computed, exact to the µs
    assert a.tx_done() == (t, t + toa(11))
    assert -100 < got.rssi < 0 and got.snr_x4 > 0
    assert got.cfg.sf == 7 and got.cfg.freq == 868_100_000


def test_a_near_node_reads_as_a_real_chip_reads_it(medium, radios):
    """A node a metre away has an SNR of about 100 dB; the chip's estimate saturates around
    +10..+14 dB (never the register's +31.75) and its RSSI is within the register's range."""
    a, b = radios("a"), radios("b", (1, 0, 0))
    b.listen(EU)
    a.transmit(b"near", EU, a.now() + LEAD)
    got = b.receive()
    assert isinstance(got, Reception)
    true_rssi, true_snr = medium.frames[-1].heard_by["b"]
    assert true_snr > 80  # the signal itself
    assert 10 < got.snr_x4 / 4 <= 13 and got.rssi == true_rssi and -157 <= got.rssi <= 0


def test_chip_reading_ranges():
    # weak packets read as they are (to the quarter dB); strong ones compress but still rise
    assert chip_reading(-130.4, -12.6) == (-130, -12.5)
    readings = [chip_reading(-60, snr)[1] for snr in (2, 5, 10, 20, 40, 80)]
    assert readings == sorted(readings) and readings[0] == 2.0 and max(readings) <= 13.0
    assert chip_reading(12.0, 150.0)[0] == 0 and chip_reading(-170.0, -20.0)[0] == -157


@pytest.mark.parametrize("other", [cfg(sf=8), cfg(freq=868_300_000), cfg(bw=250_000), cfg(flags=F_CRC | F_IQ_INVERTED),
                                   cfg(sync=0x12)])
def test_other_channel_sf_bw_iq_or_sync_not_heard(radios, other):
    a, b = radios("a"), radios("b", (100, 0, 0))
    b.listen(EU)
    a.transmit(b"x", other, a.now() + LEAD)
    a.tx_done()
    assert b.receive(timeout=0.3) is None


def test_downlink_iq_inverted_heard_by_inverted_receiver(radios):
    down = cfg(freq=869_525_000, sf=9, flags=F_IQ_INVERTED)
    gw, node = radios("gw"), radios("node", (50, 0, 0))
    node.listen(down)
    gw.transmit(b"join-accept", down, gw.now() + LEAD)
    got = node.receive()
    assert isinstance(got, Reception) and got.payload == b"join-accept"


def test_out_of_range_not_heard_and_sensitivity_depends_on_sf(radios, medium):
    a = radios("a")
    near, far = radios("near", (2_000, 0, 0)), radios("far", (200_000, 0, 0))
    for r in (near, far):
        r.listen(EU)
    a.transmit(b"ping", EU, a.now() + LEAD)
    assert isinstance(near.receive(), Reception)
    assert far.receive(timeout=0.3) is None
    assert medium.frames[-1].lost_by["far"] == "below sensitivity"
    # a distance beyond SF7's reach but within SF12's
    mid = radios("mid", (15_000, 0, 0))
    for sf, heard in ((7, False), (12, True)):
        c = cfg(sf=sf)
        mid.listen(c)
        a.transmit(b"p", c, a.now() + LEAD)
        assert isinstance(mid.receive(timeout=3 if heard else 0.5), Reception) is heard, sf
        a.tx_done(timeout=5)


def _two_senders(radios, medium, d1: float, d2: float):
    s1, s2 = radios("s1", (d1, 0, 0)), radios("s2", (-d2, 0, 0))
    rx = radios("rx")
    rx.listen(EU)
    t = s1.now() + LEAD
    s1.transmit(b"first", EU, t)
    s2.transmit(b"second", EU, t + toa(5) // 2)  # overlaps the second half of the first
    got = []
    while (r := rx.receive(timeout=0.5)) is not None:
        got.append(r.payload)
    return got, medium


def test_overlapping_frames_collide(radios, medium):
    got, m = _two_senders(radios, medium, 100, 110)  # about 1 dB apart
    assert got == []
    assert all(f.lost_by["rx"].startswith("collision") for f in m.frames[-2:])


def test_capture_when_one_is_6db_stronger(radios, medium):
    # path loss rises 27 dB per decade at exponent 2.7: 100 m vs 300 m is about 12.9 dB
    assert medium.path_loss_db((0, 0, 0), (300, 0, 0), EU.freq) - medium.path_loss_db((0, 0, 0), (100, 0, 0), EU.freq) \
        > CAPTURE_DB
    got, _ = _two_senders(radios, medium, 100, 300)
    assert got == [b"first"]


def test_frames_on_other_sf_do_not_collide(radios):
    s1, s2, rx = radios("s1", (100, 0, 0)), radios("s2", (-100, 0, 0)), radios("rx")
    rx.listen(EU)
    t = s1.now() + LEAD
    s1.transmit(b"sf7", EU, t)
    s2.transmit(b"sf9", cfg(sf=9), t)
    r = rx.receive()
    assert isinstance(r, Reception) and r.payload == b"sf7"


def test_receive_window_catches_frame_inside_and_not_outside(radios):
    gw, node = radios("gw"), radios("node", (100, 0, 0))
    down = cfg(flags=F_IQ_INVERTED)
    sym = 1024  # SF7 / 125 kHz
    t = gw.now() + LEAD
    # window opens 2 symbols after the preamble began: still 2 symbols to lock (8 - 4)
    node.window(t + 2 * sym, 8, down)
    gw.transmit(b"rx1", down, t)
    r = node.receive()
    assert isinstance(r, Reception) and r.rx_done == t + toa(3, down)
    # a frame that starts after the window has timed out: the window reports its timeout
    t = gw.now() + LEAD
    node.window(t, 8, down)
    gw.transmit(b"late", down, t + 9 * sym)
    assert node.receive() == t + 8 * sym
    assert node.receive(timeout=0.4) is None
    # a window opened too late into the preamble misses the frame
    t = gw.now() + LEAD
    node.window(t + 5 * sym, 8, down)
    gw.transmit(b"early", down, t)
    assert node.receive() == t + 5 * sym + 8 * sym


def test_a_starved_sender_or_a_late_window_still_meets_its_deadline(radios):
    """A window and a transmission both asked for 60 ms after the time they name (processes the
    machine starved) are honoured at that time, within GRACE_S: the downlink is caught, exactly."""
    gw, node = radios("gw"), radios("node", (100, 0, 0))
    down = cfg(flags=F_IQ_INVERTED)
    t = gw.now() - 60_000
    node.window(t, 8, down)
    gw.transmit(b"rx1", down, t)
    r = node.receive()
    assert isinstance(r, Reception) and r.payload == b"rx1" and r.rx_done == t + toa(3, down)
    assert gw.tx_done() == (t, t + toa(3, down))
    # later than the grace: the frame starts when it is asked for
    late = gw.now() - round(GRACE_S * 1e6) - 200_000
    gw.transmit(b"x", down, late)
    start, _ = gw.tx_done()
    assert start > late + GRACE_S * 1e6


def test_transmitter_does_not_hear_while_sending(radios):
    a, b = radios("a"), radios("b", (10, 0, 0))
    a.listen(EU)
    t = a.now() + LEAD
    b.transmit(b"one", EU, t)
    a.transmit(b"two", EU, t)  # a leaves receive to send
    assert a.receive(timeout=0.4) is None


def test_speed_factor_runs_world_time_faster():
    with Medium(speed=10) as m:
        a = MediumClient(m.address, "a", speed=10)
        b = MediumClient(m.address, "b", (10, 0, 0), speed=10)
        try:
            slow = cfg(sf=12)
            b.listen(slow)
            t = a.now() + LEAD * 10
            a.transmit(b"x" * 50, slow, t)
            r = b.receive(timeout=2)
            assert isinstance(r, Reception) and r.rx_done == t + toa(50, slow)
        finally:
            a.close()
            b.close()
        with pytest.raises(MediumError, match="speed 10"):
            MediumClient(m.address, "c", speed=1)


def test_malformed_datagrams_get_an_error_and_nothing_breaks(radios, medium):
    a, b = radios("a"), radios("b", (20, 0, 0))
    raw = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    raw.settimeout(2)
    try:
        raw.sendto(b"Tgarbage", medium.address)
        assert raw.recv(200).startswith(b"Eunknown radio")
    finally:
        raw.close()
    for bad in (b"T" + b"\x00" * 3, b"Z", b"W" + b"\x00" * 30):
        a.sock.send(bad)
        assert a.sock.recv(300).startswith(b"Emalformed")
    a.sock.send(b"T" + (-1).to_bytes(8, "little", signed=True) + EU.pack())  # 0 bytes
    assert b"0 bytes" in a.sock.recv(300)
    a.sock.send(b"T" + (-1).to_bytes(8, "little", signed=True) + EU.pack() + bytes(256))
    assert b"256 bytes" in a.sock.recv(300)
    b.listen(EU)
    a.transmit(b"still fine", EU, a.now() + LEAD)
    r = b.receive()
    assert isinstance(r, Reception) and r.payload == b"still fine"


def test_carrier_sense_sees_a_frame_on_air(radios, medium):
    a, b = radios("a"), radios("b", (100, 0, 0))
    t = a.now() + LEAD
    a.transmit(b"x" * 40, EU, t)
    busy = b.sense(EU.freq, t + 10_000, 5_000)
    assert busy == round(14 - medium.path_loss_db((0, 0, 0), (100, 0, 0), EU.freq))
    assert b.sense(868_300_000, t + 10_000, 5_000) == -117  # another channel is free: its noise floor (125 kHz)
    assert b.sense(EU.freq, b.now() + LEAD + 500_000, 5_000) == -117  # after the frame
