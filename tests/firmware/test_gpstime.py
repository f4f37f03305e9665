# A hotspot's GPS time (spot.sensors.gps): the UTC of an RMC sentence against the port's own
# calendar (time.gmtime), every other sentence refused; GPS time sets the hotspot's UTC as lines
# come from the UART, and NTP does not move it while it is fresh, but does once it is stale.
import asyncio

from _vhw import UartModel, fix_sentences, nmea
from fwtest import eq
from spot.clock import MASK, Clock
from spot.hotspot.core import Utc
from spot.sensors.gps import FRESH_MS, POLL_MS, GpsTime, rmc_ns


def _sentence(unix_s, status="A"):
    rmc = fix_sentences(unix_s, 52.0, 5.0, 10.0)  # its date too
    rmc = rmc[: rmc.index(b"\r\n")]
    if status != "A":
        body = rmc[1 : rmc.rindex(b"*")].replace(b",A,", b",%s," % status.encode(), 1)
        rmc = nmea(body.decode())[:-2]
    return rmc


def test_an_rmc_sentence_gives_its_utc_as_the_calendar_counts_it():
    # every 37th day from 2000 to 2054 (leap years, century rules), checked by the port's gmtime
    for day in range(0, 20000, 37):
        unix_s = 946684800 + day * 86400 + 3723 + day % 3600
        eq(rmc_ns(_sentence(unix_s)), unix_s * 1000000000)
    eq(rmc_ns(_sentence(1796612281)), 1796612281 * 1000000000)  # 2026-12-07 02:58:01 UTC (Python's calendar.timegm)
    eq(rmc_ns(_sentence(1796612281), 946684800), (1796612281 - 946684800) * 1000000000)  # the ESP32 port's epoch: 2000


def test_other_sentences_and_no_fix_are_not_time():
    good = _sentence(1796612281)
    eq(rmc_ns(_sentence(1796612281, status="V")), None)  # the receiver has no fix: its clock is a guess
    eq(rmc_ns(good[:-1] + (b"0" if good[-1:] != b"0" else b"1")), None)  # checksum
    eq(rmc_ns(fix_sentences(100, 1.0, 2.0, 3.0).split(b"\r\n")[1]), None)  # GGA has no date
    eq(rmc_ns(b"$GPRMC*00"), None)
    eq(rmc_ns(nmea("GPRMC,025801.00,A,5200.0000,N,00500.0000,E,0.5,54.7,,,,A")[:-2]), None)  # no date
    eq(rmc_ns(nmea("GPRMC,02xx01.00,A,5200.0000,N,00500.0000,E,0.5,54.7,071226,,,A")[:-2]), None)
    eq(rmc_ns(b""), None)


class _Src:
    def __init__(self):
        self.us = 0

    def __call__(self):
        return self.us & MASK


class _Stop(Exception):
    pass


def _world(polls=None):
    src = _Src()
    clock = Clock(us_source=src, ms_source=lambda: src.us // 1000)
    left = [polls]

    async def sleep_ms(ms):
        src.us += ms * 1000
        await asyncio.sleep_ms(0)
        if left[0] is not None:
            left[0] -= 1
            if left[0] <= 0:
                raise _Stop()

    clock.sleep_ms = sleep_ms

    class Hs:
        utc = Utc(clock)

    return src, clock, Hs()


def test_gps_time_holds_against_ntp_while_fresh():
    src, clock, hs = _world()
    g = GpsTime(hs, UartModel(), clock)
    eq(g.fresh(), False)
    g.line(_sentence(1796612281))
    eq((g.fresh(), g.syncs, hs.utc.seconds_at(clock.ticks_us())), (True, 1, (1796612281, 0)))
    src.us += 400000
    eq(hs.utc.sync(1796612300 * 1000000000), True)  # NTP says otherwise: GPS time stays
    eq(hs.utc.seconds_at(clock.ticks_us()), (1796612281, 400000))
    src.us += FRESH_MS * 1000  # no sentence since: stale
    eq(g.fresh(), False)
    eq(hs.utc.sync(1796612300 * 1000000000), True)
    eq(hs.utc.seconds_at(clock.ticks_us()), (1796612300, 0))


def test_sentences_read_from_the_uart_set_the_time():
    src, clock, hs = _world(polls=6)
    uart = UartModel()
    a, b = _sentence(1796612281) + b"\r\n", _sentence(1796612282) + b"\r\n"
    junk = b"$GPGSV,1,1,00*79\r\n" + b"x" * 200  # a sentence of another kind, then noise without a line end
    uart.push(junk + a[:20])  # a line cut by the read: whole on the next one
    task = GpsTime(hs, uart, clock)

    async def main():
        try:
            await asyncio.gather(task.run(), feed())
        except _Stop:
            pass

    async def feed():
        await asyncio.sleep_ms(0)
        uart.push(a[20:] + b)

    asyncio.run(main())
    eq(task.syncs, 2)
    eq(task.fresh(), True)
    sec, us = hs.utc.seconds_at(clock.ticks_us())
    eq(sec, 1796612282)  # the last sentence's second, carried on by the clock since it was read
    eq(us < 6 * POLL_MS * 1000, True)
