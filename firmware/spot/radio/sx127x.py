# SX1276/77/78/79 (and RFM95/96/98) LoRa driver at register level, after the Semtech SX1276
# datasheet rev. 7 (register map chapter 6.4, RSSI/SNR in 5.5.5, errata note 2.1).
import time

from micropython import const

from spot.radio import BW_SX127X, RadioError, airtime
from spot.radio.base import IrqLine, Radio, timeout_error

_REG_FIFO = const(0x00)
_REG_OP_MODE = const(0x01)
_REG_FRF_MSB = const(0x06)
_REG_PA_CONFIG = const(0x09)
_REG_OCP = const(0x0B)
_REG_LNA = const(0x0C)
_REG_FIFO_ADDR_PTR = const(0x0D)
_REG_FIFO_TX_BASE = const(0x0E)
_REG_FIFO_RX_BASE = const(0x0F)
_REG_FIFO_RX_CURRENT = const(0x10)
_REG_IRQ_FLAGS_MASK = const(0x11)
_REG_IRQ_FLAGS = const(0x12)
_REG_RX_NB_BYTES = const(0x13)
_REG_PKT_SNR = const(0x19)
_REG_PKT_RSSI = const(0x1A)
_REG_RSSI_VALUE = const(0x1B)
_REG_HOP_CHANNEL = const(0x1C)
_REG_MODEM_CONFIG1 = const(0x1D)
_REG_MODEM_CONFIG2 = const(0x1E)
_REG_SYMB_TIMEOUT_LSB = const(0x1F)
_REG_PREAMBLE_MSB = const(0x20)
_REG_PAYLOAD_LENGTH = const(0x22)
_REG_MAX_PAYLOAD = const(0x23)
_REG_MODEM_CONFIG3 = const(0x26)
_REG_DETECT_OPTIMIZE = const(0x31)
_REG_INVERT_IQ = const(0x33)
_REG_HIGH_BW_OPT1 = const(0x36)
_REG_DETECTION_THRESHOLD = const(0x37)
_REG_SYNC_WORD = const(0x39)
_REG_HIGH_BW_OPT2 = const(0x3A)
_REG_INVERT_IQ2 = const(0x3B)
_REG_DIO_MAPPING1 = const(0x40)
_REG_VERSION = const(0x42)
_REG_PA_DAC = const(0x4D)

_LONG_RANGE = const(0x80)
_LOW_FREQ = const(0x08)
_MODE_SLEEP = const(0)
_MODE_STDBY = const(1)
_MODE_TX = const(3)
_MODE_RX_CONT = const(5)
_MODE_RX_SINGLE = const(6)

_IRQ_RX_TIMEOUT = const(0x80)
_IRQ_RX_DONE = const(0x40)
_IRQ_CRC_ERROR = const(0x20)
_IRQ_TX_DONE = const(0x08)

_DIO0_RX_DONE = const(0x00)  # RegDioMapping1 bits 7:6 = 00, DIO1 (5:4) = 00 RxTimeout
_DIO0_TX_DONE = const(0x40)

_VERSION = const(0x12)
_CHIPS = {0x22: "SX1272/73", 0x11: "an early SX1276 engineering sample"}


class SX127x(Radio):
    CHIP = airtime.SX127X
    BW = BW_SX127X
    MIN_SF = 6

    def __init__(self, spi, pins, clock, radio_profile):
        super().__init__(clock, radio_profile)
        self._bus(spi, pins)
        self.dio0 = self.rx_line = IrqLine(pins["dio0"])
        self.dio1 = IrqLine(pins["dio1"]) if pins.get("dio1") is not None else None
        self.pa_boost = radio_profile.get("pa_boost", True)
        self.MIN_POWER = 2 if self.pa_boost else 0
        self.MAX_POWER = 20 if self.pa_boost else 14
        self._w = bytearray(2)
        self._r = bytearray(2)
        self._a = bytearray(1)
        self._rx_task = None
        self._lf = 0
        self.nss.value(1)
        self.reset()
        self._init()

    # ---- SPI --------------------------------------------------------------------------------
    def read(self, reg):
        w = self._w
        w[0] = reg & 0x7F
        w[1] = 0
        self.nss.value(0)
        self.spi.write_readinto(w, self._r)
        self.nss.value(1)
        return self._r[1]

    def write(self, reg, value):
        w = self._w
        w[0] = reg | 0x80
        w[1] = value
        self.nss.value(0)
        self.spi.write(w)
        self.nss.value(1)

    def _fifo_write(self, data):
        self._a[0] = _REG_FIFO | 0x80
        self.nss.value(0)
        self.spi.write(self._a)
        self.spi.write(data)
        self.nss.value(1)

    def _fifo_read(self, buf):
        # reads the whole buffer (bytes past the packet are the FIFO's next ones): no slice, no heap
        self._a[0] = _REG_FIFO
        self.nss.value(0)
        self.spi.write(self._a)
        self.spi.readinto(buf, 0)
        self.nss.value(1)

    # ---- start-up ---------------------------------------------------------------------------
    def reset(self):
        if self.rst is not None:
            self.rst.value(0)
            time.sleep_us(200)  # > 100 µs (datasheet 7.2.2)
            self.rst.value(1)
            time.sleep_ms(6)  # ready 5 ms after reset

    def _init(self):
        v = self.read(_REG_VERSION)
        if v != _VERSION:
            if v in (0x00, 0xFF):
                raise RadioError("no SX127x answering on SPI (RegVersion reads 0x%02x): check the wiring and "
                                 "the board profile's radio pins" % v)
            raise RadioError("radio is not an SX1276/77/78/79 (RegVersion 0x%02x, %s expected 0x12)"
                             % (v, _CHIPS.get(v, "unknown chip;")))
        self._mode(_MODE_SLEEP, lora=False)
        self._mode(_MODE_SLEEP)  # LongRangeMode can only change in sleep
        self._mode(_MODE_STDBY)
        self.write(_REG_FIFO_TX_BASE, 0)
        self.write(_REG_FIFO_RX_BASE, 0)
        self.write(_REG_MAX_PAYLOAD, 0xFF)
        self.write(_REG_IRQ_FLAGS_MASK, 0)
        self.write(_REG_LNA, self.read(_REG_LNA) | 0x03)  # LNA boost for the HF port
        self.configure()

    def _mode(self, mode, lora=True):
        value = (_LONG_RANGE if lora else 0) | self._lf | mode
        self.write(_REG_OP_MODE, value)
        got = self.read(_REG_OP_MODE)
        if got != value:
            raise RadioError("SX127x does not follow: RegOpMode reads 0x%02x after writing 0x%02x (SPI garbage, "
                             "chip in reset or power lost)" % (got, value))

    # ---- configuration ------------------------------------------------------------------------
    def _check(self, sf, implicit_len):
        if sf == 6 and not implicit_len:
            raise ValueError("SF6 on SX127x needs implicit header mode (implicit_len)")

    def _hw_configure(self):
        s = self.s
        self._cancel_rx()
        self._lf = _LOW_FREQ if s.freq < 525000000 else 0
        self._mode(_MODE_SLEEP)  # the band (LowFrequencyModeOn) is switched in sleep
        self._mode(_MODE_STDBY)
        # Frf = freq * 2^19 / 32 MHz = freq * 256 / 15625, kept in small ints
        q, r = divmod(s.freq, 15625)
        frf = (q << 8) + ((r << 8) + 7812) // 15625
        self.write(_REG_FRF_MSB, frf >> 16)
        self.write(_REG_FRF_MSB + 1, (frf >> 8) & 0xFF)
        self.write(_REG_FRF_MSB + 2, frf & 0xFF)
        self.write(_REG_MODEM_CONFIG1, (self.BW[s.bw] << 4) | ((s.cr - 4) << 1) | (1 if s.implicit_len else 0))
        self.write(_REG_MODEM_CONFIG2, (s.sf << 4) | (0x04 if s.crc else 0))
        self.write(_REG_MODEM_CONFIG3, (0x08 if s.ldro else 0) | 0x04)  # AgcAutoOn
        self.write(_REG_PREAMBLE_MSB, s.preamble >> 8)
        self.write(_REG_PREAMBLE_MSB + 1, s.preamble & 0xFF)
        self.write(_REG_SYNC_WORD, s.sync)
        if s.implicit_len:
            self.write(_REG_PAYLOAD_LENGTH, s.implicit_len)
        opt = self.read(_REG_DETECT_OPTIMIZE) & 0xF8
        self.write(_REG_DETECT_OPTIMIZE, opt | (0x05 if s.sf == 6 else 0x03))
        self.write(_REG_DETECTION_THRESHOLD, 0x0C if s.sf == 6 else 0x0A)
        # errata 2.1: receiver sensitivity at 500 kHz
        if s.bw == 500000:
            self.write(_REG_HIGH_BW_OPT1, 0x02)
            self.write(_REG_HIGH_BW_OPT2, 0x64 if not self._lf else 0x7F)
        else:
            self.write(_REG_HIGH_BW_OPT1, 0x03)
        self._power(s.power)

    def _power(self, dbm):
        if self.pa_boost:
            if dbm > 17:
                self.write(_REG_PA_DAC, 0x87)  # +20 dBm option: Pout = 5 + OutputPower
                self.write(_REG_PA_CONFIG, 0x80 | 0x70 | (dbm - 5))
                self.write(_REG_OCP, 0x20 | 17)  # 140 mA
            else:
                self.write(_REG_PA_DAC, 0x84)
                self.write(_REG_PA_CONFIG, 0x80 | 0x70 | (dbm - 2))  # Pout = 2 + OutputPower
                self.write(_REG_OCP, 0x20 | 11)  # 100 mA
        else:
            self.write(_REG_PA_DAC, 0x84)
            self.write(_REG_PA_CONFIG, 0x70 | dbm)  # RFO, MaxPower 7 (Pmax 15 dBm): Pout = OutputPower
            self.write(_REG_OCP, 0x20 | 11)

    def _iq(self, tx):
        v = self.read(_REG_INVERT_IQ) & 0xBE
        if self.s.iq_inverted:
            v |= 0x00 if tx else 0x41  # bit 6: invert RX; bit 0 cleared: invert TX
            self.write(_REG_INVERT_IQ, v)
            self.write(_REG_INVERT_IQ2, 0x19)
        else:
            self.write(_REG_INVERT_IQ, v | 0x01)
            self.write(_REG_INVERT_IQ2, 0x1D)

    def standby(self):
        self._cancel_rx()
        self.receiving = False
        self._mode(_MODE_STDBY)
        self.write(_REG_IRQ_FLAGS, 0xFF)

    def sleep(self):
        self.standby()
        self._mode(_MODE_SLEEP)
        if self.tx_en is not None:
            self.tx_en.value(0)
        if self.rx_en is not None:
            self.rx_en.value(0)

    # ---- transmit -----------------------------------------------------------------------------
    async def _hw_transmit(self, data, deadline):
        self.standby()
        self._iq(True)
        self.write(_REG_FIFO_ADDR_PTR, 0)
        self._fifo_write(data)
        self.write(_REG_PAYLOAD_LENGTH, len(data))
        self.write(_REG_DIO_MAPPING1, _DIO0_TX_DONE)
        self.write(_REG_IRQ_FLAGS, 0xFF)
        self._switch(True)
        self.dio0.clear()
        if deadline is not None:
            await self.clock.sleep_until_us(deadline)
        start = self.clock.ticks_us()
        self.write(_REG_OP_MODE, _LONG_RANGE | self._lf | _MODE_TX)
        ok = await self._wait_irq(self.dio0, self.airtime_us(len(data)) + 100000, self._tx_polled)
        if not ok:
            self._recover()
            raise timeout_error("transmit")
        end = self.clock.from_raw_us(self.dio0.raw_t) if self.dio0.count else self.clock.ticks_us()
        self.write(_REG_IRQ_FLAGS, 0xFF)
        self._switch(False)
        return start, end

    def _tx_polled(self):
        return self.read(_REG_IRQ_FLAGS) & _IRQ_TX_DONE != 0

    def _recover(self):
        """After a missing IRQ: back to standby with flags cleared, settings reapplied."""
        try:
            self.write(_REG_IRQ_FLAGS, 0xFF)
            self._mode(_MODE_STDBY)
            self._hw_configure()
        except RadioError:
            self.reset()
            self._init()

    # ---- continuous receive -------------------------------------------------------------------
    def _hw_receive(self):
        self._cancel_rx()
        self._mode(_MODE_STDBY)
        self._iq(False)
        self._switch(False)
        self.write(_REG_FIFO_ADDR_PTR, 0)
        self.write(_REG_DIO_MAPPING1, _DIO0_RX_DONE)
        self.write(_REG_IRQ_FLAGS, 0xFF)
        self.dio0.clear()
        self.write(_REG_OP_MODE, _LONG_RANGE | self._lf | _MODE_RX_CONT)
        self._start_rx_task()

    def service(self):
        """Handle a DIO0 interrupt in continuous receive (no heap allocation)."""
        while self.dio0.count:
            self.dio0.count = 0
            flags = self.read(_REG_IRQ_FLAGS)
            self.write(_REG_IRQ_FLAGS, flags)
            if flags & _IRQ_RX_DONE:
                p = self._slot()
                if p is not None and self._read_packet(p, flags, self.dio0.raw_t):
                    self._commit(p)

    def _read_packet(self, p, flags, raw_t):
        if flags & _IRQ_CRC_ERROR:
            self.stats["rx_crc"] += 1
            if not self.keep_crc_errors:
                return False
        n = self.read(_REG_RX_NB_BYTES)
        if n == 0:
            self.stats["rx_bad"] += 1
            return False
        self.write(_REG_FIFO_ADDR_PTR, self.read(_REG_FIFO_RX_CURRENT))
        self._fifo_read(p.buf)
        p.length = n
        snr = self.read(_REG_PKT_SNR)
        if snr > 127:
            snr -= 256
        raw = self.read(_REG_PKT_RSSI)
        base = -164 if self._lf else -157
        # datasheet 5.5.5: slope-corrected for SNR >= 0, noise-corrected below
        p.rssi = base + (16 * raw) // 15 if snr >= 0 else base + raw + (snr >> 2)
        p.snr_x4 = snr
        p.crc_ok = not flags & _IRQ_CRC_ERROR
        p.t_us = self.clock.from_raw_us(raw_t)
        return True

    # ---- listen before talk -------------------------------------------------------------------
    async def _hw_rssi(self, duration_us):
        self.standby()
        self._iq(False)
        self._switch(False)
        self.write(_REG_OP_MODE, _LONG_RANGE | self._lf | _MODE_RX_CONT)
        base = -164 if self._lf else -157
        try:
            return await self._sample_rssi(duration_us, lambda: base + self.read(_REG_RSSI_VALUE))
        finally:
            self._mode(_MODE_STDBY)

    # ---- receive window -----------------------------------------------------------------------
    async def _hw_window(self, start, symbols):
        self.standby()
        self._iq(False)
        self._switch(False)
        c2 = self.read(_REG_MODEM_CONFIG2) & 0xFC
        self.write(_REG_MODEM_CONFIG2, c2 | (symbols >> 8))
        self.write(_REG_SYMB_TIMEOUT_LSB, symbols & 0xFF)
        self.write(_REG_FIFO_ADDR_PTR, 0)
        self.write(_REG_DIO_MAPPING1, _DIO0_RX_DONE)  # DIO1 = RxTimeout
        self.write(_REG_IRQ_FLAGS, 0xFF)
        self.dio0.clear()
        if self.dio1 is not None:
            self.dio1.clear()
        await self.clock.sleep_until_us(start)
        self.write(_REG_OP_MODE, _LONG_RANGE | self._lf | _MODE_RX_SINGLE)
        ok = await self._wait_irq(self.dio0, self.window_limit_us(symbols), self._window_polled)
        if not ok:
            self._recover()
            raise timeout_error("receive window")
        if self.dio0.count:
            raw_t = self.dio0.raw_t
        else:
            raw_t = self.clock.raw_us()  # polled: the time stamp is only as good as the poll
        flags = self.read(_REG_IRQ_FLAGS)
        self.write(_REG_IRQ_FLAGS, 0xFF)
        self._mode(_MODE_STDBY)
        return self._finish_window(flags & _IRQ_RX_DONE, flags, raw_t)

    def _window_polled(self):
        if self.dio1 is not None:
            return self.dio1.fired()
        # DIO1 not wired: RegIrqFlags tells RxTimeout (RxDone also raises DIO0)
        return self.read(_REG_IRQ_FLAGS) & (_IRQ_RX_TIMEOUT | _IRQ_RX_DONE) != 0
