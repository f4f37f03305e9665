# Helpers for firmware tests under MicroPython: assertions, a flash in a temporary file that can
# lose power, a littlefs mounted on it.
import asyncio
import gc

import vfs
from _vflash import FlashPartition


def eq(a, b, what=""):
    if a != b:
        raise AssertionError("%s: %r != %r" % (what or "values differ", a, b))


def raises(exc_type, fn, *args, **kw):
    try:
        fn(*args, **kw)
    except exc_type as e:
        return e
    raise AssertionError("%s not raised" % exc_type.__name__)


class RamFlash(FlashPartition):
    """A whole flash of `blocks` 4096-byte blocks in a temporary file (a RAM copy would not fit
    the ESP32 heap); power can be cut after the k-th erase or program (then `dead`: nothing more
    reaches the flash)."""

    def __init__(self, blocks=16):
        import binascii
        import os

        # in the folder the test runner made for this process (removed after it), else /tmp
        folder = os.getenv("FWTEST_TMP") or "/tmp"
        self.path = "%s/fwtest-%s.bin" % (folder, binascii.hexlify(os.urandom(6)).decode())
        f = open(self.path, "w+b")
        ff = b"\xff" * 256  # erased flash, written in pieces (no 4 KB block of the test's heap)
        for _ in range(16 * blocks):
            f.write(ff)
        super().__init__(f, 0, blocks * 4096)

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


_mounted = []


def fresh_flash(point, blocks=16):
    """A new empty RamFlash formatted and mounted at `point` (the previous one is dropped, and its
    filesystem's buffers freed, before the new one takes heap)."""
    close_flashes()
    try:
        vfs.umount(point)
    except OSError:
        pass
    gc.collect()
    flash = RamFlash(blocks)
    _mounted.append(flash)
    mount(flash, point, mkfs=True)
    return flash


def close_flashes(point=None):
    if point:
        vfs.umount(point)
    while _mounted:
        _mounted.pop().close()


def run(coro):
    return asyncio.run(coro)


async def settle(r, events):
    """Wait until radio driver r has handled `events` receive interrupts in all."""
    for _ in range(1000):
        if r.stats["rx"] + r.stats["rx_bad"] + r.stats["rx_crc"] + r.stats["rx_overflow"] >= events:
            return
        await asyncio.sleep_ms(1)
    raise AssertionError("driver did not handle the interrupt")


def run_fresh(coro):
    """asyncio.run, then a fresh loop: drops tasks a test left waiting (a receive loop)."""
    try:
        return asyncio.run(coro)
    finally:
        asyncio.new_event_loop()
