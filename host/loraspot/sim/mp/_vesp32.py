# The `esp32` module of a virtual board whose image has two app slots (the virtual-ota profile,
# standing in for MicroPython's ESP32_GENERIC-OTA): esp32.Partition as MicroPython documents it
# (docs/library/esp32.rst: RUNNING, BOOT, find, info, the block protocol, get_next_update,
# set_boot, mark_app_valid_cancel_rollback), over the app slots and the otadata partition of the
# board's flash file. What boots at the next reset is decided by the virtual bootloader (the
# supervisor) from the same otadata, with ESP-IDF's rules (_votadata).
import _votadata as od
from _vflash import BLOCK, FlashPartition

_flash = None
_slots = []  # [[offset, size, label], ...]: ota_0, ota_1
_otadata = None  # [offset, size]
_running = 0
ESP_ERR_NOT_FOUND = 0x105
ESP_ERR_OTA_VALIDATE_FAILED = 0x1503


def setup(flash, cfg):
    """flash: the open flash file; cfg: {"slots", "otadata", "running"} from the bootloader."""
    global _flash, _slots, _otadata, _running
    _flash, _slots, _otadata, _running = flash, cfg["slots"], cfg["otadata"], cfg["running"]


class _Otadata:
    """The two copies' 32 bytes, read as _votadata slices the partition (copy i at i * SECTOR):
    the 8 KB of the partition are not read into the heap, which is the firmware's (ESP-IDF does
    this in C on a board)."""

    def __init__(self):
        self.copies = []
        for i in range(2):
            _flash.seek(_otadata[0] + i * od.SECTOR)
            self.copies.append(_flash.read(32))

    def __getitem__(self, s):
        i = s.start // od.SECTOR
        return self.copies[i][s.start - i * od.SECTOR : s.stop - i * od.SECTOR]


def _read_otadata():
    return _Otadata()


def _write_copy(index, entry):
    dev = FlashPartition(_flash, _otadata[0], _otadata[1])
    dev.ioctl(6, index)  # erase the copy's sector, then program its 32 bytes
    dev.writeblocks(index, entry, 0)
    _flash.flush()


class Partition:
    BOOT = 0
    RUNNING = 1
    TYPE_APP = 0
    TYPE_DATA = 1

    def __init__(self, id, block_size=BLOCK):
        if id == Partition.RUNNING:
            i = _running
        elif id == Partition.BOOT:
            es = od.entries(_read_otadata())
            a = od.active(es)
            i = 0 if a < 0 else (es[a][0] - 1) % len(_slots)
        else:
            i = -1
            for k in range(len(_slots)):
                if _slots[k][2] == id:
                    i = k
            if i < 0:
                raise ValueError("partition not found")
        self._i = i
        off, size, _ = _slots[i]
        self._dev = FlashPartition(_flash, off, size)

    @staticmethod
    def find(type=TYPE_APP, subtype=0xFF, label=None, block_size=BLOCK):
        if type != Partition.TYPE_APP:
            return []
        return [Partition(s[2]) for k, s in enumerate(_slots)
                if (label is None or s[2] == label) and subtype in (0xFF, 0x10 + k)]

    def info(self):
        off, size, label = _slots[self._i]
        return (Partition.TYPE_APP, 0x10 + self._i, off, size, label, False)

    def readblocks(self, block, buf, off=0):
        self._dev.readblocks(block, buf, off)

    def writeblocks(self, block, buf, off=None):
        self._dev.writeblocks(block, buf, off)
        _flash.flush()

    def ioctl(self, op, arg):
        r = self._dev.ioctl(op, arg)
        if op == 6:
            _flash.flush()
        return r

    def get_next_update(self):
        return Partition(_slots[(self._i + 1) % len(_slots)][2])

    def set_boot(self):
        head = bytearray(1)
        self._dev.readblocks(0, head)
        if head[0] != 0xE9:  # esp_ota_set_boot_partition verifies the image first
            raise OSError(-ESP_ERR_OTA_VALIDATE_FAILED)
        index, entry = od.set_boot(_read_otadata(), self._i, len(_slots))
        _write_copy(index, entry)

    @classmethod
    def mark_app_valid_cancel_rollback(cls):
        w = od.mark_valid(_read_otadata(), _running, len(_slots))
        if w is not None:
            _write_copy(*w)

    def __repr__(self):
        off, size, label = _slots[self._i]
        return "<Partition type=0, subtype=%d, address=%d, size=%d, label=%s, encrypted=0>" % (
            0x10 + self._i, off, size, label)
