# Register-level model of a Semtech SX1276 in LoRa mode (datasheet rev. 7, chapter 6.4): the
# register file with its reset values, the SPI access rules (address byte with the write bit,
# burst auto-increment, the FIFO behind address 0 with its pointer), the operating modes and
# the IRQ flags with their DIO mapping. A test delivers packets "over the air" with deliver() and
# sees what the chip would transmit in tx_frames.
from fakehw import FakePin

RESET = {
    0x01: 0x09, 0x06: 0x6C, 0x07: 0x80, 0x08: 0x00, 0x09: 0x4F, 0x0A: 0x09, 0x0B: 0x2B, 0x0C: 0x20,
    0x0D: 0x00, 0x0E: 0x80, 0x0F: 0x00, 0x11: 0x00, 0x1D: 0x72, 0x1E: 0x70, 0x1F: 0x64, 0x20: 0x00,
    0x21: 0x08, 0x22: 0x01, 0x23: 0xFF, 0x26: 0x04, 0x31: 0xC3, 0x33: 0x27, 0x37: 0x0A, 0x39: 0x12,
    0x3B: 0x1D, 0x40: 0x00, 0x41: 0x00, 0x42: 0x12, 0x4D: 0x84,
}
BW_HZ = (7800, 10400, 15600, 20800, 31250, 41700, 62500, 125000, 250000, 500000)
SLEEP, STDBY, FSTX, TX, FSRX, RXCONT, RXSINGLE, CAD = range(8)


class SX1276Model:
    def __init__(self, version=0x12, dio1_wired=True):
        self.regs = bytearray(128)
        for k, v in RESET.items():
            self.regs[k] = v
        self.regs[0x42] = version
        self.fifo = bytearray(256)
        self.nss = FakePin("nss", 1, self._select)
        self.reset_pin = FakePin("reset", 1, self._reset_edge)
        self.dio0 = FakePin("dio0")
        self.dio1 = FakePin("dio1") if dio1_wired else None
        self.selected = False
        self._addr = None
        self._write = False
        self.rx_ptr = 0
        self.tx_frames = []
        self.errors = []
        self.dead_dio = False  # the chip works, its DIO pins never rise
        self.hung = False  # no TxDone, no RxTimeout, nothing
        self.garbage = False  # MISO reads 0xFF, writes are lost
        self.resets = 0

    def pins(self):
        p = {"nss": self.nss, "reset": self.reset_pin, "dio0": self.dio0}
        if self.dio1 is not None:
            p["dio1"] = self.dio1
        return p

    # ---- SPI ------------------------------------------------------------------------------------
    def _select(self, level):
        self.selected = level == 0
        self._addr = None

    def _reset_edge(self, level):
        if level == 1:
            version = self.regs[0x42]
            self.regs[:] = bytearray(128)
            for k, v in RESET.items():
                self.regs[k] = v
            self.regs[0x42] = version
            self.resets += 1

    def xfer(self, b):
        if self.garbage:
            return 0xFF
        if self._addr is None:
            self._addr = b & 0x7F
            self._write = b & 0x80 != 0
            return 0
        a = self._addr
        if a == 0x00:
            return self._fifo(b)
        self._addr = (a + 1) & 0x7F
        if self._write:
            self._store(a, b)
            return 0
        if a == 0x1B and self.mode() not in (RXCONT, RXSINGLE):
            return 0  # RssiValue is only measured while receiving
        return self.regs[a]

    def _fifo(self, b):
        if self.mode() == SLEEP:
            return 0  # "the FIFO cannot be accessed in Sleep mode"
        p = self.regs[0x0D]
        self.regs[0x0D] = (p + 1) & 0xFF
        if self._write:
            self.fifo[p] = b
            return 0
        return self.fifo[p]

    def _store(self, a, b):
        r = self.regs
        if a == 0x01:
            if self.mode() != SLEEP and (b & 0x80) != (r[1] & 0x80):
                b = (b & 0x7F) | (r[1] & 0x80)  # LongRangeMode changes only in sleep
            r[1] = b
            self._enter(b & 7)
        elif a == 0x12:
            r[0x12] &= ~b & 0xFF  # write 1 to clear
            self._update_dio()
        elif a in (0x10, 0x13, 0x19, 0x1A, 0x1B, 0x42):
            pass  # read-only
        else:
            r[a] = b

    # ---- state ----------------------------------------------------------------------------------
    def mode(self):
        return self.regs[1] & 7

    def lora(self):
        return self.regs[1] & 0x80 != 0

    def freq(self):
        frf = (self.regs[6] << 16) | (self.regs[7] << 8) | self.regs[8]
        return (frf * 15625 + 128) >> 8  # Fstep = 32 MHz / 2^19

    def sf(self):
        return self.regs[0x1E] >> 4

    def bw(self):
        code = self.regs[0x1D] >> 4
        return BW_HZ[code] if code < len(BW_HZ) else None

    def cr(self):
        return ((self.regs[0x1D] >> 1) & 7) + 4

    def implicit(self):
        return self.regs[0x1D] & 1 == 1

    def ldro(self):
        return self.regs[0x26] & 0x08 != 0

    def preamble(self):
        return (self.regs[0x20] << 8) | self.regs[0x21]

    def symb_timeout(self):
        return ((self.regs[0x1E] & 3) << 8) | self.regs[0x1F]

    def iq(self, tx):
        """(inverted, consistent): both RegInvertIQ and RegInvertIQ2 must agree."""
        r = self.regs
        inv = (r[0x33] & 0x01) == 0 if tx else (r[0x33] & 0x40) != 0
        return inv, r[0x3B] == (0x19 if inv else 0x1D)

    def power_dbm(self):
        pa = self.regs[0x09]
        if pa & 0x80:
            return (5 if self.regs[0x4D] & 7 == 7 else 2) + (pa & 0x0F)
        pmax = 10.8 + 0.6 * ((pa >> 4) & 7)
        return pmax - 15 + (pa & 0x0F)

    def config_ok(self):
        """What a real chip needs to demodulate: LoRa mode, a valid bandwidth, SF6 only implicit,
        LowDataRateOptimize as the symbol time requires."""
        sf, bw = self.sf(), self.bw()
        if not self.lora() or bw is None or not 6 <= sf <= 12:
            return False
        if sf == 6 and not self.implicit():
            return False
        need = (1 << sf) * 1000 >= 16 * bw
        return need == self.ldro()

    def _update_dio(self):
        # DIO0: 00 RxDone, 01 TxDone, 10 CadDone; DIO1: 00 RxTimeout, 01 FhssChange, 10 CadDetected
        flags = self.regs[0x12] & ~self.regs[0x11]
        m = self.regs[0x40]
        d0 = m & 0xC0
        self._drive(self.dio0, flags & (0x40 if d0 == 0 else 0x08 if d0 == 0x40 else 0x04 if d0 == 0x80 else 0))
        if self.dio1 is not None:
            d1 = m & 0x30
            self._drive(self.dio1, flags & (0x80 if d1 == 0 else 0x02 if d1 == 0x10 else 0x01 if d1 == 0x20 else 0))

    def _drive(self, pin, level):
        if level and self.dead_dio:
            return
        pin.drive(1 if level else 0)

    def _enter(self, mode):
        if mode == TX and self.lora():
            self._transmit()
        elif mode in (RXCONT, RXSINGLE):
            self.rx_ptr = self.regs[0x0F]

    def _transmit(self):
        r = self.regs
        n = r[0x22]
        base = r[0x0E]
        payload = bytes(self.fifo[(base + i) & 0xFF] for i in range(n))
        inv, iq_ok = self.iq(True)
        self.tx_frames.append({
            "payload": payload, "freq": self.freq(), "sf": self.sf(), "bw": self.bw(), "cr": self.cr(),
            "crc": r[0x1E] & 0x04 != 0, "implicit": self.implicit(), "iq_inverted": inv, "iq_consistent": iq_ok,
            "sync": r[0x39], "power": self.power_dbm(), "pa_boost": r[0x09] & 0x80 != 0, "ldro": self.ldro(),
            "preamble": self.preamble(), "valid": self.config_ok() and iq_ok,
        })
        if self.hung:
            return
        r[0x12] |= 0x08  # TxDone
        r[1] = (r[1] & 0xF8) | STDBY
        self._update_dio()

    # ---- the air ------------------------------------------------------------------------------
    def deliver(self, payload, rssi_raw=60, snr_raw=20, freq=None, sf=None, bw=None, iq_inverted=False,
                sync=0x34, crc=True, crc_error=False):
        """A packet reaches the antenna; returns True when the chip would receive it as configured."""
        r = self.regs
        if self.mode() not in (RXCONT, RXSINGLE) or not self.config_ok() or self.hung:
            return False
        if freq is not None and abs(freq - self.freq()) > 100:
            return False
        if (sf is not None and sf != self.sf()) or (bw is not None and bw != self.bw()):
            return False
        inv = r[0x33] & 0x40 != 0  # (inline: no tuple, the benchmark counts heap)
        if r[0x3B] != (0x19 if inv else 0x1D) or inv != iq_inverted or sync != r[0x39]:
            return False
        n = len(payload)
        start = self.rx_ptr
        for i in range(n):
            self.fifo[(start + i) & 0xFF] = payload[i]
        self.rx_ptr = (start + n) & 0xFF
        r[0x10] = start
        r[0x13] = n
        r[0x19] = snr_raw & 0xFF
        r[0x1A] = rssi_raw
        r[0x1C] = (r[0x1C] & ~0x40) | (0x40 if crc else 0)
        r[0x12] |= 0x50 | (0x20 if crc and crc_error else 0)  # RxDone, ValidHeader
        if self.mode() == RXSINGLE:
            r[1] = (r[1] & 0xF8) | STDBY
        self._update_dio()
        return True

    def window_timeout(self):
        """No preamble within RegSymbTimeout symbols of RXSINGLE: returns those symbols."""
        if self.mode() != RXSINGLE or self.hung:
            return None
        self.regs[0x12] |= 0x80
        self.regs[1] = (self.regs[1] & 0xF8) | STDBY
        self._update_dio()
        return self.symb_timeout()
