# The virtual board's sensors, as the host asked for them (BoardOptions.hardware): a BME280 on the
# I2C bus, a GPS on a UART, a battery behind the ADC divider, a power chip. Values are plausible and
# seeded (a slow random walk per boot); each reading the firmware takes is told to the host
# ("sensor {json}" on the side channel) so tests can compare what a node sent with what it measured.
import json
import time

import _vhw
import _vside

CAL = (27504, 26435, -1000, 36477, -10685, 3024, 2855, 140, -7, 15500, -14600, 6000, 75, 362, 0, 313, 50, 30)
STATE = {"i2c": None, "uart": {}, "adc": {}, "speed": 1}


class _Rand:
    """A small LCG: the same values for the same seed on every run."""

    def __init__(self, seed):
        self.x = (seed * 2654435761 + 12345) & 0xFFFFFFFF

    def next(self, lo, hi):
        self.x = (self.x * 1103515245 + 12345) & 0x7FFFFFFF
        return lo + (self.x >> 8) % (hi - lo + 1)


def _tell(obj):
    _vside.tell(_vside.SENSOR, json.dumps(obj).encode())


class VirtualBME280(_vhw.BME280Model):
    def __init__(self, opts, rand):
        addr = opts.get("addr", 0x76)
        self.rand = rand
        # raw readings around 21 °C, 1005 hPa, 45 %RH with the datasheet's calibration
        self.raw = [500000 + rand.next(-8000, 8000), 415148 + rand.next(-3000, 3000), 28000 + rand.next(-2000, 2000)]
        super().__init__(addr, CAL, self.raw[0], self.raw[1], self.raw[2])

    def _measure(self, ctrl):
        r = self.rand
        self.raw[0] += r.next(-300, 300)
        self.raw[1] += r.next(-200, 200)
        self.raw[2] += r.next(-150, 150)
        self.adc = tuple(self.raw)
        super()._measure(ctrl)
        t, p, h = _vhw.bme280_reference(CAL, *self.raw)
        _tell({"name": "bme280", "temperature": t, "pressure_hpa": p / 100, "humidity": h})


class VirtualGPS(_vhw.UartModel):
    """Streams an RMC+GGA pair at the start of each UTC second along a track heading north-east.
    UTC is the host's at the board's start, carried on at the board's speed (as the board's own
    clock runs): at speed 1 the receiver's time is true UTC, as a GPS receiver's is."""

    def __init__(self, opts, rand):
        super().__init__()
        self.lat = opts.get("lat", 48.8584) + rand.next(0, 1000) / 1e6
        self.lon = opts.get("lon", 2.2945) + rand.next(0, 1000) / 1e6
        self.alt = opts.get("alt", 35.0)
        self.step = opts.get("step_deg", 0.00005)
        self.ttff_s = opts.get("ttff_s", 0)
        self.start = time.ticks_ms()
        self.wall0_ms = time.time_ns() // 1000000
        self.first = self.wall0_ms // 1000
        self.second = -1

    def _pump(self):
        sec = (self.wall0_ms + time.ticks_diff(time.ticks_ms(), self.start) * STATE["speed"]) // 1000
        if sec == self.second:
            return
        self.second = sec
        s = sec - self.first  # seconds since the receiver was powered
        fixed = s >= self.ttff_s
        lat, lon = self.lat + self.step * s, self.lon + self.step * s
        self.rx = self.rx[-256:]  # the UART buffer keeps only the latest bytes
        self.push(_vhw.fix_sentences(sec, lat, lon, self.alt, sats=9 if fixed else 2, quality=1 if fixed else 0))
        if fixed:
            _tell({"name": "gps", "lat": lat, "lon": lon, "alt": self.alt})

    def any(self):
        self._pump()
        return super().any()


class VirtualBattery(_vhw.AdcModel):
    def __init__(self, opts, divider, rand):
        self.mv = opts.get("mv", 4000) + rand.next(-50, 50)
        self.divider = divider
        super().__init__(0)

    def read_uv(self):
        self.uv = int(self.mv * 1000 / self.divider)
        _tell({"name": "battery", "volts": self.mv / 1000})
        return super().read_uv()


def setup(hw, speed):
    STATE["speed"] = speed
    rand = _Rand(hw.get("seed", 1) * 7919 + hw.get("boot", 0))
    bus = _vhw.I2CBus()
    if "bme280" in hw:
        dev = VirtualBME280(hw["bme280"], rand)
        bus.devices[dev.addr] = dev
    if "pmu" in hw:
        bus.devices[0x34] = _vhw.AXPModel(hw["pmu"].get("chip", "axp192"))
    bus.stuck = bool(hw.get("i2c_stuck"))  # SDA held low: every transfer times out
    STATE["i2c"] = bus
    if "gps" in hw:
        STATE["uart"][hw["gps"].get("uart", 1)] = VirtualGPS(hw["gps"], rand)
    if "battery" in hw:
        b = hw["battery"]
        STATE["adc"][b.get("pin", 35)] = VirtualBattery(b, b.get("divider", 2.0), rand)
