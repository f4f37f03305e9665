# GPS receiver on a UART (NMEA 0183, as u-blox NEO-6M/M8N and ATGM336H send at 9600 baud): lines
# "$<talker><type>,...*HH\r\n" with an XOR checksum of the characters between '$' and '*'. RMC gives
# status (A valid, V void), position, speed and date; GGA gives fix quality (0 none, 1 GPS, 2 DGPS,
# 4/5 RTK, 6 dead reckoning), satellites, HDOP and altitude. Any talker (GP, GN, GL, GA, BD).
from spot.clock import ticks_diff
from spot.sensors import SensorError

MAX_LINE = 96  # NMEA allows 82 characters; longer lines are noise and are dropped


def checksum_ok(line):
    """line: bytes of one sentence without the line ending."""
    star = line.rfind(b"*")
    if not line.startswith(b"$") or star < 0 or len(line) - star != 3:
        return False
    c = 0
    for b in line[1:star]:
        c ^= b
    try:
        return c == int(line[star + 1 :], 16)
    except ValueError:
        return False


def _coord(value, hemi, deg_digits):
    if not value:
        return None
    deg = int(value[:deg_digits])
    minutes = float(value[deg_digits:])
    v = deg + minutes / 60
    return -v if hemi in (b"S", b"W") else v


class Fix:
    def __init__(self):
        self.lat = None  # type: float | None
        self.lon = None  # type: float | None
        self.alt = None  # type: float | None
        self.quality = 0  # GGA fix quality
        self.sats = 0
        self.hdop = None  # type: float | None
        self.valid = False  # RMC status A
        self.time = None  # b"hhmmss.ss"
        self.speed_kn = None  # type: float | None

    def usable(self):
        return self.valid and self.quality > 0 and self.lat is not None and self.alt is not None


class Nmea:
    """Feeds bytes, keeps the latest fix; counts sentences, checksum errors and dropped noise."""

    def __init__(self):
        self.fix = Fix()
        self._line = bytearray()
        self.sentences = 0
        self.bad_checksum = 0
        self.dropped = 0

    def feed(self, data):
        for b in data:
            if b == 0x24:  # '$' starts a sentence, whatever came before
                if self._line:
                    self.dropped += 1
                self._line = bytearray(b"$")
            elif b in (0x0A, 0x0D):
                if len(self._line) > 1:
                    self.sentence(bytes(self._line))
                self._line = bytearray()
            elif self._line:
                if len(self._line) >= MAX_LINE:
                    self.dropped += 1
                    self._line = bytearray()
                else:
                    self._line.append(b)

    def sentence(self, line):
        if not checksum_ok(line):
            self.bad_checksum += 1
            return
        self.sentences += 1
        f = line[1 : line.rfind(b"*")].split(b",")
        kind = f[0][2:]
        try:
            if kind == b"RMC" and len(f) >= 10:
                self.fix.time = f[1]
                self.fix.valid = f[2] == b"A"
                if self.fix.valid:
                    self.fix.lat = _coord(f[3], f[4], 2)
                    self.fix.lon = _coord(f[5], f[6], 3)
                    self.fix.speed_kn = float(f[7]) if f[7] else None
            elif kind == b"GGA" and len(f) >= 10:
                self.fix.quality = int(f[6] or b"0")
                self.fix.sats = int(f[7] or b"0")
                self.fix.hdop = float(f[8]) if f[8] else None
                if self.fix.quality:
                    self.fix.lat = _coord(f[2], f[3], 2)
                    self.fix.lon = _coord(f[4], f[5], 3)
                    self.fix.alt = float(f[9]) if f[9] else None
        except ValueError:
            self.bad_checksum += 1  # well-formed checksum over nonsense fields: treat as corrupt


class GPS:
    NAME = "gps"

    def __init__(self, uart, clock):
        self.uart = uart
        self.clock = clock
        self.nmea = Nmea()
        self._buf = bytearray(128)

    async def read(self, timeout_ms=5000):
        """(lat, lon, alt m) of a fresh fix: waits for the next valid RMC+GGA pair."""
        n = self.nmea
        n.fix = Fix()
        before = n.sentences
        start = self.clock.ticks_ms()
        while ticks_diff(self.clock.ticks_ms(), start) < timeout_ms:
            got = False
            while self.uart.any():  # drain what is buffered: the newest sentences win
                k = self.uart.readinto(self._buf)
                if not k:
                    break
                n.feed(memoryview(self._buf)[:k])
                got = True
            if got and n.fix.usable():
                f = n.fix
                return f.lat, f.lon, f.alt
            await self.clock.sleep_ms(50)
        if n.sentences == before:
            if n.bad_checksum:
                raise SensorError("crc", "gps: every NMEA sentence failed its checksum")
            raise SensorError("absent", "gps: no NMEA sentences on the UART")
        raise SensorError("nofix", "gps: no position fix yet (%d satellites)" % n.fix.sats)
