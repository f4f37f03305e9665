# Bosch BME280 pressure, temperature and humidity sensor (datasheet BST-BME280-DS002): chip id 0x60
# at 0xD0, calibration words at 0x88-0xA1 and 0xE1-0xE7, forced-mode measurement (ctrl_hum 0xF2,
# then ctrl_meas 0xF4, status 0xF3 bit 3 while measuring), data 0xF7-0xFE, and the datasheet's
# integer compensation (section 4.2.3: 32-bit temperature and humidity, 64-bit pressure).
import asyncio
import struct

from spot.sensors import SensorError, bus_error

ADDRESSES = (0x76, 0x77)
CHIP_ID = 0x60
_REG_ID = 0xD0
_REG_CALIB0 = 0x88
_REG_CALIB1 = 0xE1
_REG_CTRL_HUM = 0xF2
_REG_STATUS = 0xF3
_REG_CTRL_MEAS = 0xF4
_REG_DATA = 0xF7
_FORCED_X1 = 0x25  # osrs_t x1, osrs_p x1, forced mode
_HUM_X1 = 0x01


def _tdiv(a, b):
    """Integer division truncating toward zero, as C's."""
    q = abs(a) // abs(b)
    return q if (a < 0) == (b < 0) else -q


class BME280:
    NAME = "bme280"

    def __init__(self, i2c, addr=0x76):
        self.i2c = i2c
        self.addr = addr
        self.cal = None
        self._data = bytearray(8)

    def _read(self, reg, n):
        try:
            return self.i2c.readfrom_mem(self.addr, reg, n)
        except OSError as e:
            raise bus_error(self.NAME, self.addr, e)

    def _write(self, reg, value):
        try:
            self.i2c.writeto_mem(self.addr, reg, bytes((value,)))
        except OSError as e:
            raise bus_error(self.NAME, self.addr, e)

    def init(self):
        chip = self._read(_REG_ID, 1)[0]
        if chip != CHIP_ID:
            raise SensorError("id", "bme280 at 0x%02x: chip id 0x%02x, expected 0x60 (a BMP280 is 0x58)"
                              % (self.addr, chip))
        c0 = self._read(_REG_CALIB0, 26)
        c1 = self._read(_REG_CALIB1, 7)
        t1, t2, t3, p1, p2, p3, p4, p5, p6, p7, p8, p9 = struct.unpack("<HhhHhhhhhhhh", c0[:24])
        h1 = c0[25]
        h2 = struct.unpack("<h", c1[0:2])[0]
        h3 = c1[2]
        h4 = (c1[3] << 4) | (c1[4] & 0x0F)
        h5 = (c1[5] << 4) | (c1[4] >> 4)
        h4 = h4 - 4096 if h4 & 0x800 else h4  # 12-bit signed
        h5 = h5 - 4096 if h5 & 0x800 else h5
        h6 = c1[6] - 256 if c1[6] & 0x80 else c1[6]
        if t1 == 0 or p1 == 0:
            raise SensorError("bus", "bme280 at 0x%02x: calibration reads as zero (bus fault)" % self.addr)
        self.cal = (t1, t2, t3, p1, p2, p3, p4, p5, p6, p7, p8, p9, h1, h2, h3, h4, h5, h6)

    async def read(self):
        """(temperature °C, relative humidity %, pressure hPa) from one forced-mode measurement."""
        if self.cal is None:
            self.init()
        self._write(_REG_CTRL_HUM, _HUM_X1)  # takes effect with the ctrl_meas write that follows
        self._write(_REG_CTRL_MEAS, _FORCED_X1)
        for _ in range(50):
            await asyncio.sleep_ms(2)
            if not self._read(_REG_STATUS, 1)[0] & 0x08:
                break
        else:
            raise SensorError("bus", "bme280 at 0x%02x: measurement never finished" % self.addr)
        d = self._read(_REG_DATA, 8)
        adc_p = (d[0] << 12) | (d[1] << 4) | (d[2] >> 4)
        adc_t = (d[3] << 12) | (d[4] << 4) | (d[5] >> 4)
        adc_h = (d[6] << 8) | d[7]
        if adc_t == 0x80000 or adc_p == 0x80000:
            raise SensorError("range", "bme280: measurement skipped (reset values in the data registers)")
        t_fine, t = self.temperature(adc_t)
        return t / 100, self.humidity(adc_h, t_fine) / 1024, self.pressure(adc_p, t_fine) / 25600

    def temperature(self, adc_t):
        """(t_fine, temperature in 0.01 °C)."""
        t1, t2, t3 = self.cal[0], self.cal[1], self.cal[2]
        var1 = (((adc_t >> 3) - (t1 << 1)) * t2) >> 11
        var2 = (((((adc_t >> 4) - t1) * ((adc_t >> 4) - t1)) >> 12) * t3) >> 14
        t_fine = var1 + var2
        return t_fine, (t_fine * 5 + 128) >> 8

    def pressure(self, adc_p, t_fine):
        """Pressure in Pa as Q24.8 (Pa * 256); 0 when the calibration would divide by zero."""
        p1, p2, p3, p4, p5, p6, p7, p8, p9 = self.cal[3:12]
        var1 = t_fine - 128000
        var2 = var1 * var1 * p6
        var2 = var2 + ((var1 * p5) << 17)
        var2 = var2 + (p4 << 35)
        var1 = ((var1 * var1 * p3) >> 8) + ((var1 * p2) << 12)
        var1 = (((1 << 47) + var1) * p1) >> 33
        if var1 == 0:
            return 0
        p = 1048576 - adc_p
        p = _tdiv(((p << 31) - var2) * 3125, var1)
        var1 = (p9 * (p >> 13) * (p >> 13)) >> 25
        var2 = (p8 * p) >> 19
        return ((p + var1 + var2) >> 8) + (p7 << 4)

    def humidity(self, adc_h, t_fine):
        """Relative humidity in %RH as Q22.10 (% * 1024)."""
        h1, h2, h3, h4, h5, h6 = self.cal[12:18]
        v = t_fine - 76800
        v = ((((adc_h << 14) - (h4 << 20) - (h5 * v)) + 16384) >> 15) * (
            ((((((v * h6) >> 10) * (((v * h3) >> 11) + 32768)) >> 10) + 2097152) * h2 + 8192) >> 14)
        v = v - (((((v >> 15) * (v >> 15)) >> 7) * h1) >> 4)
        v = 0 if v < 0 else v
        v = 419430400 if v > 419430400 else v
        return v >> 12
