# SX126x driver against the command-level chip model (tests/firmware/sx1262_model.py).
import asyncio

from fakehw import FakeSPI
from fwtest import eq, raises, settle
from fwtest import run_fresh as run
from spot.clock import Clock, ticks_add, ticks_diff
from spot.radio import RadioError, RadioTimeout
from spot.radio.sx126x import SX126x
from sx1262_model import RX, STDBY_RC, SX1262Model

PROFILE = {"chip": "sx1262", "band_mhz": [862, 1020], "max_power_dbm": 22, "tcxo_volts": 1.8, "dio2_rf_switch": True}


def make(model=None, profile=PROFILE):
    m = model or SX1262Model()
    r = SX126x(FakeSPI(m), m.pins(), Clock(), profile)
    return m, r


def _clean(m):
    eq(m.errors, [], "protocol violations")


def test_init_sequence():
    m, r = make()
    _clean(m)
    eq(m.tcxo, (2, 320), "DIO3 TCXO 1.8 V, 5 ms")
    eq(m.calibrated, 0x7F, "calibrated all blocks")
    eq(m.device_errors, 0, "device errors cleared")
    eq(m.dio2_switch, True, "DIO2 as RF switch")
    eq(m.packet_type, 0x01, "LoRa packet type")
    eq(m.regulator, 0x01, "DC-DC")
    eq(m.regs[0x08D8] & 0x1E, 0x1E, "TX clamp (15.2)")
    eq((m.regs[0x0740], m.regs[0x0741]), (0x34, 0x44), "public sync word 0x3444")
    eq(m.mode, STDBY_RC)
    eq(m.commands.index(0x97) < m.commands.index(0x89), True, "TCXO set up before calibration")


def test_missing_tcxo_setting_fails_calibration_clearly():
    prof = dict(PROFILE)
    del prof["tcxo_volts"]
    e = raises(RadioError, make, SX1262Model(tcxo=1.8), prof)
    eq("tcxo_volts" in str(e), True)


def test_configure_eu868_us915_and_500khz():
    m, r = make()
    for freq, sf, bw in ((868100000, 7, 125000), (903900000, 10, 125000), (904600000, 8, 500000),
                         (869525000, 12, 125000)):
        r.configure(freq=freq, sf=sf, bw=bw)
        if abs(m.freq - freq) > 1:
            raise AssertionError("frequency %d programmed as %d" % (freq, m.freq))
        eq(m.mod, (sf, bw, 5, 1 if sf == 12 else 0), "modulation params")
        eq(m.pkt["preamble"], 8)
        eq(m.regs[0x0889] & 0x04, 0 if bw == 500000 else 0x04, "TX modulation register (15.1)")
        eq(m.image, (0xD7, 0xDB) if freq < 900000000 else (0xE1, 0xE9), "image calibration for the band")
    _clean(m)


def test_transmit_51_bytes():
    m, r = make()
    r.configure(freq=868500000, sf=7, power=14)
    data = bytes(range(100, 151))

    async def go():
        deadline = ticks_add(r.clock.ticks_us(), 20000)
        start, end = await r.transmit_at(data, deadline)
        return deadline, start, end

    deadline, start, end = run(go())
    f = m.tx_frames[-1]
    eq(f["payload"], data)
    eq((f["sf"], f["bw"], f["cr"], f["crc"], f["implicit"], f["iq_inverted"], f["sync"]),
       (7, 125000, 5, True, False, False, 0x3444))
    eq((f["valid"], f["mod_quality_ok"], f["clamp_ok"], f["reaches_antenna"]), (True, True, True, True))
    eq(f["power"], 14)
    if ticks_diff(start, deadline) < 0 or ticks_diff(end, start) < 0:
        raise AssertionError("time stamps out of order")
    # SetTx timeout in 15.625 µs steps covers the time on air
    eq(f["timeout_steps"] * 15625 // 1000 >= r.airtime_us(51), True)
    r.configure(power=22)
    run(r.transmit_at(b"x"))
    eq(m.tx_frames[-1]["power"], 22)
    raises(ValueError, r.configure, power=23)
    _clean(m)


def test_receive_continuous_rssi_snr():
    m, r = make()
    r.configure(freq=868100000, sf=7)

    async def go():
        r.start_receive()
        eq(m.rx_timeout, 0xFFFFFF, "continuous RX")
        eq(m.deliver(b"uplink", rssi=-97, snr_x4=-22), True)
        p = await r.recv()
        return bytes(p.payload()), p.rssi, p.snr_x4, p.freq, p.sf

    eq(run(go()), (b"uplink", -97, -22, 868100000, 7))
    _clean(m)


async def _window(r, m, symbols, action):
    task = asyncio.create_task(r.receive_window(ticks_add(r.clock.ticks_us(), 3000), symbols))
    while m.mode != RX:
        await asyncio.sleep_ms(1)
    action()
    return await task


def test_receive_window_and_inverted_iq_fix():
    m, r = make()
    r.configure(freq=869525000, sf=9, iq_inverted=True)
    eq(m.regs[0x0736] & 0x04, 0, "IQ polarity register for inverted IQ (15.4)")
    got = []
    for i in range(4):
        p = run(_window(r, m, 8, lambda: m.deliver(b"down%d" % i, iq_inverted=True, crc=False)))
        got.append(bytes(p.payload()) if p else None)
    eq(got, [b"down0", b"down1", b"down2", b"down3"], "every downlink received")
    eq(m.symb_timeout, 8)
    res = []
    p = run(_window(r, m, 12, lambda: res.append(m.window_timeout())))
    eq(p, None)
    eq(res[0][0], 12)
    r.configure(iq_inverted=False)
    eq(m.regs[0x0736] & 0x04, 0x04, "IQ polarity register back for normal IQ")
    _clean(m)


def test_model_loses_downlinks_without_the_iq_fix():
    # proves the model checks the workaround: undo it behind the driver's back
    m, r = make()
    r.configure(freq=869525000, sf=9, iq_inverted=True)
    m.regs[0x0736] |= 0x04
    heard = [run(_window(r, m, 8, lambda: m.deliver(b"d", iq_inverted=True) or m.window_timeout())) is not None
             for _ in range(4)]
    eq(heard, [False, True, False, True], "downlinks missed without 15.4")


def test_implicit_header_timeout_workaround():
    m, r = make()
    r.configure(sf=7, implicit_len=5)
    res = []
    eq(run(_window(r, m, 8, lambda: res.append(m.window_timeout()))), None)
    eq(m.rtc_stale, False, "RTC stopped and event cleared (15.3)")
    p = run(_window(r, m, 8, lambda: m.deliver(b"12345")))
    eq(bytes(p.payload()), b"12345")
    _clean(m)


def test_wrong_chip_garbage_and_stuck_busy():
    for st in (0x00, 0xFF):
        e = raises(RadioError, make, SX1262Model(status_override=st))
        eq("no SX126x answering" in str(e), True)
    e = raises(RadioError, make, SX1262Model(reg_override={0x0740: 0x12, 0x0741: 0x00}))
    eq("not an SX1261/62" in str(e), True)
    m = SX1262Model()
    m.stuck_busy = True
    e = raises(RadioError, make, m)
    eq("BUSY stuck" in str(e), True)
    m, r = make()
    m.stuck_busy = True
    raises(RadioError, run, r.transmit_at(b"abc"))


def test_bad_lengths_overflow_and_missing_irq():
    m, r = make()
    raises(ValueError, run, r.transmit_at(b""))
    raises(ValueError, run, r.transmit_at(bytes(256)))
    run(r.transmit_at(bytes(255)))
    eq(len(m.tx_frames[-1]["payload"]), 255)

    async def go():
        r.start_receive()
        m.deliver(b"")
        await settle(r, 1)
        for i in range(6):
            m.deliver(bytes([i]))
            await settle(r, 2 + i)
        out = []
        while r.count:
            out.append(bytes((await r.recv()).payload()))
        return out

    eq(run(go()), [b"\x00", b"\x01", b"\x02", b"\x03"])
    eq((r.stats["rx_bad"], r.stats["rx_overflow"]), (1, 2))
    m.hung = True
    raises(RadioTimeout, run, r.transmit_at(b"abc"))
    m.hung = False
    run(r.transmit_at(b"again"))
    eq(m.tx_frames[-1]["payload"], b"again")
    eq(m.tx_frames[-1]["valid"], True)


def test_sf5_allowed_and_sx1261_power_range():
    m, r = make()
    r.configure(sf=5, bw=500000)
    eq(m.mod[0], 5)
    m2 = SX1262Model()
    prof = dict(PROFILE, chip="sx1261", max_power_dbm=15)
    r2 = SX126x(FakeSPI(m2), m2.pins(), Clock(), prof)
    r2.configure(power=14)
    eq(m2.pa, (0x04, 0x00, 0x01, 0x01))
    raises(ValueError, r2.configure, power=16)


class _Board:
    def __init__(self, radio):
        self.profile = {"radio": radio}


def test_open_radio_picks_the_driver_from_the_profile():
    from spot.radio import open_radio
    from spot.radio.sx127x import SX127x
    from sx1276_model import SX1276Model

    m = SX1262Model()
    r = open_radio(_Board(dict(PROFILE, chip="sx1261", max_power_dbm=14)), Clock(), FakeSPI(m), m.pins())
    eq((type(r).__name__, r.sx1261, r.MAX_POWER), ("SX126x", True, 15))
    m2 = SX1276Model()
    r2 = open_radio(_Board({"chip": "sx1276", "band_mhz": [862, 1020], "max_power_dbm": 20}), Clock(), FakeSPI(m2),
                    m2.pins())
    eq(isinstance(r2, SX127x), True)


def test_carrier_sense_reads_instantaneous_rssi():
    m, r = make()
    r.configure(freq=923200000, sf=7)
    m.rssi_inst = 150
    eq(run(r.channel_rssi(2000)), -75)
    eq(m.mode, STDBY_RC)
    _clean(m)
