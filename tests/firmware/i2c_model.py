# An I2C bus with sensor models for the driver tests. The bus behaves like machine.I2C on an ESP32:
# no device at an address is OSError(ENODEV), a stuck bus (SDA held low) OSError(ETIMEDOUT). The
# models hold the register maps and command sets of their datasheets and refuse anything else.
import struct

ENODEV = 19
EIO = 5
ETIMEDOUT = 116


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
        self.log.append(("w", addr, bytes(buf)))
        self._dev(addr).write(bytes(buf))

    def readfrom_into(self, addr, buf):
        data = self._dev(addr).read(len(buf))
        buf[: len(data)] = data

    def readfrom(self, addr, n):
        return self._dev(addr).read(n)

    def writeto_mem(self, addr, reg, buf):
        self.log.append(("w", addr, bytes([reg]) + bytes(buf)))
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
        self.commands.append(data)
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
        self.commands.append(data)
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
