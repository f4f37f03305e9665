# The SSD1306 display controller of the virtual board, run by its supervisor (CPython: the panel is
# outside the chip, so its model takes nothing of the firmware's heap), and the model the display
# driver's tests decode its command stream with (under MicroPython too). Plain Python for both.
EIO = 5
LOG_KEEP = 32


def _note(log, item):
    log.append(item)
    if len(log) > LOG_KEEP:
        del log[0]

# Commands of the SSD1306 that take arguments, and how many (Solomon Systech SSD1306 datasheet
# rev 1.1, section 9 "Command Table"); the rest are one byte.
_SSD1306_ARGS = {0x20: 1, 0x21: 2, 0x22: 2, 0x26: 6, 0x27: 6, 0x29: 5, 0x2A: 5, 0x81: 1, 0x8D: 1, 0xA3: 2,
                 0xA8: 1, 0xD3: 1, 0xD5: 1, 0xD9: 1, 0xDA: 1, 0xDB: 1}


class SSD1306Model:
    """An SSD1306 on I2C as its datasheet describes it, decoding the command stream into its own
    display RAM (8 pages of 128 columns, a byte per column of 8 rows, LSB on top), independent of
    any drawing code: control bytes (Co, D/C#), the three addressing modes with their column and
    page windows, segment remap, COM scan direction, start line, display offset, multiplex ratio,
    contrast, inversion, entire display on, the charge pump and display on/off. screen() is what
    the panel shows: rows of pixels, 1 lit."""

    def __init__(self, addr=0x3C, width=128, height=64):
        self.addr = addr
        self.width = width
        self.height = height
        self.ram = bytearray(128 * 8)
        self.reset()
        self.writes = 0  # data bytes written to the display RAM
        self.commands = []

    def reset(self):
        self.on = False
        self.pump = False
        self.mode = 2  # page addressing after reset
        self.col_lo, self.col_hi = 0, 127
        self.page_lo, self.page_hi = 0, 7
        self.col = 0
        self.page = 0
        self.remap = False  # A0: column 0 is SEG0
        self.com_rev = False  # C0: COM0 first
        self.start_line = 0
        self.offset = 0
        self.mux = 64
        self.contrast = 0x7F
        self.invert = False
        self.all_on = False
        self._cmd = []  # the command being received, with its arguments so far

    def write(self, data):
        i = 0
        n = len(data)
        while i < n:
            ctrl = data[i]
            i += 1
            if ctrl & 0x3F:
                raise OSError(EIO)  # not a control byte
            data_mode, single = ctrl & 0x40, ctrl & 0x80
            if single:  # Co = 1: one byte, then another control byte
                if i < n:
                    self._data(data[i]) if data_mode else self._command_byte(data[i])
                i += 1
                continue
            for b in data[i:]:
                self._data(b) if data_mode else self._command_byte(b)
            return

    def read(self, n):
        return bytes(n)  # the status byte is not modelled: nothing the driver reads

    def _command_byte(self, b):
        c = self._cmd
        c.append(b)
        if len(c) - 1 < _SSD1306_ARGS.get(c[0], 0):
            return
        self._cmd = []
        _note(self.commands, bytes(c))
        op = c[0]
        if op == 0x20:
            self.mode = c[1] & 3
        elif op == 0x21:
            self.col_lo, self.col_hi, self.col = c[1] & 0x7F, c[2] & 0x7F, c[1] & 0x7F
        elif op == 0x22:
            self.page_lo, self.page_hi, self.page = c[1] & 7, c[2] & 7, c[1] & 7
        elif op == 0x81:
            self.contrast = c[1]
        elif op == 0x8D:
            self.pump = bool(c[1] & 0x04)
        elif op == 0xA8:
            self.mux = (c[1] & 0x3F) + 1
        elif op == 0xD3:
            self.offset = c[1] & 0x3F
        elif op in (0xA0, 0xA1):
            self.remap = op == 0xA1
        elif op in (0xC0, 0xC8):
            self.com_rev = op == 0xC8
        elif op in (0xA4, 0xA5):
            self.all_on = op == 0xA5
        elif op in (0xA6, 0xA7):
            self.invert = op == 0xA7
        elif op in (0xAE, 0xAF):
            self.on = op == 0xAF
        elif 0x40 <= op <= 0x7F:
            self.start_line = op - 0x40
        elif op <= 0x0F and self.mode == 2:
            self.col = (self.col & 0xF0) | op
        elif 0x10 <= op <= 0x1F and self.mode == 2:
            self.col = (self.col & 0x0F) | ((op & 0x0F) << 4)
        elif 0xB0 <= op <= 0xB7 and self.mode == 2:
            self.page = op - 0xB0

    def _data(self, b):
        self.ram[self.page * 128 + self.col] = b
        self.writes += 1
        if self.mode == 0:  # horizontal: along the columns, then the next page
            if self.col >= self.col_hi:
                self.col = self.col_lo
                self.page = self.page_lo if self.page >= self.page_hi else self.page + 1
            else:
                self.col += 1
        elif self.mode == 1:  # vertical: down the pages, then the next column
            if self.page >= self.page_hi:
                self.page = self.page_lo
                self.col = self.col_lo if self.col >= self.col_hi else self.col + 1
            else:
                self.page += 1
        elif self.col < 127:  # page mode: along the page, staying at its end
            self.col += 1

    def lit(self):
        """The panel is lit: on, with its charge pump (the module has no other supply for it)."""
        return self.on and self.pump

    def screen(self, out=None):
        """What the panel shows, as rows of width bits, MSB on the left (bytes, width/8 per row):
        the RAM row that drives each COM line after start line and offset, mirrored as the segment
        remap and COM scan direction say, for a module wired as the common 0.96" ones are (its
        upright picture needs A1 and C8)."""
        w, h = self.width, self.height
        stride = w // 8
        out = out if out is not None else bytearray(stride * h)
        for i in range(len(out)):
            out[i] = 0
        if not self.lit():
            return out
        for y in range(h):
            com = y if self.com_rev else h - 1 - y  # the module's top row is the last COM without C8
            if com >= self.mux:
                continue
            row = (com + self.start_line + self.offset) % 64
            page, bit = row >> 3, 1 << (row & 7)
            for x in range(w):
                col = x if self.remap else w - 1 - x
                on = self.all_on or bool(self.ram[page * 128 + col] & bit)
                if on != self.invert:
                    out[y * stride + (x >> 3)] |= 0x80 >> (x & 7)
        return out
