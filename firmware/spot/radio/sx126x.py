# SX1261/SX1262 LoRa driver at command level, after the Semtech SX1261/2 datasheet rev. 2.1
# (commands in chapter 13, register table 12.1, known limitations and their workarounds in 15).
import time

from micropython import const

from spot.clock import ticks_diff
from spot.radio import BW_SX126X, RadioError, airtime
from spot.radio.base import IrqLine, Radio, timeout_error

_CMD_SET_SLEEP = const(0x84)
_CMD_SET_STANDBY = const(0x80)
_CMD_SET_TX = const(0x83)
_CMD_SET_RX = const(0x82)
_CMD_STOP_TIMER_ON_PREAMBLE = const(0x9F)
_CMD_SET_REGULATOR_MODE = const(0x96)
_CMD_CALIBRATE = const(0x89)
_CMD_CALIBRATE_IMAGE = const(0x98)
_CMD_SET_PA_CONFIG = const(0x95)
_CMD_WRITE_REGISTER = const(0x0D)
_CMD_READ_REGISTER = const(0x1D)
_CMD_WRITE_BUFFER = const(0x0E)
_CMD_READ_BUFFER = const(0x1E)
_CMD_SET_DIO_IRQ_PARAMS = const(0x08)
_CMD_GET_IRQ_STATUS = const(0x12)
_CMD_CLEAR_IRQ_STATUS = const(0x02)
_CMD_SET_DIO2_AS_RF_SWITCH = const(0x9D)
_CMD_SET_DIO3_AS_TCXO = const(0x97)
_CMD_SET_RF_FREQUENCY = const(0x86)
_CMD_SET_PACKET_TYPE = const(0x8A)
_CMD_SET_TX_PARAMS = const(0x8E)
_CMD_SET_MODULATION_PARAMS = const(0x8B)
_CMD_SET_PACKET_PARAMS = const(0x8C)
_CMD_SET_BUFFER_BASE = const(0x8F)
_CMD_SET_SYMB_TIMEOUT = const(0xA0)
_CMD_GET_STATUS = const(0xC0)
_CMD_GET_RX_BUFFER_STATUS = const(0x13)
_CMD_GET_PACKET_STATUS = const(0x14)
_CMD_GET_DEVICE_ERRORS = const(0x17)
_CMD_GET_RSSI_INST = const(0x15)
_CMD_CLEAR_DEVICE_ERRORS = const(0x07)

_REG_SYNC_WORD_MSB = const(0x0740)
_REG_IQ_POLARITY = const(0x0736)
_REG_TX_MODULATION = const(0x0889)
_REG_TX_CLAMP = const(0x08D8)
_REG_OCP = const(0x08E7)
_REG_RTC_CONTROL = const(0x0902)
_REG_EVENT_MASK = const(0x0944)

_IRQ_TX_DONE = const(0x0001)
_IRQ_RX_DONE = const(0x0002)
_IRQ_HEADER_ERR = const(0x0020)
_IRQ_CRC_ERR = const(0x0040)
_IRQ_TIMEOUT = const(0x0200)
_IRQ_ALL = const(0x0263)

_STDBY_RC = const(0)
_STDBY_XOSC = const(1)
TCXO_VOLTS = (1.6, 1.7, 1.8, 2.2, 2.4, 2.7, 3.0, 3.3)
# CalibrateImage frequency pairs (datasheet table 9-2), by band
_IMAGE = ((430, 440, 0x6B, 0x6F), (470, 510, 0x75, 0x81), (779, 787, 0xC1, 0xC5), (863, 870, 0xD7, 0xDB),
          (902, 928, 0xE1, 0xE9))
_BUSY_TIMEOUT_US = const(20000)
_OFFSET0 = b"\x00"


class SX126x(Radio):
    CHIP = airtime.SX126X
    BW = BW_SX126X
    MIN_SF = 5

    def __init__(self, spi, pins, clock, radio_profile):
        super().__init__(clock, radio_profile)
        self._bus(spi, pins)
        self.busy = pins["busy"]
        self.dio1 = self.rx_line = IrqLine(pins["dio1"])
        self.sx1261 = radio_profile["chip"] == "sx1261"
        self.MIN_POWER = -17 if self.sx1261 else -9
        self.MAX_POWER = 15 if self.sx1261 else 22
        self._c = bytearray(4)  # command scratch, and views of it made once
        self._c2 = memoryview(self._c)[:2]
        self._c3 = memoryview(self._c)[:3]
        self._r2 = bytearray(2)  # status + one byte
        self._r3 = bytearray(3)  # status + two bytes
        self._r4 = bytearray(4)  # status + three bytes
        self._one = bytearray(1)
        self._rx_task = None
        self._rtc_stale = False
        self.nss.value(1)
        self.reset()
        self._init()

    # ---- SPI --------------------------------------------------------------------------------
    def _wait_busy(self):
        t0 = self.clock.ticks_us()
        while self.busy.value():
            if ticks_diff(self.clock.ticks_us(), t0) > _BUSY_TIMEOUT_US:
                raise RadioError("SX126x BUSY stuck high for 20 ms: the chip is not powered, held in reset "
                                 "or not an SX126x")

    def cmd(self, op, a=None, b=None):
        """Write command op with the bytes of a and then b (buffers; None for none)."""
        self._wait_busy()
        self._one[0] = op
        self.nss.value(0)
        self.spi.write(self._one)
        if a is not None:
            self.spi.write(a)
        if b is not None:
            self.spi.write(b)
        self.nss.value(1)

    def cmd_bytes(self, op, *args):
        """Configuration commands (not on packet paths): arguments as ints."""
        self.cmd(op, bytes(args))

    def query(self, op, resp, prefix=None):
        """Read command: op [prefix] then the status byte and resp's length of data."""
        self._wait_busy()
        self._one[0] = op
        self.nss.value(0)
        self.spi.write(self._one)
        if prefix is not None:
            self.spi.write(prefix)
        self.spi.readinto(resp, 0)
        self.nss.value(1)
        return resp

    def read_register(self, addr):
        c = self._c
        c[0] = addr >> 8
        c[1] = addr & 0xFF
        self._wait_busy()
        self._one[0] = _CMD_READ_REGISTER
        self.nss.value(0)
        self.spi.write(self._one)
        self.spi.write(self._c2)
        self.spi.readinto(self._r2, 0)  # status, then the register
        self.nss.value(1)
        return self._r2[1]

    def write_register(self, addr, value):
        self.cmd_bytes(_CMD_WRITE_REGISTER, addr >> 8, addr & 0xFF, value)

    def status(self):
        self._wait_busy()
        self._one[0] = _CMD_GET_STATUS
        self.nss.value(0)
        self.spi.write(self._one)
        self.spi.readinto(self._one, 0)
        self.nss.value(1)
        return self._one[0]

    def irq_status(self):
        r = self.query(_CMD_GET_IRQ_STATUS, self._r3)
        return (r[1] << 8) | r[2]

    def clear_irq(self, mask=0xFFFF):
        c = self._c
        c[0] = mask >> 8
        c[1] = mask & 0xFF
        self.cmd(_CMD_CLEAR_IRQ_STATUS, self._c2)

    # ---- start-up ---------------------------------------------------------------------------
    def reset(self):
        if self.rst is not None:
            self.rst.value(0)
            time.sleep_us(200)  # > 100 µs
            self.rst.value(1)
            time.sleep_ms(2)

    def _init(self):
        st = self.status()
        mode = (st >> 4) & 7
        if st in (0x00, 0xFF) or mode not in (2, 3):
            raise RadioError("no SX126x answering on SPI (status 0x%02x): check the wiring and the board "
                             "profile's radio pins" % st)
        msb, lsb = self.read_register(_REG_SYNC_WORD_MSB), self.read_register(_REG_SYNC_WORD_MSB + 1)
        if (msb, lsb) not in ((0x14, 0x24), (0x34, 0x44)):
            raise RadioError("radio is not an SX1261/62 (sync word registers read 0x%02x%02x)" % (msb, lsb))
        self.cmd_bytes(_CMD_SET_STANDBY, _STDBY_RC)
        volts = self.profile.get("tcxo_volts")
        if volts:
            code = _tcxo_code(volts)
            self.cmd_bytes(_CMD_SET_DIO3_AS_TCXO, code, 0, 0x01, 0x40)  # 5 ms start-up (320 x 15.625 µs)
            self.cmd_bytes(_CMD_CLEAR_DEVICE_ERRORS, 0, 0)  # XOSC_START_ERR from power-up without a TCXO
        self.cmd_bytes(_CMD_SET_REGULATOR_MODE, 0x01)  # DC-DC
        self.cmd_bytes(_CMD_CALIBRATE, 0x7F)  # all blocks; needs the TCXO set up first
        self._wait_busy()
        err = self.query(_CMD_GET_DEVICE_ERRORS, self._r3)
        if (err[1] << 8 | err[2]) & 0x7F:
            raise RadioError("SX126x calibration failed (device errors 0x%02x%02x)%s" % (
                err[1], err[2], "" if volts else ": does this board need tcxo_volts?"))
        self.cmd_bytes(_CMD_CLEAR_DEVICE_ERRORS, 0, 0)
        if self.profile.get("dio2_rf_switch"):
            self.cmd_bytes(_CMD_SET_DIO2_AS_RF_SWITCH, 1)
        self.cmd_bytes(_CMD_SET_PACKET_TYPE, 0x01)  # LoRa
        self.cmd_bytes(_CMD_SET_BUFFER_BASE, 0, 0)
        hi, lo = _IRQ_ALL >> 8, _IRQ_ALL & 0xFF
        self.cmd_bytes(_CMD_SET_DIO_IRQ_PARAMS, hi, lo, hi, lo, 0, 0, 0, 0)  # all on DIO1
        if not self.sx1261:
            # 15.2: better resistance to antenna mismatch: TxClampConfig bits 4:1 = 1111
            self.write_register(_REG_TX_CLAMP, self.read_register(_REG_TX_CLAMP) | 0x1E)
        self._image_band = None
        self.configure()

    # ---- configuration ------------------------------------------------------------------------
    def _hw_configure(self):
        s = self.s
        self._cancel_rx()
        self.cmd_bytes(_CMD_SET_STANDBY, _STDBY_RC)
        mhz = s.freq // 1000000
        for lo, hi, f1, f2 in _IMAGE:
            if lo <= mhz <= hi and self._image_band != lo:
                self.cmd_bytes(_CMD_CALIBRATE_IMAGE, f1, f2)
                self._image_band = lo
        # RF frequency = freq * 2^25 / 32 MHz = freq * 2^20 / 10^6, in small-int steps
        q, r = divmod(s.freq, 1000000)
        frf = (q << 20) + ((r << 20) + 500000) // 1000000
        self.cmd_bytes(_CMD_SET_RF_FREQUENCY, frf >> 24, (frf >> 16) & 0xFF, (frf >> 8) & 0xFF, frf & 0xFF)
        self.cmd_bytes(_CMD_SET_MODULATION_PARAMS, s.sf, self.BW[s.bw], s.cr - 4, 1 if s.ldro else 0)
        self._packet_params(s.implicit_len or 0xFF)
        sync = ((s.sync & 0xF0) << 8) | ((s.sync & 0x0F) << 4) | 0x0404  # 0x34 -> 0x3444, 0x12 -> 0x1424
        self.write_register(_REG_SYNC_WORD_MSB, sync >> 8)
        self.write_register(_REG_SYNC_WORD_MSB + 1, sync & 0xFF)
        # 15.1: modulation quality at 500 kHz: TxModulation bit 2 = 0 at 500 kHz, 1 otherwise
        v = self.read_register(_REG_TX_MODULATION)
        self.write_register(_REG_TX_MODULATION, (v & 0xFB) if s.bw == 500000 else (v | 0x04))
        # 15.4: inverted IQ: IqPolarity bit 2 = 0 when inverted, 1 otherwise
        v = self.read_register(_REG_IQ_POLARITY)
        self.write_register(_REG_IQ_POLARITY, (v & 0xFB) if s.iq_inverted else (v | 0x04))
        if self.sx1261:
            self.cmd_bytes(_CMD_SET_PA_CONFIG, 0x04 if s.power < 15 else 0x06, 0x00, 0x01, 0x01)
            power = s.power if s.power < 15 else 14
        else:
            self.cmd_bytes(_CMD_SET_PA_CONFIG, 0x04, 0x07, 0x00, 0x01)
            power = s.power
            self.write_register(_REG_OCP, 0x38)  # 140 mA
        self.cmd_bytes(_CMD_SET_TX_PARAMS, power & 0xFF, 0x02)  # 40 µs ramp

    def _packet_params(self, length):
        s = self.s
        self.cmd_bytes(_CMD_SET_PACKET_PARAMS, s.preamble >> 8, s.preamble & 0xFF, 1 if s.implicit_len else 0,
                       length, 1 if s.crc else 0, 1 if s.iq_inverted else 0)

    def standby(self):
        self._cancel_rx()
        self.receiving = False
        self.cmd_bytes(_CMD_SET_STANDBY, _STDBY_RC)
        self.clear_irq()
        self._fix_implicit_timeout()

    def sleep(self):
        self.standby()
        self.cmd_bytes(_CMD_SET_SLEEP, 0x04)  # warm start: configuration kept

    def _fix_implicit_timeout(self):
        # 15.3: after an RX timeout in implicit-header mode the RTC keeps running; stop it and clear
        # its pending event, or a later receive times out early
        if self._rtc_stale:
            self.write_register(_REG_RTC_CONTROL, 0x00)
            self.write_register(_REG_EVENT_MASK, self.read_register(_REG_EVENT_MASK) | 0x02)
            self._rtc_stale = False

    def _timer(self, us):
        """A SetTx/SetRx timeout argument: 24 bits of 15.625 µs steps."""
        steps = min(0xFFFFFE, us * 8 // 125 + 1)
        c = self._c
        c[0] = steps >> 16
        c[1] = (steps >> 8) & 0xFF
        c[2] = steps & 0xFF
        return self._c3

    # ---- transmit -----------------------------------------------------------------------------
    async def _hw_transmit(self, data, deadline):
        self.standby()
        self._packet_params(len(data))
        self.cmd(_CMD_WRITE_BUFFER, _OFFSET0, data)
        self.dio1.clear()
        self._switch(True)
        timeout = self.airtime_us(len(data)) + 100000
        if deadline is not None:
            await self.clock.sleep_until_us(deadline)
        start = self.clock.ticks_us()
        self.cmd(_CMD_SET_TX, self._timer(timeout))
        ok = await self._wait_irq(self.dio1, timeout + 50000)
        if not ok:
            self._recover()
            raise timeout_error("transmit")
        end = self.clock.from_raw_us(self.dio1.raw_t) if self.dio1.count else self.clock.ticks_us()
        flags = self.irq_status()
        self.clear_irq()
        self._switch(False)
        if not flags & _IRQ_TX_DONE:
            raise RadioError("SX126x transmit ended without TxDone (IRQ status 0x%04x)" % flags)
        return start, end

    def _recover(self):
        try:
            self.standby()
            self._hw_configure()
        except RadioError:
            self.reset()
            self._init()

    # ---- continuous receive -------------------------------------------------------------------
    def _hw_receive(self):
        self.standby()
        self._packet_params(self.s.implicit_len or 0xFF)
        self._switch(False)
        self.dio1.clear()
        self._c[0] = self._c[1] = self._c[2] = 0xFF  # continuous
        self.cmd(_CMD_SET_RX, self._c3)
        self._start_rx_task()

    def service(self):
        """Handle a DIO1 interrupt in continuous receive (no heap allocation)."""
        while self.dio1.count:
            self.dio1.count = 0
            flags = self.irq_status()
            self.clear_irq()
            if flags & _IRQ_RX_DONE:
                p = self._slot()
                if p is not None and self._read_packet(p, flags, self.dio1.raw_t):
                    self._commit(p)
            elif flags & _IRQ_HEADER_ERR:
                self.stats["rx_bad"] += 1

    def _read_packet(self, p, flags, raw_t):
        if flags & _IRQ_CRC_ERR:
            self.stats["rx_crc"] += 1
            if not self.keep_crc_errors:
                return False
        r = self.query(_CMD_GET_RX_BUFFER_STATUS, self._r3)
        n, ptr = r[1], r[2]
        if n == 0:
            self.stats["rx_bad"] += 1
            return False
        c = self._c
        c[0] = _CMD_READ_BUFFER
        c[1] = ptr
        c[2] = 0  # NOP: the status byte is clocked out here
        self._wait_busy()
        self.nss.value(0)
        self.spi.write(self._c3)
        self.spi.readinto(p.buf, 0)  # the whole buffer: no slice, no heap
        self.nss.value(1)
        p.length = n
        q = self.query(_CMD_GET_PACKET_STATUS, self._r4)
        snr = q[2]
        if snr > 127:
            snr -= 256
        p.rssi = -(q[1] >> 1)
        p.snr_x4 = snr
        p.crc_ok = not flags & _IRQ_CRC_ERR
        p.t_us = self.clock.from_raw_us(raw_t)
        return True

    # ---- listen before talk -------------------------------------------------------------------
    async def _hw_rssi(self, duration_us):
        self.standby()
        self._switch(False)
        self._c[0] = self._c[1] = self._c[2] = 0xFF
        self.cmd(_CMD_SET_RX, self._c3)

        def read():
            r = self.query(_CMD_GET_RSSI_INST, self._r2)
            return -(r[1] >> 1)

        try:
            return await self._sample_rssi(duration_us, read)
        finally:
            self.cmd_bytes(_CMD_SET_STANDBY, _STDBY_RC)

    # ---- receive window -----------------------------------------------------------------------
    async def _hw_window(self, start, symbols):
        self.standby()
        self._packet_params(self.s.implicit_len or 0xFF)
        self._switch(False)
        self.cmd_bytes(_CMD_STOP_TIMER_ON_PREAMBLE, 0x00)  # the timer stops on sync word/header
        self.cmd_bytes(_CMD_SET_SYMB_TIMEOUT, min(symbols, 248))
        self.dio1.clear()
        timeout = self.symbols_us(symbols) + 2000
        await self.clock.sleep_until_us(start)
        self.cmd(_CMD_SET_RX, self._timer(timeout))
        ok = await self._wait_irq(self.dio1, self.window_limit_us(symbols))
        if not ok:
            self._recover()
            raise timeout_error("receive window")
        raw_t = self.dio1.raw_t
        flags = self.irq_status()
        self.clear_irq()
        if flags & _IRQ_TIMEOUT and self.s.implicit_len:
            self._rtc_stale = True
        self.cmd_bytes(_CMD_SET_STANDBY, _STDBY_RC)
        self._fix_implicit_timeout()
        return self._finish_window(flags & _IRQ_RX_DONE, flags, raw_t)


def _tcxo_code(volts):
    for i in range(len(TCXO_VOLTS)):
        if abs(TCXO_VOLTS[i] - volts) < 0.05:
            return i
    raise RadioError("tcxo_volts %r: the SX126x supports %s V" % (volts, ", ".join("%.1f" % v for v in TCXO_VOLTS)))
