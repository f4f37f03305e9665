# Maxim DS18B20 1-Wire thermometer (datasheet 19-7487): Convert T (0x44), then Read Scratchpad
# (0xBE) gives 9 bytes whose last is the Dallas/Maxim CRC-8 (x^8+x^5+x^4+1, LSB first) of the
# first 8. The bus object is MicroPython's onewire.OneWire (reset, writebyte, readinto, select_rom).
import asyncio

from spot.sensors import SensorError

FAMILY = 0x28
_CONVERT = 0x44
_READ = 0xBE
_SKIP_ROM = 0xCC
_CONVERSION_MS = (94, 188, 375, 750)  # 9..12-bit resolution (config register bits 6:5)


def crc8_maxim(data):
    crc = 0
    for b in data:
        for _ in range(8):
            mix = (crc ^ b) & 1
            crc >>= 1
            if mix:
                crc ^= 0x8C
            b >>= 1
    return crc


class DS18B20:
    NAME = "ds18b20"

    def __init__(self, ow, rom=None):
        self.ow = ow
        self.rom = rom  # 8-byte ROM code; None: the only device on the bus (Skip ROM)
        self._buf = bytearray(9)

    def _address(self):
        if not self.ow.reset():
            raise SensorError("absent", "ds18b20: no presence pulse on the 1-Wire bus")
        if self.rom is None:
            self.ow.writebyte(_SKIP_ROM)
        else:
            self.ow.select_rom(self.rom)

    async def read(self):
        """Temperature in °C."""
        try:
            self._address()
            self.ow.writebyte(_CONVERT)
            await asyncio.sleep_ms(_CONVERSION_MS[3])
            self._address()
            self.ow.writebyte(_READ)
            self.ow.readinto(self._buf)
        except OSError as e:
            raise SensorError("bus", "ds18b20: 1-Wire bus error (%s)" % e)
        b = self._buf
        if not any(b):
            raise SensorError("bus", "ds18b20: the data line is held low (bus stuck)")
        if crc8_maxim(b[:8]) != b[8]:
            raise SensorError("crc", "ds18b20: scratchpad CRC mismatch")
        raw = b[0] | (b[1] << 8)
        if raw & 0x8000:
            raw -= 0x10000
        t = raw / 16
        if not -55 <= t <= 125:
            raise SensorError("range", "ds18b20: %.1f °C is outside -55..125" % t)
        return t


def scan(ow):
    """ROM codes of the DS18B20s on the bus whose ROM CRC is right."""
    return [bytes(r) for r in ow.scan() if r[0] == FAMILY and crc8_maxim(r[:7]) == r[7]]
