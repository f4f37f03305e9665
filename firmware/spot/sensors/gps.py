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

# ---- a hotspot's time -------------------------------------------------------------------------
# UTC from the board's GPS receiver, for a hotspot that keeps receipts on a board with one (the
# T-Beam): each valid RMC sentence (NMEA 0183: time hhmmss.ss, status A, date ddmmyy) sets the
# hotspot's UTC at the moment its line is read, and NTP does not move it while GPS time is fresh.
# Without the receiver's PPS pin wired the sentence of a second comes some hundreds of ms after
# that second began, and the UART is read every POLL_MS: GPS time here is good to a second
# (loraspot.proofs.witness holds two GPS-timed hotspots to GPS_TIME_TOLERANCE_MS), NTP's to several.
# Here beside the node's driver: one NMEA checksum, and no file more in every board's image (one
# more tipped the MQTT hotspot on ROMFS at its heap budget into a MemoryError, measured).
FRESH_MS = 10000  # GPS time not renewed for this long (no fix, no line) is no longer GPS time
POLL_MS = 100


def _days(y, m, d):
    """Days from 1970-01-01 to a date of the Gregorian calendar."""
    if m <= 2:
        y -= 1
    era = y // 400
    yoe = y - era * 400
    doy = (153 * (m - 3 if m > 2 else m + 9) + 2) // 5 + d - 1
    return era * 146097 + yoe * 365 + yoe // 4 - yoe // 100 + doy - 719468


def rmc_ns(line, epoch_s=0):
    """The UTC of a valid RMC sentence (bytes without the line end), in ns since the port's epoch
    (epoch_s: its Unix seconds, spot.hotspot.chain.EPOCH_S); None for any other sentence, a bad
    checksum or no fix."""
    if not checksum_ok(line):
        return None
    f = line[1 : line.rfind(b"*")].split(b",")
    try:
        if f[0][2:] != b"RMC" or len(f) < 10 or f[2] != b"A":
            return None
        t, day = f[1], f[9]
        if len(t) < 6 or len(day) != 6:
            return None
        sec = (_days(2000 + int(day[4:6]), int(day[2:4]), int(day[0:2])) * 86400 + int(t[0:2]) * 3600
               + int(t[2:4]) * 60 + int(t[4:6]) - epoch_s)
        frac = int((t[7:] + b"000")[:3]) if len(t) > 7 else 0
    except ValueError:
        return None
    return (sec * 1000 + frac) * 1000000


class GpsTime:
    """Reads the receiver's sentences on a task; `fresh()` says whether the hotspot's UTC is GPS
    time now. The hotspot's Utc.sync (what NTP calls) leaves a fresh GPS time alone."""

    def __init__(self, hs, uart, clock, epoch_s=0):
        self.epoch_s = epoch_s
        self.uart = uart
        self.clock = clock
        self.at = None  # clock ms of the last sync from GPS
        self.syncs = 0
        self._pending = b""
        self._set = ntp = hs.utc.sync

        def sync(ns=None):
            return True if self.fresh() else ntp(ns)

        hs.utc.sync = sync

    def fresh(self):
        return self.at is not None and ticks_diff(self.clock.ticks_ms(), self.at) < FRESH_MS

    def line(self, line):
        ns = rmc_ns(line, self.epoch_s)
        if ns is not None and self._set(ns):
            self.at = self.clock.ticks_ms()
            self.syncs += 1

    def feed(self, data):
        """Bytes from the UART: each whole line, from its last '$' on, is looked at."""
        pending = self._pending + data
        while True:
            end = pending.find(b"\n")
            if end < 0:
                break
            start = pending.rfind(b"$", 0, end)
            if start >= 0:
                self.line(pending[start:end].strip())
            pending = pending[end + 1 :]
        if len(pending) > MAX_LINE:  # noise without a line end: kept from its last '$' on
            start = pending.rfind(b"$")
            pending = pending[start:] if 0 <= start and len(pending) - start <= MAX_LINE else b""
        self._pending = pending

    async def run(self):
        buf = bytearray(128)
        while True:
            n = self.uart.any() and self.uart.readinto(buf)
            if n:
                self.feed(bytes(buf[:n]))
            await self.clock.sleep_ms(POLL_MS)
