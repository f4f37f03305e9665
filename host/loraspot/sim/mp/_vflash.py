# A partition of a flash image file as a block device with the esp32 Partition interface
# (4096-byte blocks, extended readblocks/writeblocks with offsets, erase by ioctl 6). It counts
# erases and programs and can lose power after the k-th one: from then on nothing reaches the
# flash (`dead`), and on_cut, if given, is called (the virtual board stops the interpreter there).
# Used by the virtual board and by the firmware tests.
BLOCK = 4096


class FlashPartition:
    _ff = b"\xff" * 256  # erase in small pieces (this code shares the firmware's heap): made once, at boot

    def __init__(self, f, offset, size, cut_after=0, on_cut=None):
        self.f = f
        self.offset = offset
        self.blocks = size // BLOCK
        self.ops = 0
        self.cut_after = cut_after
        self.on_cut = on_cut
        self.dead = False

    def _op(self):
        self.ops += 1
        if self.cut_after and self.ops >= self.cut_after:
            self.cut_after = 0
            self.dead = True
            if self.on_cut:
                self.on_cut(self.ops)

    def readblocks(self, block, buf, off=0):
        self.f.seek(self.offset + block * BLOCK + off)
        self.f.readinto(buf)

    def writeblocks(self, block, buf, off=None):
        if off is None:
            self.ioctl(6, block)
            off = 0
        if self.dead:
            return
        self.f.seek(self.offset + block * BLOCK + off)
        self.f.write(buf)
        self._op()

    def ioctl(self, op, arg):
        if op == 4:
            return self.blocks
        if op == 5:
            return BLOCK
        if op == 6:
            if self.dead:
                return 0
            self.f.seek(self.offset + arg * BLOCK)
            for _ in range(BLOCK // 256):
                self.f.write(self._ff)
            self._op()
            return 0
        return None
