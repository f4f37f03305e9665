# The factory self-test (spot.selftest) against the chip and bus models: the SX1276 register model
# on a fake SPI bus, the I2C bus model with a BME280, a battery behind the ADC model. A healthy
# board passes; an absent radio, a noisy channel, a stuck I2C bus, a missing sensor and a low
# battery each fail their own check, and only it.
import asyncio

from fwtest import eq, fresh_flash

fresh_flash("/f")  # first, while the heap is in one piece (its 4 KB buffers)

from _vhw import AdcModel, BME280Model, I2CBus  # noqa: E402
from fakehw import FakeSPI  # noqa: E402
from nodefakes import Clock  # noqa: E402
from spot.clock import Clock as ChipClock  # noqa: E402
from spot.config import Config  # noqa: E402
from spot.radio.sx127x import SX127x  # noqa: E402
from spot.selftest import SelfTest  # noqa: E402
from sx1276_model import SX1276Model  # noqa: E402

# the BME280 datasheet's calibration example and raw readings (about 25 °C, 1006.5 hPa)
CAL = (27504, 26435, -1000, 36477, -10685, 3024, 2855, 140, -7, 15500, -14600, 6000, 75, 362, 0, 313, 50, 30)
RADIO = {"chip": "sx1276", "band_mhz": [862, 1020], "max_power_dbm": 20, "pa_boost": True}


class Board:
    def __init__(self, chip=None, bus=None, battery_mv=4000):
        self.chip = chip or SX1276Model()
        self.rssi_raw = 40  # RssiValue on a quiet channel: -157 + 40 = -117 dBm
        self.bus = bus if bus is not None else I2CBus(BME280Model(0x76, CAL, 519888, 415148, 28000))
        self.adc = AdcModel(battery_mv * 1000 // 2)
        self.profile = {"radio": RADIO, "i2c": {"sda": 21, "scl": 22}, "battery": {"adc_pin": 35, "divider": 2.0}}

    def radio(self, clock):
        m = self.chip
        r = SX127x(FakeSPI(m), m.pins(), ChipClock(), RADIO)  # resets the chip (and its registers)
        m.regs[0x1B] = self.rssi_raw
        return r

    def i2c(self):
        return self.bus

    def reserved_i2c(self):
        return []

    def battery_adc(self):
        return self.adc


class App:
    def __init__(self, board, sensors="bme280,battery"):
        self.config = Config("/f/config.json").load()
        self.config.set({"role": "idle", "sensors": sensors})
        self.board = board
        self.clock = Clock()
        self.test_boot = False
        self.safe_mode = False


def _run(board, sensors="bme280,battery"):
    t = SelfTest(App(board, sensors))
    t.scratch = "/f/selftest.tmp"
    r = asyncio.run(t.run({}))
    return r, {c["name"]: c for c in r["checks"]}


def test_a_healthy_board_passes_every_check():
    r, c = _run(Board())
    eq(r["ok"], True, r)
    eq(sorted(c), ["battery", "bme280", "filesystem", "heap", "i2c", "noise_floor", "radio"])
    eq(c["radio"]["detail"], "SX1276 (RegVersion 0x12), register read-back ok")
    eq(c["noise_floor"]["value"], -117)
    eq(c["i2c"]["detail"], "found 0x76")


def test_an_absent_radio_fails_the_radio_check_only():
    r, c = _run(Board(chip=SX1276Model(version=0x00)))
    eq(r["ok"], False)
    eq(c["radio"]["ok"], False)
    eq("RegVersion reads 0x00" in c["radio"]["detail"], True, c["radio"])
    eq("noise_floor" in c, False)  # nothing to listen with
    eq([n for n in c if not c[n]["ok"]], ["radio"])


def test_a_noisy_channel_fails_the_noise_floor():
    b = Board()
    b.rssi_raw = 100  # -57 dBm: interference, or a receiver fault
    r, c = _run(b)
    eq((r["ok"], c["noise_floor"]["ok"], c["noise_floor"]["value"]), (False, False, -57))


def test_a_stuck_i2c_bus_and_a_missing_sensor():
    b = Board()
    b.bus.stuck = True  # SDA held low: every transfer times out
    r, c = _run(b)
    eq((r["ok"], c["i2c"]["ok"], c["bme280"]["ok"]), (False, False, False))
    eq("bus stuck" in c["i2c"]["detail"], True, c["i2c"])
    r, c = _run(Board(bus=I2CBus()), "bme280,battery")  # nothing at 0x76
    eq((r["ok"], c["i2c"]["ok"], c["bme280"]["ok"]), (False, False, False))
    eq(c["i2c"]["detail"], "found nothing; missing 0x76")
    eq(c["radio"]["ok"] and c["battery"]["ok"] and c["filesystem"]["ok"], True)


def test_battery_low_fails_absent_is_reported():
    r, c = _run(Board(battery_mv=3100))
    eq((r["ok"], c["battery"]["ok"]), (False, False))
    eq("low" in c["battery"]["detail"], True, c["battery"])
    r, c = _run(Board(battery_mv=0))
    eq((r["ok"], c["battery"]["ok"]), (True, True))
    eq(c["battery"]["detail"].startswith("no cell"), True, c["battery"])
