# Board power rails. LilyGO T-Beams feed the radio and the GPS from a power-management chip on I2C:
# AXP192 (v1.0/v1.1: LDO2 = radio, LDO3 = GPS; register 0x12 output enables, 0x28 LDO2/LDO3
# voltage, 1.8-3.3 V in 100 mV steps) or AXP2101 (v1.2: ALDO2 = radio, ALDO3 = GPS; register 0x90
# LDO enables, 0x93/0x94 ALDO2/ALDO3 voltage, 0.5-3.5 V in 100 mV steps). Both answer at 0x34 and
# tell themselves apart by the chip id in register 0x03. Heltec boards switch their external
# 3.3 V rail (OLED, sensors) with the Vext pin, active low.
from spot.sensors import SensorError, bus_error

CHIP_IDS = {0x03: "axp192", 0x4A: "axp2101"}
_AXP192_EN, _AXP192_V = 0x12, 0x28
_AXP2101_EN, _AXP2101_ALDO2, _AXP2101_ALDO3 = 0x90, 0x93, 0x94


class Pmu:
    def __init__(self, i2c, addr=0x34, expect=None):
        self.i2c = i2c
        self.addr = addr
        ident = self._get(0x03)
        self.chip = CHIP_IDS.get(ident)
        if self.chip is None or (expect and expect != self.chip):
            raise SensorError("id", "power chip at 0x%02x has id 0x%02x, not the profile's %s" % (addr, ident, expect))

    def _get(self, reg):
        try:
            return self.i2c.readfrom_mem(self.addr, reg, 1)[0]
        except OSError as e:
            raise bus_error("pmu", self.addr, e)

    def _set(self, reg, value):
        try:
            self.i2c.writeto_mem(self.addr, reg, bytes((value,)))
        except OSError as e:
            raise bus_error("pmu", self.addr, e)

    def rails(self, radio=True, gps=True, mv=3300):
        """Switch the radio and GPS supplies (at mv) on or off; other outputs are left as they are."""
        if self.chip == "axp192":
            step = (mv - 1800) // 100
            if not 0 <= step <= 15:
                raise ValueError("AXP192 LDO2/LDO3 give 1800..3300 mV")
            self._set(_AXP192_V, (step << 4) | step)
            en = self._get(_AXP192_EN) & ~0x0C
            self._set(_AXP192_EN, en | (0x04 if radio else 0) | (0x08 if gps else 0))
        else:
            step = (mv - 500) // 100
            if not 0 <= step <= 30:
                raise ValueError("AXP2101 ALDO2/ALDO3 give 500..3500 mV")
            self._set(_AXP2101_ALDO2, step)
            self._set(_AXP2101_ALDO3, step)
            en = self._get(_AXP2101_EN) & ~0x06
            self._set(_AXP2101_EN, en | (0x02 if radio else 0) | (0x04 if gps else 0))


def vext_level(active_low, on):
    """The pin level that switches a Vext-style rail on or off."""
    return (0 if on else 1) if active_low else (1 if on else 0)
