# Boot ROM + MicroPython start-up of the virtual board, run by the unix port:
# mounts the littlefs partition of the board's flash image at "/" through a block device with the
# ESP32 partition's interface (4096-byte blocks, erase by ioctl 6), installs the `machine`
# stand-in, then runs boot.py and main.py as the esp32 port does, and a REPL after them.
import micropython

micropython.kbd_intr(-1)  # the ROM and MicroPython's own start cannot be interrupted on a board
import gc
import json
import os
import sys

import _vboard
import _vmachine
import _vrepl  # the REPL is C on a board: imported here, it counts against the boot allowance
import _vside
import vfs
from _vflash import FlashPartition

cfg = json.loads(os.getenv("LORASPOT_VBOARD"))
if cfg.get("wifi") is not None or cfg.get("panel"):
    # the Wi-Fi, the button, the display's link: C on a board, so loaded before the heap is
    # measured, and only on a board that uses them (their names would otherwise shift where
    # MicroPython's table of names grows for every other board)
    import _vwifi
if cfg.get("ota"):
    import _vesp32
side = open("/dev/fd/%d" % cfg["side_fd"], "wb")


def _power_cut(ops):
    _vside.tell(_vside.POWERCUT, ops)
    _vmachine.halt()


_vboard.SPEED = cfg["speed"]
_vboard.START_US = cfg.get("start_us")
_vboard.START_MS = cfg.get("start_ms")
if cfg.get("medium"):
    _vboard.MEDIUM = tuple(cfg["medium"])
_vboard.POSITION = tuple(cfg.get("position") or (0, 0, 0))
_vboard.RADIO_ID = cfg["mac"]
_vboard.WIFI = cfg.get("wifi")
_vboard.HTTP_PORT = cfg.get("http_port", 0)
_vmachine.setup(side, cfg["cause"], bytes.fromhex(cfg["mac"]), bytes.fromhex(cfg.get("rtc", "")), cfg.get("efuse"))
sys.modules["machine"] = _vmachine
if cfg.get("hw"):
    import _vdevices  # the board's sensors: hardware, so set up before the heap is measured out

    _vdevices.setup(cfg["hw"], cfg["speed"])
if cfg.get("wifi") is not None or cfg.get("panel"):  # the button, and the display on its bus
    _vwifi.start(cfg, _vdevices.STATE["i2c"] if cfg.get("hw") else None)

flash = open(cfg["flash"], "r+b")
bdev = FlashPartition(flash, cfg["vfs_offset"], cfg["vfs_size"], cfg.get("powercut_after", 0), _power_cut)
vfs.umount("/")
try:
    vfs.mount(vfs.VfsLfs2(bdev), "/")
except OSError:
    print("The filesystem appears to be corrupted or empty; flash the board again.")
    _vside.tell(_vside.NOFS)
    while True:
        pass
os.chdir("/")
sys.path[:] = ["", ".frozen", "/lib"]
if cfg.get("ota"):  # an image with two app slots: esp32.Partition over them (C on a board)
    _vesp32.setup(flash, cfg["ota"])
    sys.modules["esp32"] = _vesp32
if cfg.get("romfs"):
    # A ROMFS partition, as an ESP32 image built with ROMFS mounts it: .mpy files run from it in
    # place (bytecode, strings and constants stay in the mapped flash, not in the heap).
    flash.seek(cfg["romfs"][0])
    _rom = flash.read(cfg["romfs"][1])
    try:
        vfs.mount(vfs.VfsRom(_rom), "/rom")
        sys.path[1:1] = ["/rom", "/rom/lib"]
    except OSError:
        print("The ROMFS partition holds no valid ROMFS image; flash the board again.")
    del _rom
# MicroPython's unix port polls file descriptors with the system's poll (the port's
# MICROPY_PY_SELECT_POSIX_OPTIMISATIONS, off on the ESP32). When a poller's array of descriptors
# grows by moving, extmod/modselect.c (poll_set_add_fd) moves the entry of every registered object,
# also of one without a descriptor (asyncio's ThreadSafeFlag): that entry points into freed heap and
# the next poll crashes the interpreter. The firmware's asyncio gets a poller made here with room
# for 32 descriptors, so it never grows; every other caller gets select.poll() as it is.
import select

_poller = [select.poll()]
for _n in range(1000, 1032):
    _poller[0].register(_n, 0)
for _n in range(1000, 1032):
    _poller[0].unregister(_n)
sys.modules["select"] = type("select", (), {
    "POLLIN": select.POLLIN, "POLLOUT": select.POLLOUT, "POLLERR": select.POLLERR, "POLLHUP": select.POLLHUP,
    "poll": lambda: _poller.pop() if _poller and "asyncio.core" in sys.modules else select.poll()})
# The virtual radio reads each of the medium's datagrams with recv, which takes a block of the heap
# where a chip's FIFO takes none: on a cut-up heap it could not read the end of its own transmission
# and the board stopped listening. A block kept here, out of the board's heap, is lent to the heap
# when recv finds no room, and taken back once there is (spot.radio.virtual, its _SPARE).
_vboard.RADIO_SPARE = [bytearray(768)]
# The interpreter's heap is the board's plus an allowance for this boot code (C on an ESP32): the
# rest of the allowance is taken by a ballast block, so the firmware starts with the free heap of a
# fresh interpreter of the board's size (and a boot that outgrew its allowance is reported).
_target = cfg["target_free"]
# A soft reset from the raw REPL comes back to the raw REPL: boot.py runs, main.py does not.
_repl_mode = cfg.get("repl") or "friendly"
del cfg
gc.collect()
_excess = gc.mem_free() - _target
if _excess < 0:
    _vside.tell(_vside.HEAPSHORT, -_excess)
_ballast = bytearray(_excess - 48) if _excess > 1024 else None
del _excess
gc.collect()


_main = {"__name__": "__main__"}  # boot.py, main.py and the REPL share the __main__ globals


def _run(path):
    """A script as the esp32 port's pyexec runs it: compiled, then run with Ctrl-C on (whatever
    the previous script left), Ctrl-C off again after it; an exception is printed and the boot
    goes on."""
    try:
        os.stat(path)
    except OSError:
        return
    with open(path) as f:
        code = compile(f.read(), path, "exec")
    try:
        micropython.kbd_intr(3)
        exec(code, _main)
    except BaseException as e:  # KeyboardInterrupt included: pyexec prints it and goes on
        micropython.kbd_intr(-1)
        sys.print_exception(e)
    micropython.kbd_intr(-1)


_vside.tell(_vside.SCRIPTS)  # from here on a Ctrl-C on the line may interrupt (the UART's cue)
_run("boot.py")
if _repl_mode != "raw":
    _run("main.py")

try:
    _mode = _vrepl.Repl(_main).run(_repl_mode)
except EOFError:
    _vside.tell(_vside.RESET, _vside.VM)
    _vmachine.halt()
sys.stdout.buffer.write(b"MPY: soft reboot\n")
_vside.tell(_vside.SOFTREBOOT, _mode.encode())
_vmachine.halt()
