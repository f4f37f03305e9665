# Fake pins and a fake SPI bus that hand every byte to a chip model, so radio drivers run
# unchanged against register- or command-level models of the Semtech chips.


class FakePin:
    IRQ_RISING = 1
    IRQ_FALLING = 2

    def __init__(self, name, value=0, on_change=None):
        self.name = name
        self._v = value
        self.on_change = on_change
        self.handler = None
        self.changes = 0

    def value(self, v=None):
        if v is None:
            return self._v
        v = 1 if v else 0
        old, self._v = self._v, v
        self.changes += 1
        if self.on_change is not None and old != v:
            self.on_change(v)

    def __call__(self, v=None):
        return self.value(v)

    def irq(self, handler=None, trigger=IRQ_RISING):
        self.handler = handler

    def drive(self, v):
        """The chip drives this pin; a rising edge runs the IRQ handler at once, as a hard IRQ."""
        old, self._v = self._v, 1 if v else 0
        if self._v and not old and self.handler is not None:
            self.handler(self)


class FakeSPI:
    """Bytes go to model.xfer(byte) -> byte while the chip-select pin is low."""

    def __init__(self, model):
        self.model = model

    def _check(self):
        if not self.model.selected:
            raise AssertionError("SPI transfer with NSS high")

    def write(self, buf):
        self._check()
        m = self.model
        for i in range(len(buf)):
            m.xfer(buf[i])

    def readinto(self, buf, write=0):
        self._check()
        m = self.model
        for i in range(len(buf)):
            buf[i] = m.xfer(write)

    def write_readinto(self, wbuf, rbuf):
        self._check()
        m = self.model
        for i in range(len(wbuf)):
            rbuf[i] = m.xfer(wbuf[i])


class FakeClockSource:
    """A microsecond / millisecond source the test moves by hand."""

    def __init__(self, us=0):
        self.us = us

    def ticks_us(self):
        return self.us

    def ticks_ms(self):
        return self.us // 1000
