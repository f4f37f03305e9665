# Helpers for firmware tests under MicroPython: assertions, a RAM block device that can lose
# power, a littlefs mounted on it, running coroutines.
import asyncio

import vfs


def eq(a, b, what=""):
    if a != b:
        raise AssertionError("%s: %r != %r" % (what or "values differ", a, b))


def raises(exc_type, fn, *args, **kw):
    try:
        fn(*args, **kw)
    except exc_type as e:
        return e
    raise AssertionError("%s not raised" % exc_type.__name__)


class PowerCut(BaseException):
    """The flash lost power (raised out of littlefs, which then stays as the flash holds it)."""


class RamFlash:
    """4096-byte-block NOR-like flash with the esp32 Partition interface, kept in a temporary
    file (a RAM copy would not fit the ESP32 heap); erases and programs are counted, and power
    can be cut after the k-th."""

    def __init__(self, blocks=16):
        import binascii
        import os

        self.path = "/tmp/fwtest-%s.bin" % binascii.hexlify(os.urandom(6)).decode()
        self.f = open(self.path, "w+b")
        self._ff = b"\xff" * 4096
        for _ in range(blocks):
            self.f.write(self._ff)
        self.blocks = blocks
        self.ops = 0
        self.cut_after = 0

    def _op(self):
        self.ops += 1
        if self.cut_after and self.ops >= self.cut_after:
            self.cut_after = 0
            raise PowerCut()

    def readblocks(self, block, buf, off=0):
        self.f.seek(block * 4096 + off)
        self.f.readinto(buf)

    def writeblocks(self, block, buf, off=None):
        if off is None:
            self.ioctl(6, block)
            off = 0
        self.f.seek(block * 4096 + off)
        self.f.write(buf)
        self._op()

    def ioctl(self, op, arg):
        if op == 4:
            return self.blocks
        if op == 5:
            return 4096
        if op == 6:
            self.f.seek(arg * 4096)
            self.f.write(self._ff)
            self._op()
            return 0
        return None

    def snapshot(self):
        """Copy of the whole flash, kept in another temporary file."""
        snap = RamFlash(self.blocks)
        self.copy_to(snap)
        return snap

    def copy_to(self, other):
        buf = bytearray(4096)
        for b in range(self.blocks):
            self.readblocks(b, buf)
            other.f.seek(b * 4096)
            other.f.write(buf)

    def close(self):
        import os

        self.f.close()
        os.remove(self.path)


def mount(flash, point="/t", mkfs=False):
    """Mount littlefs from `flash` at `point` (remounting if needed); returns the mount point."""
    try:
        vfs.umount(point)
    except OSError:
        pass
    if mkfs:
        vfs.VfsLfs2.mkfs(flash)
    vfs.mount(vfs.VfsLfs2(flash), point)
    return point


def run(coro):
    return asyncio.run(coro)
