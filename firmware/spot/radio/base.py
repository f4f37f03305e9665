# What every radio driver shares: validated settings, preallocated received packets, the IRQ
# front end and the deadline-based API (transmit_at, receive_window, continuous receive).
import asyncio

from micropython import const

from spot.clock import raw_ticks_us, ticks_add, ticks_diff
from spot.radio import PUBLIC_SYNC, RadioTimeout, airtime

MAX_PAYLOAD = const(255)
RING = const(4)  # received packets kept until the consumer takes them


class Packet:
    """One received frame in a buffer allocated once; fields are small ints (no heap per packet).
    snr is in quarter dB (snr_x4), t_us is the clock's ticks_us at RX-done."""

    def __init__(self):
        self.buf = bytearray(MAX_PAYLOAD)
        self.mv = memoryview(self.buf)
        self.length = 0
        self.rssi = 0
        self.snr_x4 = 0
        self.freq = 0
        self.sf = 0
        self.bw = 0
        self.cr = 0
        self.t_us = 0
        self.crc_ok = True

    def payload(self):
        return self.mv[: self.length]

    def snr(self):
        return self.snr_x4 / 4

    def settings(self, s):
        # one field per statement: a 4-way tuple assignment would allocate a tuple per packet
        self.freq = s.freq
        self.sf = s.sf
        self.bw = s.bw
        self.cr = s.cr


class Settings:
    """A LoRa configuration, checked against the chip, the board and the caller's limits."""

    def __init__(self):
        self.freq = 868100000
        self.sf = 7
        self.bw = 125000
        self.cr = 5
        self.preamble = 8
        self.sync = PUBLIC_SYNC
        self.iq_inverted = False
        self.crc = True
        self.power = 14
        self.implicit_len = 0  # 0: explicit header
        self.ldro = False


class IrqLine:
    """Interrupt front end for one chip output pin: the handler only stores the raw µs tick count and
    sets a ThreadSafeFlag (nothing is allocated in it)."""

    def __init__(self, pin):
        self.flag = asyncio.ThreadSafeFlag()
        self.raw_t = 0
        self.count = 0
        self.pin = pin
        if pin is not None:
            pin.irq(handler=self._isr, trigger=pin.IRQ_RISING)

    def _isr(self, _pin):
        self.raw_t = raw_ticks_us()
        self.count += 1
        self.flag.set()

    def clear(self):
        self.flag.clear()
        self.count = 0

    def fired(self):
        return self.count > 0 or (self.pin is not None and self.pin.value() == 1)


class Radio:
    """The interface used above the radio layer. Drivers implement the _hw_* methods."""

    CHIP = airtime.SX127X
    BW = {}
    rx_line = None  # type: IrqLine | None  # signals RX-done (interrupt-driven drivers)
    rx_en = None  # RF switch pins some boards need driven (profile radio.rf_switch)
    tx_en = None
    _rx_task = None
    keep_crc_errors = False  # continuous receive: deliver CRC-failed packets (crc_ok False) too
    MIN_SF = 6
    MIN_POWER = -4
    MAX_POWER = 20

    def __init__(self, clock, radio_profile):
        self.clock = clock
        self.profile = radio_profile
        band = radio_profile["band_mhz"]
        self.band = (int(band[0] * 1000000), int(band[1] * 1000000))
        self.max_power = radio_profile["max_power_dbm"]
        self.s = Settings()
        if not self.band[0] <= self.s.freq <= self.band[1]:
            self.s.freq = (self.band[0] + self.band[1]) // 2
        self.ring = []  # continuous receive's packets, made at its first start (a node never needs them)
        self.win_packet = Packet()  # a receive window's packet
        self.head = 0  # next packet the consumer takes
        self.count = 0  # packets waiting
        self.rx_event = asyncio.ThreadSafeFlag()
        self.receiving = False
        self.stats = {"rx": 0, "rx_crc": 0, "rx_overflow": 0, "rx_bad": 0, "tx": 0, "tx_late": 0, "timeouts": 0}

    # ---- configuration -------------------------------------------------------------------------
    def configure(self, freq=None, sf=None, bw=None, cr=None, preamble=None, sync=None, iq_inverted=None,
                  crc=None, power=None, max_power=None, implicit_len=None):
        """Change some settings (the rest stay). max_power is the caller's (region's) limit.
        Raises ValueError naming the setting when a value is out of range; nothing changes then."""
        s = self.s
        freq = s.freq if freq is None else freq
        sf = s.sf if sf is None else sf
        bw = s.bw if bw is None else bw
        cr = s.cr if cr is None else cr
        preamble = s.preamble if preamble is None else preamble
        sync = s.sync if sync is None else sync
        power = s.power if power is None else power
        implicit_len = s.implicit_len if implicit_len is None else implicit_len
        if not self.band[0] <= freq <= self.band[1]:
            raise ValueError("frequency %d Hz outside the board's band %d..%d Hz" % (freq, self.band[0], self.band[1]))
        if not self.MIN_SF <= sf <= 12:
            raise ValueError("spreading factor %d not supported by this chip (%d..12)" % (sf, self.MIN_SF))
        if bw not in self.BW:
            raise ValueError("bandwidth %r Hz not supported" % (bw,))
        if not 5 <= cr <= 8:
            raise ValueError("coding rate must be 5..8 (4/5..4/8), got %r" % (cr,))
        if not 6 <= preamble <= 65535:
            raise ValueError("preamble must be 6..65535 symbols")
        if not 0 <= sync <= 0xFF:
            raise ValueError("sync word must be one byte (0x34 public, 0x12 private)")
        if not 0 <= implicit_len <= MAX_PAYLOAD:
            raise ValueError("implicit header length must be 0..255")
        limit = self.max_power if max_power is None else min(self.max_power, max_power)
        if power > limit:
            raise ValueError("TX power %d dBm above the limit of %d dBm" % (power, limit))
        if power < self.MIN_POWER:
            raise ValueError("TX power %d dBm below the chip's minimum of %d dBm" % (power, self.MIN_POWER))
        if power > self.MAX_POWER:
            raise ValueError("TX power %d dBm above the chip's maximum of %d dBm" % (power, self.MAX_POWER))
        self._check(sf, implicit_len)
        s.freq, s.sf, s.bw, s.cr, s.preamble, s.sync, s.power = freq, sf, bw, cr, preamble, sync, power
        s.implicit_len = implicit_len
        if iq_inverted is not None:
            s.iq_inverted = bool(iq_inverted)
        if crc is not None:
            s.crc = bool(crc)
        s.ldro = airtime.ldro_needed(sf, bw)
        self._hw_configure()

    def _check(self, sf, implicit_len):
        pass

    def airtime_us(self, length):
        s = self.s
        return airtime.time_on_air_us(length, s.sf, s.bw, s.cr, s.preamble, s.implicit_len == 0, s.crc, s.ldro,
                                      self.CHIP)

    def symbols_us(self, n):
        return airtime.symbols_to_us(4 * n, self.s.sf, self.s.bw)

    # ---- transmit ------------------------------------------------------------------------------
    async def transmit_at(self, data, deadline=None):
        """Send data (1..255 bytes) when clock.ticks_us() reaches deadline (None: now).
        Returns (start_us, end_us) as the radio reported them. Continuous receive stops."""
        n = len(data)
        if not 1 <= n <= MAX_PAYLOAD:
            raise ValueError("payload must be 1..255 bytes, got %d" % n)
        if self.s.implicit_len and n != self.s.implicit_len:
            raise ValueError("implicit header mode expects %d bytes" % self.s.implicit_len)
        self.receiving = False
        start, end = await self._hw_transmit(data, deadline)
        self.stats["tx"] += 1
        if deadline is not None and ticks_diff(start, deadline) > 1000:
            self.stats["tx_late"] += 1
        return start, end

    # ---- receive -------------------------------------------------------------------------------
    def start_receive(self):
        """Listen continuously; packets queue in the ring (oldest kept, newest dropped when full)."""
        if not self.ring:
            self.ring = [Packet() for _ in range(RING)]
        self.receiving = True
        self._hw_receive()

    async def recv(self):
        """The next packet of continuous receive. The object is reused: copy what you keep
        before awaiting RING more packets."""
        while self.count == 0:
            await self.rx_event.wait()
        return self.take()

    def take(self):
        if self.count == 0:
            return None
        p = self.ring[self.head]
        self.head = (self.head + 1) % RING
        self.count -= 1
        return p

    def _slot(self):
        """The ring slot for the next packet, or None (counted) when the consumer is behind."""
        if self.count == RING:
            self.stats["rx_overflow"] += 1
            return None
        return self.ring[(self.head + self.count) % RING]

    def _commit(self, p):
        p.settings(self.s)
        self.count += 1
        self.stats["rx"] += 1
        self.rx_event.set()

    async def receive_window(self, start, symbols):
        """Open a single receive window at clock time start (ticks_us) that waits `symbols`
        symbols for a preamble (RX1/RX2 of Class A). Returns a Packet (a reused object) or None."""
        if not 1 <= symbols <= 1023:
            raise ValueError("window must be 1..1023 symbols")
        self.receiving = False
        return await self._hw_window(start, symbols)

    async def channel_rssi(self, duration_us=5000):
        """Listen on the configured channel for duration_us and return the strongest RSSI seen
        (dBm): listen-before-talk. Continuous receive stops."""
        if not 100 <= duration_us <= 1000000:
            raise ValueError("carrier sense of 100 µs .. 1 s")
        self.receiving = False
        return await self._hw_rssi(duration_us)

    def window_limit_us(self, symbols):
        """How long a window can last at most: its timeout plus a whole longest frame (the backstop
        when the chip never signals)."""
        return self.symbols_us(symbols) + self.airtime_us(MAX_PAYLOAD) + 50000

    def _finish_window(self, rx_done, flags, raw_t):
        """The window's packet (read by the driver's _read_packet) or None."""
        p = self.win_packet
        if rx_done and self._read_packet(p, flags, raw_t):
            p.settings(self.s)
            self.stats["rx"] += 1
            return p
        return None

    def _read_packet(self, p, flags, raw_t):
        raise NotImplementedError

    # ---- driver hooks --------------------------------------------------------------------------
    def _hw_configure(self):
        raise NotImplementedError

    async def _hw_transmit(self, data, deadline):
        raise NotImplementedError

    def _hw_receive(self):
        raise NotImplementedError

    async def _hw_window(self, start, symbols):
        raise NotImplementedError

    async def _hw_rssi(self, duration_us):
        raise NotImplementedError

    async def _sample_rssi(self, duration_us, read):
        """Sample read() (instantaneous RSSI, dBm) until duration_us passed; the maximum."""
        end = ticks_add(self.clock.ticks_us(), duration_us)
        best = -200
        while True:
            v = read()
            if v > best:
                best = v
            if ticks_diff(end, self.clock.ticks_us()) <= 0:
                return best
            await asyncio.sleep_ms(0)

    def standby(self):
        raise NotImplementedError

    def sleep(self):
        raise NotImplementedError

    # ---- helpers for interrupt-driven drivers ------------------------------------------------
    def _bus(self, spi, pins):
        """The SPI bus, chip select, reset and optional RF-switch pins of a real chip."""
        self.spi = spi
        self.nss = pins["nss"]
        self.rst = pins.get("reset")
        self.rx_en = pins.get("rx_en")
        self.tx_en = pins.get("tx_en")

    def _switch(self, tx):
        if self.tx_en is not None:
            self.tx_en.value(1 if tx else 0)
        if self.rx_en is not None:
            self.rx_en.value(0 if tx else 1)

    def _start_rx_task(self):
        self._cancel_rx()
        self._rx_task = asyncio.create_task(self._rx_loop())

    def _cancel_rx(self):
        if self._rx_task is not None:
            self._rx_task.cancel()
            self._rx_task = None

    async def _rx_loop(self):
        """Continuous receive: woken by the RX-done IRQ's flag, the driver's service() reads."""
        line = self.rx_line
        if line is None:
            return
        flag = line.flag
        while True:
            await flag.wait()
            self.service()

    def service(self):
        raise NotImplementedError

    async def _wait_irq(self, line, timeout_us, poll=None):
        """Wait until line's IRQ handler ran (or `poll`, a look at the chip's own flags, says done)
        or timeout_us of clock time passed. Checked every millisecond without allocating; the time
        stamp comes from the IRQ handler, so this latency does not blur it. `poll` also covers a
        board that leaves the pin unwired. Returns False on timeout."""
        end = ticks_add(self.clock.ticks_us(), timeout_us)
        while True:
            if line.fired() or (poll is not None and poll()):
                return True
            if ticks_diff(end, self.clock.ticks_us()) <= 0:
                self.stats["timeouts"] += 1
                return False
            await asyncio.sleep_ms(1)


def timeout_error(what):
    return RadioTimeout("%s: the radio never signalled completion (IRQ missing or chip hung)" % what)
