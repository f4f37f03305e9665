# Cayenne Low Power Payload (myDevices' LPP): each value is [channel][type][data], data big-endian
# with the type's fixed size and resolution. Values are added in priority order; when they do not
# all fit the data rate's payload limit they are split on value boundaries, in that order, into as
# many frames as needed (never cut inside a value); a value larger than the limit on its own is
# dropped and counted.
from micropython import const

DIGITAL_IN = const(0)
DIGITAL_OUT = const(1)
ANALOG_IN = const(2)
ANALOG_OUT = const(3)
ILLUMINANCE = const(101)
PRESENCE = const(102)
TEMPERATURE = const(103)
HUMIDITY = const(104)
BAROMETER = const(115)
GPS = const(136)

# type -> (data bytes, signed, steps per unit)
SIZES = {DIGITAL_IN: (1, False, 1), DIGITAL_OUT: (1, False, 1), ANALOG_IN: (2, True, 100),
         ANALOG_OUT: (2, True, 100), ILLUMINANCE: (2, False, 1), PRESENCE: (1, False, 1),
         TEMPERATURE: (2, True, 10), HUMIDITY: (1, False, 2), BAROMETER: (2, False, 10)}

MAX_ITEMS = const(24)


class LppError(ValueError):
    pass


def _int(value, scale):
    v = value * scale
    return int(v + 0.5) if v >= 0 else -int(-v + 0.5)


class Payload:
    """A reusable LPP buffer (242 bytes: the largest LoRaWAN application payload)."""

    def __init__(self, size=242):
        self.buf = bytearray(size)
        self.ends = bytearray(MAX_ITEMS)  # end offset of each value
        self.n = 0  # values
        self.len = 0  # bytes
        self.dropped = 0

    def clear(self):
        self.n = 0
        self.len = 0
        self.dropped = 0

    def _value(self, channel, kind, size):
        """Start a value: the offset of its data. Bytes past `len` are scratch until _commit, so a
        value refused half way changes nothing."""
        if not 0 <= channel <= 255:
            raise LppError("LPP channel must be 0..255, got %r" % (channel,))
        if self.len + 2 + size > len(self.buf) or self.n == MAX_ITEMS:
            raise LppError("LPP payload full")
        self.buf[self.len] = channel
        self.buf[self.len + 1] = kind
        return self.len + 2

    def _field(self, pos, raw, size, signed):
        bits = 8 * size
        lo, hi = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)
        if not lo <= raw <= hi:
            raise LppError("value out of range for its LPP type")
        raw &= (1 << bits) - 1
        for i in range(size):
            self.buf[pos + size - 1 - i] = (raw >> (8 * i)) & 0xFF
        return pos + size

    def _commit(self, end):
        self.len = end
        self.ends[self.n] = end
        self.n += 1

    def add(self, channel, kind, value):
        """A scalar value of one of the SIZES types, in its natural unit (°C, %RH, hPa, lux, V...)."""
        if kind not in SIZES:
            raise LppError("unknown LPP type %r" % (kind,))
        size, signed, scale = SIZES[kind]
        pos = self._value(channel, kind, size)
        self._commit(self._field(pos, _int(value, scale), size, signed))

    def temperature(self, channel, celsius):
        self.add(channel, TEMPERATURE, celsius)

    def humidity(self, channel, percent):
        self.add(channel, HUMIDITY, percent)

    def barometer(self, channel, hpa):
        self.add(channel, BAROMETER, hpa)

    def analog(self, channel, value):
        self.add(channel, ANALOG_IN, value)

    def digital(self, channel, value):
        self.add(channel, DIGITAL_IN, 1 if value else 0)

    def gps(self, channel, lat, lon, alt_m):
        """Latitude and longitude in degrees (0.0001° steps), altitude in metres (0.01 m steps)."""
        if not (-90 <= lat <= 90 and -180 <= lon <= 180):
            raise LppError("GPS position out of range")
        pos = self._value(channel, GPS, 9)
        pos = self._field(pos, _int(lat, 10000), 3, True)
        pos = self._field(pos, _int(lon, 10000), 3, True)
        self._commit(self._field(pos, _int(alt_m, 100), 3, True))

    def frames(self, limit):
        """The payload as frames of at most `limit` bytes, split between values in the order they
        were added. A value longer than `limit` is left out and counted in `dropped`."""
        out = []
        mv = memoryview(self.buf)
        start = 0
        first = 0  # start of the frame being filled
        for i in range(self.n):
            end = self.ends[i]
            if end - start > limit:
                if start > first:
                    out.append(mv[first:start])
                self.dropped += 1
                first = end
            elif end - first > limit:
                out.append(mv[first:start])
                first = start
            start = end
        if start > first:
            out.append(mv[first:start])
        return out
