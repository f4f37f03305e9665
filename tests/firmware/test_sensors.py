# Sensor drivers against their bus models (host/loraspot/sim/mp/_vhw.py): datasheet commands,
# registers and compensation maths; an absent sensor, a CRC error and a stuck bus are clear errors.
import asyncio

from _vhw import (
    AdcModel,
    AHT20Model,
    AXPModel,
    BME280Model,
    DS18B20Model,
    I2CBus,
    OneWireBus,
    SHT31Model,
    UartModel,
    bme280_reference,
    fix_sentences,
    nmea,
)
from fwtest import eq, raises
from spot.power import Pmu, vext_level
from spot.sensors import SensorError, crc8, ds18b20
from spot.sensors.aht20 import AHT20
from spot.sensors.battery import Battery, percent
from spot.sensors.bme280 import BME280
from spot.sensors.gps import GPS, Nmea, checksum_ok
from spot.sensors.sht31 import SHT31

# BMP280 datasheet (BST-BMP280-DS001, section 3.12) worked example: the same temperature and
# pressure compensation as the BME280. Humidity trimming values typical of real parts.
CAL = (27504, 26435, -1000, 36477, -10685, 3024, 2855, 140, -7, 15500, -14600, 6000, 75, 362, 0, 313, 50, 30)
ADC_T, ADC_P, ADC_H = 519888, 415148, 30000


def _run(coro):
    return asyncio.run(coro)


def test_crc8_datasheet_example():
    eq(crc8(b"\xbe\xef", 0x31, 0xFF), 0x92)  # SHT3x datasheet 4.12


def test_sht31_reading_and_command():
    m = SHT31Model(temp_raw=0x6666, hum_raw=0x8000)
    t, h = _run(SHT31(I2CBus(m)).read())
    eq(m.commands, [b"\x24\x00"])
    eq(round(t, 2), round(-45 + 175 * 0x6666 / 65535, 2))
    eq(round(h, 2), 50.0)


def test_sht31_crc_absent_stuck():
    m = SHT31Model()
    m.corrupt = True
    eq(raises(SensorError, _run, SHT31(I2CBus(m)).read()).code, "crc")
    eq(raises(SensorError, _run, SHT31(I2CBus()).read()).code, "absent")
    bus = I2CBus(SHT31Model())
    bus.stuck = True
    e = raises(SensorError, _run, SHT31(bus).read())
    eq(e.code, "bus")
    eq("stuck" in str(e), True)


def test_bme280_compensation_matches_the_datasheet():
    m = BME280Model(0x76, CAL, ADC_T, ADC_P, ADC_H)
    bus = I2CBus(m)
    s = BME280(bus)
    t, h, p_hpa = _run(s.read())
    eq(s.temperature(ADC_T), (128422, 2508))  # the datasheet example: t_fine 128422, 25.08 °C
    rt, rp, rh = bme280_reference(CAL, ADC_T, ADC_P, ADC_H)
    eq(abs(t - rt) < 0.01, True, "temperature %r vs %r" % (t, rt))
    eq(abs(p_hpa * 100 - rp) < 1.0, True, "pressure %r Pa vs %r" % (p_hpa * 100, rp))
    eq(round(rp), 100653)  # the datasheet example's 100653.27 Pa
    eq(abs(h - rh) < 0.1, True, "humidity %r vs %r" % (h, rh))
    # ctrl_hum written before ctrl_meas (it only takes effect then), forced mode, one measurement
    writes = [e[2] for e in bus.log if e[0] == "w" and len(e[2]) == 2]
    eq(writes, [b"\xf2\x01", b"\xf4\x25"])
    eq(m.measurements, 1)


def test_aht20_calibrates_measures_and_checks_crc():
    m = AHT20Model(hum_raw=0x80000, temp_raw=0x66666, calibrated=False)
    t, h = _run(AHT20(I2CBus(m)).read())
    eq(m.commands, [b"\x71", b"\xbe\x08\x00", b"\xac\x33\x00"])
    eq((round(t, 2), round(h, 2)), (round(0x66666 * 200 / 1048576 - 50, 2), 50.0))
    m.commands = []
    _run(AHT20(I2CBus(m)).read())
    eq(m.commands, [b"\x71", b"\xac\x33\x00"])  # calibrated: no init the second time
    m.corrupt = True
    eq(raises(SensorError, _run, AHT20(I2CBus(m)).read()).code, "crc")
    eq(raises(SensorError, _run, AHT20(I2CBus()).read()).code, "absent")
    bus = I2CBus(AHT20Model())
    bus.stuck = True
    eq(raises(SensorError, _run, AHT20(bus).read()).code, "bus")


def test_bme280_errors():
    eq(raises(SensorError, _run, BME280(I2CBus()).read()).code, "absent")
    other = BME280Model(0x76, CAL, ADC_T, ADC_P, ADC_H, chip_id=0x58)  # a BMP280
    e = raises(SensorError, _run, BME280(I2CBus(other)).read())
    eq((e.code, "BMP280" in str(e)), ("id", True))
    bus = I2CBus(BME280Model(0x76, CAL, ADC_T, ADC_P, ADC_H))
    s = BME280(bus)
    _run(s.read())
    bus.stuck = True
    eq(raises(SensorError, _run, s.read()).code, "bus")
    bus.stuck = False
    eq(len(_run(s.read())), 3)  # recovers when the bus does
    asyncio.new_event_loop()


# --- DS18B20 on 1-Wire ----------------------------------------------------------------------------


def test_maxim_crc8_of_a_published_rom_code():
    # Maxim application note 27, figure 2: ROM code 02 1C B8 01 00 00 00 has CRC 0xA2
    eq(ds18b20.crc8_maxim(b"\x02\x1c\xb8\x01\x00\x00\x00"), 0xA2)
    eq(ds18b20.crc8_maxim(b"\x02\x1c\xb8\x01\x00\x00\x00\xa2"), 0)


def test_ds18b20_converts_then_reads_the_scratchpad():
    dev = DS18B20Model(celsius=-10.125)
    bus = OneWireBus(dev)
    eq(_run(ds18b20.DS18B20(bus).read()), -10.125)  # datasheet table 1: 0xFF5E
    eq(dev.raw, 0xFF5E)
    eq(bus.log, [0xCC, 0x44, 0xCC, 0xBE])
    dev.celsius = 25.0625
    eq(_run(ds18b20.DS18B20(bus).read()), 25.0625)  # 0x0191


def test_ds18b20_by_rom_among_several():
    a, b = DS18B20Model(b"\x01\x00\x00\x00\x00\x00", 10.0), DS18B20Model(b"\x02\x00\x00\x00\x00\x00", 30.5)
    bus = OneWireBus(a, b)
    roms = ds18b20.scan(bus)
    eq(roms, [a.rom, b.rom])
    eq(_run(ds18b20.DS18B20(bus, roms[1]).read()), 30.5)
    eq(("match", b.rom) in bus.log, True)


def test_ds18b20_absent_crc_stuck():
    eq(raises(SensorError, _run, ds18b20.DS18B20(OneWireBus()).read()).code, "absent")
    dev = DS18B20Model()
    dev.corrupt = True
    eq(raises(SensorError, _run, ds18b20.DS18B20(OneWireBus(dev)).read()).code, "crc")
    bus = OneWireBus(DS18B20Model())
    bus.stuck = True
    e = raises(SensorError, _run, ds18b20.DS18B20(bus).read())
    eq(e.code, "bus")
    eq("held low" in str(e), True)


# --- battery --------------------------------------------------------------------------------------
def test_battery_through_the_divider():
    adc = AdcModel(2050000)  # 2.05 V at the pin behind a 1:2 divider
    v, pct = _run(Battery(adc, 2.0).read())
    eq(v, 4.1)
    eq(pct, 100)
    eq(percent(3300), 0)
    eq(percent(3770), 40)
    eq(percent(3780), 45)
    adc.fail = True
    eq(raises(SensorError, _run, Battery(adc, 2.0).read()).code, "bus")
    eq(raises(SensorError, _run, Battery(AdcModel(2050000), 3.2).read()).code, "range")  # 6.56 V: wrong divider
    raises(ValueError, Battery, adc, 0.5)


# --- GPS NMEA -------------------------------------------------------------------------------------
# NMEA 0183 examples widely published with the standard (checksums verified by the parser)
RMC = b"$GPRMC,123519,A,4807.038,N,01131.000,E,022.4,084.4,230394,003.1,W*6A"
GGA = b"$GPGGA,123519,4807.038,N,01131.000,E,1,08,0.9,545.4,M,46.9,M,,*47"


def test_nmea_checksum():
    eq(checksum_ok(RMC), True)
    eq(checksum_ok(GGA), True)
    eq(checksum_ok(RMC[:-1] + b"B"), False)
    eq(checksum_ok(RMC.replace(b"4807", b"4808")), False)
    eq(checksum_ok(b"GPRMC,1*00"), False)
    eq(checksum_ok(b"$GPRMC,1*ZZ"), False)


def test_nmea_rmc_and_gga():
    n = Nmea()
    n.feed(b"garbage\xff\x00" + RMC + b"\r\n" + GGA + b"\r\n")
    f = n.fix
    eq(f.valid, True)
    eq(f.quality, 1)
    eq(f.sats, 8)
    eq(f.hdop, 0.9)
    eq(f.alt, 545.4)
    eq(abs(f.lat - (48 + 7.038 / 60)) < 1e-9, True)
    eq(abs(f.lon - (11 + 31.0 / 60)) < 1e-9, True)
    eq(n.sentences, 2)
    eq(n.dropped, 0)


def test_nmea_southern_western_and_no_fix():
    n = Nmea()
    n.feed(fix_sentences(3600, -33.8688, -151.2093, 12.5, talker="GN"))
    eq(n.fix.usable(), True)
    eq(abs(n.fix.lat + 33.8688) < 1e-5, True)
    eq(abs(n.fix.lon + 151.2093) < 1e-5, True)
    n = Nmea()
    n.feed(fix_sentences(3600, 0, 0, 0, sats=2, quality=0))
    eq(n.fix.usable(), False)
    eq(n.fix.sats, 2)


def test_nmea_bad_lines_are_counted_not_parsed():
    n = Nmea()
    n.feed(RMC.replace(b"4807", b"4808") + b"\r\n")
    eq((n.sentences, n.bad_checksum, n.fix.valid), (0, 1, False))
    n.feed(b"$" + b"9" * 200 + b"\r\n")  # an over-long line is dropped
    eq(n.dropped, 1)
    n.feed(nmea("GPGGA,1,x,N,y,E,1,08,0.9,z,M,,M,,") + b"\r\n")  # valid checksum, nonsense fields
    eq(n.bad_checksum, 2)


class _FakeClock:
    def __init__(self):
        self.ms = 0

    def ticks_ms(self):
        return self.ms

    async def sleep_ms(self, ms):
        self.ms += ms


def test_gps_waits_for_a_fresh_fix_and_reports_errors():
    uart = UartModel()
    uart.push(fix_sentences(100, 52.52, 13.405, 34.0))
    lat, lon, alt = _run(GPS(uart, _FakeClock()).read())
    eq((round(lat, 4), round(lon, 4), alt), (52.52, 13.405, 34.0))
    eq(raises(SensorError, _run, GPS(UartModel(), _FakeClock()).read(1000)).code, "absent")
    uart.push(fix_sentences(101, 0, 0, 0, sats=3, quality=0))
    e = raises(SensorError, _run, GPS(uart, _FakeClock()).read(1000))
    eq(e.code, "nofix")
    eq("3 satellites" in str(e), True)
    uart.push(RMC.replace(b"4807", b"4808") + b"\r\n")
    eq(raises(SensorError, _run, GPS(uart, _FakeClock()).read(1000)).code, "crc")


# --- power rails ----------------------------------------------------------------------------------
def test_axp192_switches_radio_and_gps_rails():
    m = AXPModel("axp192")
    pmu = Pmu(I2CBus(m), expect="axp192")
    eq(pmu.chip, "axp192")
    pmu.rails(radio=True, gps=True)
    eq(m.rails(), {"radio": 3300, "gps": 3300})
    eq(m.regs[0x12] & 0x03, 0x03)  # DCDC1/DCDC3 (ESP32, OLED) untouched
    pmu.rails(radio=True, gps=False)
    eq(m.rails(), {"radio": 3300, "gps": 0})


def test_axp2101_switches_radio_and_gps_rails():
    m = AXPModel("axp2101")
    pmu = Pmu(I2CBus(m))
    eq(pmu.chip, "axp2101")
    pmu.rails(mv=3300)
    eq(m.rails(), {"radio": 3300, "gps": 3300})
    eq(m.regs[0x90] & 0x01, 0x01)
    raises(ValueError, pmu.rails, True, True, 4000)


def test_pmu_wrong_chip_absent_stuck():
    eq(raises(SensorError, Pmu, I2CBus(AXPModel("axp2101")), 0x34, "axp192").code, "id")
    eq(raises(SensorError, Pmu, I2CBus()).code, "absent")
    bus = I2CBus(AXPModel())
    bus.stuck = True
    eq(raises(SensorError, Pmu, bus).code, "bus")


def test_vext_levels():
    eq((vext_level(True, True), vext_level(True, False)), (0, 1))
    eq((vext_level(False, True), vext_level(False, False)), (1, 0))


def test_the_models_remember_only_their_newest_traffic():
    """A virtual board reads its sensors for days: the bus and chip models keep the last LOG_KEEP
    transactions for tests, not every one (a soak found the node's heap falling ~270 B a reading)."""
    import gc

    from _vhw import LOG_KEEP

    m = BME280Model(0x76, CAL, ADC_T, ADC_P, ADC_H)
    bus = I2CBus(m)
    s = BME280(bus)
    for _ in range(LOG_KEEP):  # the log full: from here on it keeps its size
        _run(s.read())
    gc.collect()
    before = gc.mem_free()
    for _ in range(300):
        _run(s.read())
    gc.collect()
    eq(len(bus.log), LOG_KEEP)
    eq(bus.log[-1][2], b"\xf4\x25")
    eq(before - gc.mem_free() < 1024, True, "heap kept by 300 readings: %d" % (before - gc.mem_free()))
