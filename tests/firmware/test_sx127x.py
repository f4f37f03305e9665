# SX127x driver against the register-level chip model (tests/firmware/sx1276_model.py).
import asyncio

from fakehw import FakeSPI
from fwtest import eq, raises, settle
from fwtest import run_fresh as run
from spot.clock import MASK, Clock, ticks_add, ticks_diff
from spot.radio import RadioError, RadioTimeout
from spot.radio.sx127x import SX127x
from sx1276_model import RXSINGLE, STDBY, SX1276Model

PROFILE = {"chip": "sx1276", "band_mhz": [137, 1020], "max_power_dbm": 20, "pa_boost": True}


def make(model=None, profile=PROFILE, clock=None):
    m = model or SX1276Model()
    r = SX127x(FakeSPI(m), m.pins(), clock or Clock(), profile)
    return m, r


def test_init_sequence_puts_chip_in_lora_standby():
    m, r = make()
    eq(m.lora(), True, "LongRangeMode")
    eq(m.mode(), STDBY)
    eq(m.regs[0x0E], 0, "FifoTxBaseAddr")
    eq(m.regs[0x0F], 0, "FifoRxBaseAddr")
    eq(m.regs[0x39], 0x34, "public sync word")
    eq(m.regs[0x0C] & 3, 3, "LNA boost HF")
    eq(m.resets, 1, "reset pulse")


def test_configure_eu868_us915_and_500khz():
    m, r = make()
    for freq, sf, bw in ((868100000, 7, 125000), (903900000, 10, 125000), (904600000, 8, 500000),
                         (869525000, 12, 125000)):
        r.configure(freq=freq, sf=sf, bw=bw)
        if abs(m.freq() - freq) > 31:  # half of the 61 Hz step
            raise AssertionError("frequency %d programmed as %d" % (freq, m.freq()))
        eq((m.sf(), m.bw(), m.cr(), m.preamble(), m.implicit()), (sf, bw, 5, 8, False), "modem config %d" % freq)
        eq(m.ldro(), sf == 12, "LowDataRateOptimize at SF%d" % sf)
        eq(m.regs[0x1E] & 0x04, 0x04, "RxPayloadCrcOn")
        eq(m.regs[0x36], 0x02 if bw == 500000 else 0x03, "errata 2.1 register 0x36")
        if bw == 500000:
            eq(m.regs[0x3A], 0x64, "errata 2.1 register 0x3a")
        eq(m.config_ok(), True)
    r.configure(freq=433175000, sf=9)
    eq(m.regs[1] & 0x08, 0x08, "LowFrequencyModeOn below 525 MHz")


def test_transmit_51_bytes_at_a_deadline():
    m, r = make()
    r.configure(freq=868300000, sf=7, bw=125000, power=14)
    data = bytes(range(51))

    async def go():
        deadline = ticks_add(r.clock.ticks_us(), 30000)
        start, end = await r.transmit_at(data, deadline)
        return deadline, start, end

    deadline, start, end = run(go())
    f = m.tx_frames[-1]
    eq(f["payload"], data)
    eq(abs(f["freq"] - 868300000) <= 31, True, "frequency")
    eq((f["sf"], f["bw"], f["valid"], f["iq_inverted"], f["sync"]), (7, 125000, True, False, 0x34))
    eq(f["power"], 14)
    eq(f["pa_boost"], True)
    if ticks_diff(start, deadline) < 0:
        raise AssertionError("transmitted %d µs before its deadline" % -ticks_diff(start, deadline))
    if ticks_diff(end, start) < 0:
        raise AssertionError("TxDone stamped before the start")
    eq(r.stats["tx"], 1)


def test_downlink_iq_inversion_on_tx_and_rx():
    m, r = make()
    r.configure(freq=869525000, sf=9, iq_inverted=True)
    run(r.transmit_at(b"\x60" * 12))
    f = m.tx_frames[-1]
    eq((f["iq_inverted"], f["iq_consistent"]), (True, True))

    async def rx():
        r.start_receive()
        eq(m.deliver(b"up", iq_inverted=False), False, "normal-IQ frame heard by an inverted receiver")
        eq(m.deliver(b"down", iq_inverted=True), True)
        p = await r.recv()
        return bytes(p.payload())

    eq(run(rx()), b"down")


def test_pa_boost_rfo_and_power_limits():
    m, r = make()
    for dbm in (2, 14, 17, 20):
        r.configure(power=dbm)
        eq(m.power_dbm(), dbm, "PA_BOOST %d dBm" % dbm)
        eq(m.regs[0x4D], 0x87 if dbm == 20 else 0x84, "RegPaDac at %d dBm" % dbm)
    raises(ValueError, r.configure, power=21)
    e = raises(ValueError, r.configure, power=16, max_power=14)
    eq("14 dBm" in str(e), True)
    eq(m.power_dbm(), 20, "a refused setting changes nothing")
    m2, r2 = make(profile={"chip": "sx1276", "band_mhz": [862, 1020], "max_power_dbm": 14, "pa_boost": False})
    r2.configure(power=14)
    eq((m2.power_dbm(), m2.regs[0x09] & 0x80), (14, 0), "RFO output")
    raises(ValueError, r2.configure, power=15)
    raises(ValueError, r2.configure, freq=433000000)


def _rssi(raw, snr_raw, base=-157):
    snr = snr_raw - 256 if snr_raw > 127 else snr_raw
    return base + 16 * raw // 15 if snr >= 0 else base + raw + snr // 4


def test_continuous_receive_rssi_snr_and_timestamp():
    m, r = make()
    r.configure(freq=868100000, sf=7)

    async def go():
        r.start_receive()
        t0 = r.clock.ticks_us()
        eq(m.deliver(b"hello", rssi_raw=90, snr_raw=38), True)
        p = await r.recv()
        got = (bytes(p.payload()), p.rssi, p.snr_x4, p.freq, p.sf, p.bw, p.cr)
        eq(0 <= ticks_diff(p.t_us, t0) < 1000000, True, "RX-done time stamp")
        eq(m.deliver(b"weak", rssi_raw=40, snr_raw=(-30) & 0xFF), True)
        p = await r.recv()
        return got, (bytes(p.payload()), p.rssi, p.snr_x4)

    a, b = run(go())
    eq(a, (b"hello", _rssi(90, 38), 38, 868100000, 7, 125000, 5))
    eq(a[1], -61)
    eq(b, (b"weak", _rssi(40, 226), -30))
    eq(b[1], -125)


def test_lf_port_rssi_offset():
    m, r = make()
    r.configure(freq=433175000, sf=7)

    async def go():
        r.start_receive()
        m.deliver(b"x", rssi_raw=90, snr_raw=8)
        return (await r.recv()).rssi

    eq(run(go()), _rssi(90, 8, base=-164))


def test_other_sf_frequency_or_sync_not_heard():
    m, r = make()
    r.configure(freq=868100000, sf=7)
    r.start_receive()
    eq(m.deliver(b"a", sf=8), False)
    eq(m.deliver(b"a", freq=868300000), False)
    eq(m.deliver(b"a", sync=0x12), False)
    r.standby()


async def _window(r, m, symbols, action):
    start = ticks_add(r.clock.ticks_us(), 5000)
    task = asyncio.create_task(r.receive_window(start, symbols))
    while m.mode() != RXSINGLE:
        await asyncio.sleep_ms(1)
    opened = r.clock.ticks_us()
    action()
    p = await task
    return start, opened, p


def _window_cases(model):
    m, r = make(model)
    r.configure(freq=869525000, sf=12, iq_inverted=True)
    start, opened, p = run(_window(r, m, 8, lambda: m.deliver(b"join-accept", iq_inverted=True, crc=False)))
    eq(bytes(p.payload()), b"join-accept")
    eq(m.symb_timeout(), 8, "RegSymbTimeout")
    if ticks_diff(opened, start) < 0:
        raise AssertionError("window opened before its start")
    eq(m.mode(), STDBY)
    seen = []
    _, _, p = run(_window(r, m, 12, lambda: seen.append(m.window_timeout())))
    eq((p, seen), (None, [12]))
    return r


def test_receive_window_with_dio1():
    _window_cases(SX1276Model())


def test_receive_window_dio1_unwired_polls_irq_flags():
    r = _window_cases(SX1276Model(dio1_wired=False))
    eq(r.dio1, None)


def test_payload_length_0_and_256_rejected():
    m, r = make()
    raises(ValueError, run, r.transmit_at(b""))
    raises(ValueError, run, r.transmit_at(bytes(256)))
    run(r.transmit_at(bytes(255)))
    eq(len(m.tx_frames[-1]["payload"]), 255)


def test_zero_length_crc_error_and_ring_overflow_counted():
    m, r = make()

    async def go():
        r.start_receive()
        m.deliver(b"")
        await settle(r, 1)
        m.deliver(b"bad", crc_error=True)
        await settle(r, 2)
        for i in range(6):
            m.deliver(bytes([i]) * 3)
            await settle(r, 3 + i)
        got = []
        while r.count:
            got.append(bytes((await r.recv()).payload()))
        return got

    got = run(go())
    eq(got, [b"\x00\x00\x00", b"\x01\x01\x01", b"\x02\x02\x02", b"\x03\x03\x03"])
    eq((r.stats["rx_bad"], r.stats["rx_crc"], r.stats["rx_overflow"], r.stats["rx"]), (1, 1, 2, 4))


def test_missing_irq_times_out_and_driver_recovers():
    m, r = make()
    m.hung = True
    e = raises(RadioTimeout, run, r.transmit_at(b"abc"))
    eq("transmit" in str(e), True)
    m.hung = False
    eq(m.mode(), STDBY)
    run(r.transmit_at(b"after"))
    eq(m.tx_frames[-1]["payload"], b"after")
    m.hung = True
    raises(RadioTimeout, run, r.receive_window(r.clock.ticks_us(), 8))
    m.hung = False


def test_dead_irq_pin_still_completes_by_polling_the_flags():
    m, r = make()
    m.dead_dio = True
    start, end = run(r.transmit_at(b"abc"))
    eq(m.tx_frames[-1]["payload"], b"abc")
    eq(ticks_diff(end, start) >= 0, True)


def test_wrong_chip_and_spi_garbage_give_clear_errors():
    e = raises(RadioError, make, SX1276Model(version=0x22))
    eq("SX1272" in str(e), True)
    for v in (0x00, 0xFF):
        e = raises(RadioError, make, SX1276Model(version=v))
        eq("no SX127x answering" in str(e), True)
    m, r = make()
    m.garbage = True
    e = raises(RadioError, run, r.transmit_at(b"abc"))
    eq("RegOpMode" in str(e), True)


def test_sf6_needs_implicit_header():
    m, r = make()
    raises(ValueError, r.configure, sf=6)
    r.configure(sf=6, implicit_len=10)
    eq((m.sf(), m.implicit(), m.regs[0x31] & 7, m.regs[0x37], m.regs[0x22]), (6, True, 5, 0x0C, 10))
    raises(ValueError, run, r.transmit_at(b"short"))


def test_time_stamps_across_the_tick_wrap():
    m, r = make(clock=Clock(start_us=MASK - 20000))

    async def go():
        r.start_receive()
        await asyncio.sleep_ms(30)
        m.deliver(b"wrap")
        return await r.recv()

    p = run(go())
    eq(0 <= p.t_us < 1000000, True, "time stamp after the wrap")


def test_carrier_sense_reads_rssi_in_receive():
    m, r = make()
    r.configure(freq=923200000, sf=7)
    m.regs[0x1B] = 90
    eq(run(r.channel_rssi(2000)), -157 + 90)
    eq(m.mode(), STDBY)
    raises(ValueError, run, r.channel_rssi(10))


def test_crc_errors_delivered_when_asked_with_crc_ok_false():
    m, r = make()
    r.keep_crc_errors = True

    async def go():
        r.start_receive()
        m.deliver(b"good")
        await settle(r, 1)
        m.deliver(b"bad", crc_error=True)
        await settle(r, 2)
        got = []
        while r.count:
            p = await r.recv()
            got.append((bytes(p.payload()), p.crc_ok))
        return got

    eq(run(go()), [(b"good", True), (b"bad", False)])
    eq(r.stats["rx_crc"], 1)
