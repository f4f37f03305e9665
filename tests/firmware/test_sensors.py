# Sensor drivers against their bus models (tests/firmware/i2c_model.py): datasheet commands,
# registers and compensation maths; an absent sensor, a CRC error and a stuck bus are clear errors.
import asyncio

from fwtest import eq, raises
from i2c_model import AHT20Model, BME280Model, I2CBus, SHT31Model
from spot.sensors import SensorError, crc8
from spot.sensors.aht20 import AHT20
from spot.sensors.bme280 import BME280
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


def _float_reference(cal, adc_t, adc_p, adc_h):
    """The datasheet's floating-point compensation (BME280 datasheet section 8.1)."""
    t1, t2, t3, p1, p2, p3, p4, p5, p6, p7, p8, p9, h1, h2, h3, h4, h5, h6 = cal
    var1 = (adc_t / 16384.0 - t1 / 1024.0) * t2
    var2 = (adc_t / 131072.0 - t1 / 8192.0) * (adc_t / 131072.0 - t1 / 8192.0) * t3
    t_fine = var1 + var2
    t = t_fine / 5120.0
    var1 = t_fine / 2.0 - 64000.0
    var2 = var1 * var1 * p6 / 32768.0
    var2 = var2 + var1 * p5 * 2.0
    var2 = var2 / 4.0 + p4 * 65536.0
    var1 = (p3 * var1 * var1 / 524288.0 + p2 * var1) / 524288.0
    var1 = (1.0 + var1 / 32768.0) * p1
    p = 1048576.0 - adc_p
    p = (p - var2 / 4096.0) * 6250.0 / var1
    var1 = p9 * p * p / 2147483648.0
    var2 = p * p8 / 32768.0
    p = p + (var1 + var2 + p7) / 16.0
    h = t_fine - 76800.0
    h = (adc_h - (h4 * 64.0 + h5 / 16384.0 * h)) * (
        h2 / 65536.0 * (1.0 + h6 / 67108864.0 * h * (1.0 + h3 / 67108864.0 * h)))
    h = h * (1.0 - h1 * h / 524288.0)
    return t, p, min(100.0, max(0.0, h))


def test_bme280_compensation_matches_the_datasheet():
    m = BME280Model(0x76, CAL, ADC_T, ADC_P, ADC_H)
    bus = I2CBus(m)
    s = BME280(bus)
    t, h, p_hpa = _run(s.read())
    eq(s.temperature(ADC_T), (128422, 2508))  # the datasheet example: t_fine 128422, 25.08 °C
    rt, rp, rh = _float_reference(CAL, ADC_T, ADC_P, ADC_H)
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
