# Sensirion SHT3x-DIS humidity and temperature sensor (datasheet v7, sections 4.3-4.13): single-shot
# measurement with high repeatability and no clock stretching (0x2400), 6 bytes back, each 16-bit
# word followed by its CRC-8 (poly 0x31, init 0xFF).
import asyncio

from spot.sensors import SensorError, bus_error, crc8

ADDRESSES = (0x44, 0x45)
_MEASURE = b"\x24\x00"
_SOFT_RESET = b"\x30\xa2"


class SHT31:
    NAME = "sht31"

    def __init__(self, i2c, addr=0x44):
        self.i2c = i2c
        self.addr = addr
        self._buf = bytearray(6)

    def _word(self, pos):
        b = self._buf
        if crc8(b[pos : pos + 2], 0x31, 0xFF) != b[pos + 2]:
            raise SensorError("crc", "sht31: CRC mismatch in the %s word" % ("temperature" if pos == 0 else "humidity"))
        return (b[pos] << 8) | b[pos + 1]

    async def read(self):
        """(temperature °C, relative humidity %)."""
        try:
            self.i2c.writeto(self.addr, _MEASURE)
            await asyncio.sleep_ms(16)  # high repeatability: 15.5 ms at most
            self.i2c.readfrom_into(self.addr, self._buf)
        except OSError as e:
            raise bus_error(self.NAME, self.addr, e)
        t = self._word(0)
        h = self._word(3)
        return -45 + 175 * t / 65535, 100 * h / 65535

    def reset(self):
        try:
            self.i2c.writeto(self.addr, _SOFT_RESET)
        except OSError as e:
            raise bus_error(self.NAME, self.addr, e)
