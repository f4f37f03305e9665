# UTC from the board's GPS receiver, for a hotspot that keeps receipts on a board with one (the
# T-Beam): each valid RMC sentence (NMEA 0183: time hhmmss.ss, status A, date ddmmyy) sets the
# hotspot's UTC at the moment its line is read, and NTP does not move it while GPS time is fresh.
# Without the receiver's PPS pin wired the sentence of a second comes some hundreds of ms after
# that second began, and the UART is read every POLL_MS: GPS time here is good to a second
# (loraspot.proofs.witness holds two GPS-timed hotspots to GPS_TIME_TOLERANCE_MS), NTP's to several.
from spot.clock import ticks_diff

FRESH_MS = 10000  # GPS time not renewed for this long (no fix, no line) is no longer GPS time
POLL_MS = 100
MAX_LINE = 96


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
    star = line.rfind(b"*")
    if not line.startswith(b"$") or star < 0 or len(line) - star != 3:
        return None
    c = 0
    for b in line[1:star]:
        c ^= b
    f = line[1:star].split(b",")
    try:
        if c != int(line[star + 1 :], 16) or f[0][2:] != b"RMC" or len(f) < 10 or f[2] != b"A":
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
