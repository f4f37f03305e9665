# Hardware models of the virtual board, also what the sensor driver tests run against: an I2C bus
# that behaves like machine.I2C on an ESP32 (no device at an address is OSError(ENODEV), a stuck
# bus, SDA held low, OSError(ETIMEDOUT)), sensor and power-chip models holding the register maps and
# command sets of their datasheets (anything else is refused), a 1-Wire bus with DS18B20s, a GPS
# receiver streaming NMEA on a UART, and a battery behind an ADC divider.
import struct

ENODEV = 19
EIO = 5
ETIMEDOUT = 116
LOG_KEEP = 32  # what a bus or chip model remembers of its traffic, for tests: the newest only
LOG_BYTES = 32  # of each write (a display's frame is a kilobyte)


def _note(log, item):
    """Remember item, forgetting the oldest beyond LOG_KEEP: a virtual board that reads its
    sensors for days must not spend its heap on the models' history (the firmware has none)."""
    log.append(item)
    if len(log) > LOG_KEEP:
        del log[0]


class I2CBus:
    def __init__(self, *devices):
        self.devices = {d.addr: d for d in devices}
        self.stuck = False
        self.log = []

    def _dev(self, addr):
        if self.stuck:
            raise OSError(ETIMEDOUT)
        d = self.devices.get(addr)
        if d is None:
            raise OSError(ENODEV)
        return d

    def scan(self):
        if self.stuck:
            raise OSError(ETIMEDOUT)
        return sorted(self.devices)

    def writeto(self, addr, buf):
        _note(self.log, ("w", addr, bytes(buf[:LOG_BYTES])))
        self._dev(addr).write(bytes(buf) if len(buf) <= LOG_BYTES else buf)

    def readfrom_into(self, addr, buf):
        data = self._dev(addr).read(len(buf))
        buf[: len(data)] = data

    def readfrom(self, addr, n):
        return self._dev(addr).read(n)

    def writeto_mem(self, addr, reg, buf):
        _note(self.log, ("w", addr, bytes([reg]) + bytes(buf)))
        self._dev(addr).write(bytes([reg]) + bytes(buf))

    def readfrom_mem(self, addr, reg, n):
        d = self._dev(addr)
        d.write(bytes([reg]))
        return d.read(n)


def sensirion_crc(data):
    crc = 0xFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = ((crc << 1) ^ 0x31) & 0xFF if crc & 0x80 else (crc << 1) & 0xFF
    return crc


class SHT31Model:
    """SHT3x-DIS: only single-shot high repeatability without clock stretching (0x2400) starts a
    measurement; a read with no measurement done is not acknowledged (datasheet 4.4)."""

    def __init__(self, addr=0x44, temp_raw=0x6666, hum_raw=0x8000):
        self.addr = addr
        self.temp_raw = temp_raw
        self.hum_raw = hum_raw
        self.ready = False
        self.corrupt = False
        self.commands = []

    def write(self, data):
        _note(self.commands, data)
        if data == b"\x24\x00":
            self.ready = True
        elif data != b"\x30\xa2":
            raise OSError(EIO)  # unknown command: NACK

    def read(self, n):
        if not self.ready:
            raise OSError(EIO)
        self.ready = False
        out = bytearray()
        for w in (self.temp_raw, self.hum_raw):
            word = bytes((w >> 8, w & 0xFF))
            out += word + bytes((sensirion_crc(word),))
        if self.corrupt:
            out[5] ^= 0x01
        return bytes(out[:n])


class BME280Model:
    """BME280 register map: id 0xD0, calibration 0x88-0xA1 / 0xE1-0xE7, ctrl_hum 0xF2 (latched by
    the next ctrl_meas write), status 0xF3, ctrl_meas 0xF4, data 0xF7-0xFE (reset values until a
    measurement ran; humidity stays skipped, 0x8000, unless ctrl_hum was set first)."""

    def __init__(self, addr, cal, adc_t, adc_p, adc_h, chip_id=0x60):
        self.addr = addr
        self.regs = bytearray(256)
        self.regs[0xD0] = chip_id
        t1, t2, t3, p1, p2, p3, p4, p5, p6, p7, p8, p9, h1, h2, h3, h4, h5, h6 = cal
        self.regs[0x88:0xA0] = struct.pack("<HhhHhhhhhhhh", t1, t2, t3, p1, p2, p3, p4, p5, p6, p7, p8, p9)
        self.regs[0xA1] = h1
        self.regs[0xE1:0xE3] = struct.pack("<h", h2)
        self.regs[0xE3] = h3
        self.regs[0xE4] = (h4 >> 4) & 0xFF
        self.regs[0xE5] = ((h5 & 0x0F) << 4) | (h4 & 0x0F)
        self.regs[0xE6] = (h5 >> 4) & 0xFF
        self.regs[0xE7] = h6 & 0xFF
        self.regs[0xF7:0xFF] = b"\x80\x00\x00\x80\x00\x00\x80\x00"
        self.adc = (adc_t, adc_p, adc_h)
        self.ptr = 0
        self.hum_latched = 0
        self.pending_hum = 0
        self.busy_reads = 0
        self.measurements = 0

    def write(self, data):
        self.ptr = data[0]
        if len(data) == 1:
            return
        reg, value = data[0], data[1]
        if reg == 0xF2:
            self.pending_hum = value & 7
        elif reg == 0xF4:
            self.hum_latched = self.pending_hum
            if value & 3 in (1, 2):  # forced mode: measure once
                self._measure(value)
        elif reg == 0xE0 and value == 0xB6:
            self.regs[0xF7:0xFF] = b"\x80\x00\x00\x80\x00\x00\x80\x00"
        self.regs[reg] = value

    def _measure(self, ctrl):
        adc_t, adc_p, adc_h = self.adc
        if ctrl >> 5:
            self.regs[0xFA:0xFD] = bytes((adc_t >> 12, (adc_t >> 4) & 0xFF, (adc_t & 0xF) << 4))
        if (ctrl >> 2) & 7:
            self.regs[0xF7:0xFA] = bytes((adc_p >> 12, (adc_p >> 4) & 0xFF, (adc_p & 0xF) << 4))
        if self.hum_latched:
            self.regs[0xFD:0xFF] = bytes((adc_h >> 8, adc_h & 0xFF))
        self.busy_reads = 2  # status shows "measuring" for the next two reads
        self.measurements += 1

    def read(self, n):
        if self.ptr == 0xF3 and self.busy_reads:
            self.busy_reads -= 1
            return bytes((0x08,))
        out = bytes(self.regs[self.ptr : self.ptr + n])
        self.ptr = (self.ptr + n) & 0xFF
        return out


class AHT20Model:
    """AHT20: 0x71 status (bit 3 calibrated, bit 7 busy), 0xBE 0x08 0x00 calibrates, 0xAC 0x33 0x00
    measures (busy for the first read after it), 7-byte answer with CRC-8 0x31/0xFF."""

    def __init__(self, hum_raw=0x80000, temp_raw=0x66666, calibrated=False):
        self.addr = 0x38
        self.hum_raw = hum_raw
        self.temp_raw = temp_raw
        self.calibrated = calibrated
        self.state = "idle"
        self.busy_reads = 0
        self.corrupt = False
        self.commands = []

    def write(self, data):
        _note(self.commands, data)
        if data == b"\x71":
            self.state = "status"
        elif data == b"\xbe\x08\x00":
            self.calibrated = True
        elif data == b"\xac\x33\x00":
            if not self.calibrated:
                raise OSError(EIO)
            self.state = "measure"
            self.busy_reads = 1
        else:
            raise OSError(EIO)

    def read(self, n):
        status = 0x18 if self.calibrated else 0x10
        if self.state != "measure":
            return bytes((status,))[:n]
        if self.busy_reads:
            self.busy_reads -= 1
            return bytes((status | 0x80,)) + bytes(n - 1)
        h, t = self.hum_raw, self.temp_raw
        out = bytearray((status, h >> 12, (h >> 4) & 0xFF, ((h & 0xF) << 4) | (t >> 16), (t >> 8) & 0xFF, t & 0xFF))
        out.append(sensirion_crc(out))
        if self.corrupt:
            out[2] ^= 0x40
        return bytes(out[:n])


def bme280_reference(cal, adc_t, adc_p, adc_h):
    """The datasheet's floating-point compensation (BME280 datasheet section 8.1): °C, Pa, %RH.
    Independent of the driver's integer version, so each checks the other."""
    t1, t2, t3, p1, p2, p3, p4, p5, p6, p7, p8, p9, h1, h2, h3, h4, h5, h6 = cal
    var1 = (adc_t / 16384.0 - t1 / 1024.0) * t2
    var2 = (adc_t / 131072.0 - t1 / 8192.0) * (adc_t / 131072.0 - t1 / 8192.0) * t3
    t_fine = var1 + var2
    t = t_fine / 5120.0
    var1 = t_fine / 2.0 - 64000.0
    var2 = var1 * var1 * p6 / 32768.0
    var2 = var2 + var1 * p5 * 2.0
    var2 = var2 / 4.0 + p4 * 65536.0
    var1 = (p3 * var1 * var1 / 524288.0 + p2 * var1) / 524288.0
    var1 = (1.0 + var1 / 32768.0) * p1
    p = 1048576.0 - adc_p
    p = (p - var2 / 4096.0) * 6250.0 / var1
    var1 = p9 * p * p / 2147483648.0
    var2 = p * p8 / 32768.0
    p = p + (var1 + var2 + p7) / 16.0
    h = t_fine - 76800.0
    h = (adc_h - (h4 * 64.0 + h5 / 16384.0 * h)) * (
        h2 / 65536.0 * (1.0 + h6 / 67108864.0 * h * (1.0 + h3 / 67108864.0 * h)))
    h = h * (1.0 - h1 * h / 524288.0)
    return t, p, min(100.0, max(0.0, h))


class AXPModel:
    """AXP192 (chip id 0x03) or AXP2101 (0x4A) at 0x34: a plain register file; rails() tells
    which supplies are on and at what voltage, by each chip's register layout."""

    def __init__(self, chip="axp192"):
        self.addr = 0x34
        self.chip = chip
        self.regs = bytearray(256)
        self.regs[0x03] = 0x03 if chip == "axp192" else 0x4A
        if chip == "axp192":
            self.regs[0x12] = 0x03  # DCDC1 and DCDC3 on after power-up, LDO2/LDO3 off
        else:
            self.regs[0x90] = 0x01  # ALDO1 on
        self.ptr = 0

    def write(self, data):
        self.ptr = data[0]
        for i, v in enumerate(data[1:]):
            self.regs[(self.ptr + i) & 0xFF] = v

    def read(self, n):
        out = bytes(self.regs[self.ptr : self.ptr + n])
        self.ptr = (self.ptr + n) & 0xFF
        return out

    def rails(self):
        """{'radio': mV or 0, 'gps': mV or 0}."""
        r = self.regs
        if self.chip == "axp192":
            v = r[0x28]
            return {"radio": 1800 + 100 * (v >> 4) if r[0x12] & 0x04 else 0,
                    "gps": 1800 + 100 * (v & 0x0F) if r[0x12] & 0x08 else 0}
        return {"radio": 500 + 100 * r[0x93] if r[0x90] & 0x02 else 0,
                "gps": 500 + 100 * r[0x94] if r[0x90] & 0x04 else 0}


def maxim_crc(data):
    crc = 0
    for b in data:
        for _ in range(8):
            mix = (crc ^ b) & 1
            crc >>= 1
            if mix:
                crc ^= 0x8C
            b >>= 1
    return crc


class DS18B20Model:
    """One DS18B20: ROM code (family 0x28, serial, CRC), Convert T then Read Scratchpad."""

    def __init__(self, serial=b"\x01\x02\x03\x04\x05\x06", celsius=21.5):
        rom = b"\x28" + serial
        self.rom = rom + bytes((maxim_crc(rom),))
        self.celsius = celsius
        self.raw = None  # scratchpad temperature register: the power-on 85 °C until a conversion
        self.corrupt = False
        self.conversions = 0

    def scratchpad(self):
        raw = 0x0550 if self.raw is None else self.raw
        sp = bytearray((raw & 0xFF, (raw >> 8) & 0xFF, 0x4B, 0x46, 0x7F, 0xFF, 0x0C, 0x10))
        sp.append(maxim_crc(sp))
        if self.corrupt:
            sp[0] ^= 0x04
        return sp


class OneWireBus:
    """machine-level behaviour of onewire.OneWire with the DS18B20 command set: reset() is the
    presence pulse, Skip ROM (0xCC) or Match ROM (select_rom) address, 0x44 converts, 0xBE reads
    the scratchpad. A line held low (stuck) reads zeros and shows a presence pulse."""

    def __init__(self, *devices):
        self.devices = list(devices)
        self.stuck = False
        self.selected = []
        self.pending = b""
        self.log = []

    def reset(self, required=False):
        self.selected = []
        self.pending = b""
        present = self.stuck or bool(self.devices)
        if required and not present:
            raise OSError(ENODEV)
        return present

    def writebyte(self, b):
        _note(self.log, b)
        if b == 0xCC:
            self.selected = list(self.devices)
        elif b == 0x44:
            for d in self.selected:
                raw = round(d.celsius * 16)
                d.raw = raw & 0xFFFF
                d.conversions += 1
        elif b == 0xBE:
            if len(self.selected) == 1:
                self.pending = bytes(self.selected[0].scratchpad())
            elif self.selected:
                # several devices answer at once: the wired-AND of their bits
                out = bytearray(b"\xff" * 9)
                for d in self.selected:
                    for i, v in enumerate(d.scratchpad()):
                        out[i] &= v
                self.pending = bytes(out)

    def select_rom(self, rom):
        _note(self.log, ("match", bytes(rom)))
        self.selected = [d for d in self.devices if d.rom == bytes(rom)]

    def readinto(self, buf):
        n = len(buf)
        if self.stuck:
            data = bytes(n)
        else:
            data = (self.pending + b"\xff" * n)[:n]
            self.pending = self.pending[n:]
        buf[:n] = data

    def scan(self):
        return [] if self.stuck else [d.rom for d in self.devices]


def nmea(body):
    """A whole sentence for body (without '$' and checksum)."""
    c = 0
    for ch in body.encode():
        c ^= ch
    return ("$%s*%02X\r\n" % (body, c)).encode()


def _nmea_coord(v, lat):
    hemi = ("N" if v >= 0 else "S") if lat else ("E" if v >= 0 else "W")
    v = abs(v)
    deg = int(v)
    minutes = (v - deg) * 60
    return ("%02d%07.4f" if lat else "%03d%07.4f") % (deg, minutes), hemi


def fix_sentences(t_s, lat, lon, alt, sats=8, quality=1, talker="GP"):
    """An RMC and a GGA sentence for a fix at t_s: seconds of the day (RMC's date 22 Nov 2026), or
    from a day on, Unix seconds (RMC's date theirs). No keyword more: every virtual board loads
    this module, and a name more in MicroPython's table can make it grow a block."""
    day = "221126"
    if t_s >= 86400:
        import time

        y, mo, d = time.gmtime(int(t_s))[:3]
        day = "%02d%02d%02d" % (d, mo, y % 100)
        t_s %= 86400
    hh, mm, ss = int(t_s // 3600) % 24, int(t_s // 60) % 60, t_s % 60
    t = "%02d%02d%05.2f" % (hh, mm, ss)
    la, ns = _nmea_coord(lat, True)
    lo, ew = _nmea_coord(lon, False)
    status = "A" if quality else "V"
    rmc = nmea("%sRMC,%s,%s,%s,%s,%s,%s,0.5,54.7,%s,,,A" % (talker, t, status, la, ns, lo, ew, day))
    gga = nmea("%sGGA,%s,%s,%s,%s,%s,%d,%02d,0.9,%.1f,M,47.0,M,," % (talker, t, la, ns, lo, ew, quality, sats, alt))
    return rmc + gga


class UartModel:
    """machine.UART reading side: any() and readinto() over bytes queued by the test or a model."""

    def __init__(self):
        self.rx = b""

    def push(self, data):
        self.rx += data

    def any(self):
        return len(self.rx)

    def readinto(self, buf):
        n = min(len(buf), len(self.rx))
        buf[:n] = self.rx[:n]
        self.rx = self.rx[n:]
        return n

    def read(self, n=-1):
        n = len(self.rx) if n is None or n < 0 else n
        out, self.rx = self.rx[:n], self.rx[n:]
        return out or None


class AdcModel:
    """machine.ADC with read_uv(): the voltage at the pin, e.g. a battery through a divider."""

    def __init__(self, uv):
        self.uv = uv
        self.fail = False

    def read_uv(self):
        if self.fail:
            raise OSError(EIO)
        return self.uv

