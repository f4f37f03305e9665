# Aosong AHT20 humidity and temperature sensor (datasheet v1.1, section 5.4): status via 0x71,
# calibration (bit 3) loaded with 0xBE 0x08 0x00 when missing, measurement triggered by
# 0xAC 0x33 0x00, 7 bytes back (status, 20-bit humidity, 20-bit temperature, CRC-8 0x31/0xFF).
import asyncio

from spot.sensors import SensorError, bus_error, crc8

ADDRESS = 0x38
_STATUS = b"\x71"
_INIT = b"\xbe\x08\x00"
_TRIGGER = b"\xac\x33\x00"


class AHT20:
    NAME = "aht20"

    def __init__(self, i2c, addr=ADDRESS):
        self.i2c = i2c
        self.addr = addr
        self._buf = bytearray(7)

    async def read(self):
        """(temperature °C, relative humidity %)."""
        b = self._buf
        try:
            self.i2c.writeto(self.addr, _STATUS)
            if not self.i2c.readfrom(self.addr, 1)[0] & 0x08:  # not calibrated yet
                self.i2c.writeto(self.addr, _INIT)
                await asyncio.sleep_ms(10)
            self.i2c.writeto(self.addr, _TRIGGER)
            for i in range(10):
                await asyncio.sleep_ms(10 if i else 80)  # 80 ms per the datasheet, then polls
                self.i2c.readfrom_into(self.addr, b)
                if not b[0] & 0x80:  # busy bit clear
                    break
            else:
                raise SensorError("bus", "aht20: measurement never finished")
        except OSError as e:
            raise bus_error(self.NAME, self.addr, e)
        if crc8(b[:6], 0x31, 0xFF) != b[6]:
            raise SensorError("crc", "aht20: CRC mismatch")
        hum = (b[1] << 12) | (b[2] << 4) | (b[3] >> 4)
        temp = ((b[3] & 0x0F) << 16) | (b[4] << 8) | b[5]
        return temp * 200 / 1048576 - 50, hum * 100 / 1048576
