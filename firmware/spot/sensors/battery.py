# Battery voltage through the board's ADC pin and resistor divider (e.g. 100k/100k on a T-Beam's
# sense line: divider 2.0). ADC.read_uv() is the ESP32 port's calibrated reading in µV.
from spot.sensors import SensorError

SAMPLES = 8
# LiPo open-circuit voltage (mV) at 0, 10 ... 100 % charge, a typical single-cell curve
_CURVE = (3300, 3600, 3700, 3740, 3770, 3790, 3830, 3870, 3920, 3980, 4100)


class Battery:
    NAME = "battery"

    def __init__(self, adc, divider):
        if not divider >= 1:
            raise ValueError("battery divider must be >= 1")
        self.adc = adc
        self.divider = divider

    def millivolts(self):
        total = 0
        try:
            for _ in range(SAMPLES):
                total += self.adc.read_uv()
        except OSError as e:
            raise SensorError("bus", "battery: ADC read failed (%s)" % e)
        mv = int(total * self.divider / SAMPLES / 1000 + 0.5)
        if mv > 6000:
            raise SensorError("range", "battery: %d mV is not a single LiPo cell: check the divider" % mv)
        return mv

    async def read(self):
        """(volts, percent)."""
        mv = self.millivolts()
        return mv / 1000, percent(mv)


def percent(mv):
    if mv <= _CURVE[0]:
        return 0
    for i in range(1, len(_CURVE)):
        if mv <= _CURVE[i]:
            lo = _CURVE[i - 1]
            return (i - 1) * 10 + (mv - lo) * 10 // (_CURVE[i] - lo)
    return 100
