"""A virtual ESP32 board: the loraspot firmware from a flash image, run by the MicroPython unix
port under an ESP32-sized heap, behind an emulated UART served as a pty and over RFC 2217."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from loraspot import boards, localports, resources
from loraspot.errors import ImageError
from loraspot.flash import image, partitions
from loraspot.flash.mpy import compiled_firmware
from loraspot.sim import romloader
from loraspot.sim.mp import _vside
from loraspot.sim.parts import BoardParts
from loraspot.sim.uart import LineControl, PtyEndpoint, Rfc2217Endpoint, Uart

HEAP_KB = 112  # the ESP32's MicroPython heap as the firmware sees it (tests use the same limit)
# The interpreter gets this much more, for what the virtual board's own boot code holds (the ROM,
# `machine` and the flash driver are C on an ESP32 and use none of its heap); vboot fills whatever
# of it is left over, so main.py starts with exactly the free heap a fresh 112 KB interpreter has.
BOOT_ALLOWANCE_KB = 48
HARDWARE_ALLOWANCE_KB = 24  # and this much more for the models of its parts (sensors, display: sim/mp/_vhw.py)
_fresh_free: dict[int, int] = {}


def fresh_free(heap_kb: int = HEAP_KB) -> int:
    """gc.mem_free() of a fresh interpreter with heap_kb of heap (measured once per process)."""
    if heap_kb not in _fresh_free:
        out = subprocess.run([*micropython_command(), "-X", f"heapsize={heap_kb}K", "-c",
                              "import gc; gc.collect(); print(gc.mem_free())"],
                             capture_output=True, text=True, check=True, timeout=30)
        _fresh_free[heap_kb] = int(out.stdout)
    return _fresh_free[heap_kb]
CAUSES = {"power_on": 1, "hard": 2, "watchdog": 3, "deepsleep": 4, "soft": 5}
ROM_BANNER = {
    "power_on": b"ets Jun  8 2016 00:22:57\r\n\r\nrst:0x1 (POWERON_RESET),boot:0x13 (SPI_FAST_FLASH_BOOT)\r\n",
    "hard": b"ets Jun  8 2016 00:22:57\r\n\r\nrst:0xc (SW_CPU_RESET),boot:0x13 (SPI_FAST_FLASH_BOOT)\r\n",
    "deepsleep": b"ets Jun  8 2016 00:22:57\r\n\r\nrst:0x5 (DEEPSLEEP_RESET),boot:0x13 (SPI_FAST_FLASH_BOOT)\r\n",
    "download": b"ets Jun  8 2016 00:22:57\r\n\r\nrst:0x1 (POWERON_RESET),"
    b"boot:0x3 (DOWNLOAD_BOOT(UART0/UART1/SDIO_REI_REO_V2))\r\nwaiting for download\r\n",
}


def _load_prctl():
    if not sys.platform.startswith("linux"):
        return None
    try:
        import ctypes

        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None


_PRCTL = _load_prctl()  # resolved here: the forked child must not enter the dynamic loader


def _die_with_parent() -> None:
    """In the child, before exec: on Linux the interpreter gets SIGKILL when its board process
    dies, so a crashed host never leaves firmware running."""
    if _PRCTL is not None:
        _PRCTL(1, 9)  # PR_SET_PDEATHSIG, SIGKILL


def micropython_command() -> list[str]:
    exe = Path(sys.executable).with_name("micropython")
    if exe.exists():
        return [str(exe)]
    found = shutil.which("micropython")
    if found:
        return [found]
    from loraspot.extras import MissingExtra

    raise MissingExtra("sim", "a virtual board (the MicroPython unix port)")


def ensure_efuse(flash: Path, board_id: str) -> dict:
    """The board's eFuse stand-in beside its flash image: its MAC, chosen once, and the security
    eFuses under "security" (absent: all unburnt, as on a board from the shop; a test may burn
    them: {"flash_crypt_cnt": 1, "secure_boot": true, "download": "secure"})."""
    path = flash.with_name(flash.name + ".efuse.json")
    if path.exists():
        return json.loads(path.read_text())
    mac = bytes([0x02, 0x4C, 0x53]) + secrets.token_bytes(3)  # locally administered
    data = {"mac": mac.hex(), "board": board_id}
    path.write_text(json.dumps(data))
    return data


def ensure_image(flash: Path, profile: dict, config: dict | None = None, secret: dict | None = None) -> bool:
    """Create the flash image with the current firmware if it is missing, as `loraspot flash` ships
    it (bytecode: compiling source on the board would need far more heap), with the given config
    and secrets (name: bytes, in the virtual board's secrets file); True if created."""
    if flash.exists():
        return False
    flash.parent.mkdir(parents=True, exist_ok=True)
    mpy = compiled_firmware(resources.cache_dir() / "mpy-cache")
    files = image.app_files(profile, config, mpy_dir=mpy)
    if secret:
        files["secrets.json"] = json.dumps({k: v.hex() for k, v in secret.items()}).encode()
    image.create_flash_image(flash, profile, files)
    return True


@dataclass
class BoardOptions:
    flash: Path
    board: str = "virtual"
    baud: int = 115200
    speed: int = 1
    rfc2217_port: int = 0
    pty: bool = True
    powercut_after: int = 0
    clock_start_us: int | None = None
    clock_start_ms: int | None = None
    register: bool = True
    medium: tuple[str, int] | None = None  # the RF medium's UDP address
    position: tuple[float, float, float] = (0.0, 0.0, 0.0)  # metres, for path loss
    extra_env: dict = field(default_factory=dict)
    # the firmware's heap in KB; None: the profile's budget (docs/boards.md) for the role in the
    # board's config at each boot: with Wi-Fi on for a hotspot, without for a node
    heap_kb: int | None = None
    hardware: dict = field(default_factory=dict)  # virtual sensors: {"bme280": {...}, "gps": {...}, ...}
    blank: bool = False  # a missing flash image starts erased (a board fresh from the factory)
    auto_reset: bool = True  # False: no DTR/RTS reset circuit (download mode only by the BOOT button)
    max_baud: int = 0  # the USB-serial chip's limit: at a higher rate nothing gets through (0: none)
    # Wi-Fi networks in reach {ssid: passphrase}: the board joins only these, with the right
    # passphrase, and can open its set-up access point; None: it is on the host's network
    wifi: dict | None = None



def _starved_s(pid: int) -> float:
    """Seconds process pid has spent ready to run but waiting for a CPU (Linux's schedstat, its
    main thread; 0.0 where there is none)."""
    try:
        with open(f"/proc/{pid}/schedstat") as f:
            return int(f.read().split()[1]) / 1e9
    except (OSError, ValueError, IndexError):
        return 0.0

class VirtualBoard:
    def __init__(self, opts: BoardOptions, on_status: Callable[[dict], None] | None = None):
        self.opts = opts
        self.profile = boards.get(opts.board)
        self.parts = BoardParts(self.profile, opts.wifi, on_status or (lambda _s: None))
        self.heap_kb = self._budget_kb()  # again at each boot: the role may have changed
        self._status = on_status or (lambda _s: None)
        self.uart = Uart(opts.baud)
        self.uart.max_baud = opts.max_baud
        self.control = LineControl(opts.baud, self._lines_changed, self.uart.set_baud)
        self.pty: PtyEndpoint | None = None
        self.rfc: Rfc2217Endpoint | None = None
        self.efuse: dict = {}
        self.device_id = ""
        self._proc: subprocess.Popen | None = None
        self._proc_lock = threading.Lock()  # spawning and killing exclude each other
        self._rtc = b""
        self._mode = "run"
        self._held = False
        self._wake = threading.Event()
        self._stop = False
        self._cause = "power_on"
        self._powercut_after = opts.powercut_after
        self._thread: threading.Thread | None = None
        self.boots = 0
        self._reg_path: Path | None = None
        self._wdt_ms = 0  # the firmware's watchdog timeout (device ms), 0 until it starts one
        self._wdt_due = 0.0  # host monotonic time at which an unfed watchdog resets the board
        self._wdt_fired = False
        self._wdt_starved = 0.0  # seconds the process had waited for a CPU when the watchdog was last fed
        self._pid = 0
        self._soft_reboot = ""  # after a soft reset from the REPL: "raw" or "friendly" (no ROM banner)

    # --- lifecycle ----------------------------------------------------------------------------------
    def start(self) -> dict:
        micropython_command()  # no unix port (loraspot without [sim]): say so here, not in a thread
        flash = Path(self.opts.flash)
        if self.opts.blank and not flash.exists():
            flash.parent.mkdir(parents=True, exist_ok=True)
            flash.write_bytes(b"\xff" * self.profile["flash"]["size"])
        ensure_image(flash, self.profile)
        self.efuse = ensure_efuse(flash, self.opts.board)
        self.device_id = self.efuse["mac"]
        self.parts.device_id = self.device_id
        self.vfs: image.Partition | None = None
        self.ota: dict | None = None  # app slots: what the bootloader chose (_boot_slot)
        self.romfs: image.Partition | None = None
        if self.opts.pty:
            self.pty = PtyEndpoint(self.uart)
        self.rfc = Rfc2217Endpoint(self.uart, self.control, self.opts.rfc2217_port, pty=self.pty)
        info = {"event": "serving", "id": self.device_id, "board": self.opts.board, "pty": self.pty and self.pty.path,
                "url": self.rfc.url, "flash": str(flash), "pid": os.getpid(), "http": self.parts.http_port,
                "button": self.parts.button_port}
        air = self.parts.air
        if air is not None:
            info["air"] = air.port
        if self.opts.register:  # listed as a port, as a USB board would be (the profile's USB id)
            usb = self.profile["usb"][0]
            url = info["pty"] or info["url"]
            self._reg_path = localports.announce({
                "url": url, "reset_url": info["url"] if url != info["url"] else None,
                "description": "loraspot virtual board", "vid": int(usb["vid"], 16), "pid": int(usb["pid"], 16),
                "serial_number": self.device_id, "process": os.getpid(), "http": self.parts.http_port,
                "button": self.parts.button_port, "air": air.port if air else None})
        self._thread = threading.Thread(target=self._supervise, name="firmware", daemon=True)
        self._thread.start()
        self._status(info)
        return info

    def stop(self) -> None:
        """Stop the firmware and the endpoints; calling it again does nothing."""
        if self._stop:
            return
        self._stop = True
        self._wake.set()
        self._kill()
        if self._thread:
            self._thread.join(timeout=5)
        for ep in (self.pty, self.rfc):
            if ep:
                ep.close()
        self.uart.close()
        self.parts.close()
        if self._reg_path:
            localports.withdraw(self._reg_path)

    def __enter__(self) -> VirtualBoard:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def firmware_pid(self) -> int | None:
        p = self._proc
        return p.pid if p and p.poll() is None else None

    def kill_firmware(self) -> None:
        """Cut the power of the chip (the supervisor powers it on again)."""
        self._kill()

    def _kill(self) -> None:
        with self._proc_lock:
            p = self._proc
            if p and p.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    p.kill()

    # --- reset circuit ------------------------------------------------------------------------------
    def _lines_changed(self, dtr: bool, rts: bool) -> None:
        """The classic two-transistor auto-reset circuit of ESP32 boards: EN is pulled low only
        while RTS is asserted and DTR is not, IO0 only while DTR is asserted and RTS is not, and
        the boot mode is IO0's level when EN rises. Lines that change together (esptool's DTR on,
        then RTS off, a moment apart) pass through "both asserted": the capacitor on EN keeps the
        chip in reset over that instant, so the mode is read once RTS is released. Releasing RTS
        while the chip was not held (mpremote closing the port: RTS, then DTR) resets nothing."""
        if not self.opts.auto_reset:
            return
        if rts and not dtr:
            if not self._held:
                self._held = True
                self._cause = "power_on"  # the EN pin: the ROM reports POWERON_RESET
                self._kill()
        elif self._held and not rts:
            self._held = False
            self._mode = "download" if dtr else "run"
            self._wake.set()

    # --- firmware supervisor ------------------------------------------------------------------------
    def _env(self, side_fd: int, romfs: list[int] | None) -> dict:
        assert self.vfs is not None  # _check_flash found it
        cfg = {"flash": str(Path(self.opts.flash).resolve()), "vfs_offset": self.vfs.offset, "vfs_size": self.vfs.size,
               "side_fd": side_fd, "speed": self.opts.speed, "cause": CAUSES[self._cause], "mac": self.efuse["mac"],
               "rtc": self._rtc.hex(), "powercut_after": self._powercut_after,
               "start_us": self.opts.clock_start_us, "start_ms": self.opts.clock_start_ms,
               "medium": list(self.opts.medium) if self.opts.medium else None, "position": list(self.opts.position),
               "romfs": romfs, "repl": self._soft_reboot or None, "ota": self.ota,
               "target_free": fresh_free(self.heap_kb), "efuse": self._efuse_words(),
               "hw": self._hardware(), "wifi": self.opts.wifi, **self.parts.boot_env()}
        env = dict(os.environ)
        env["LORASPOT_VBOARD"] = json.dumps(cfg)
        env.update(self.opts.extra_env)
        return env

    def _hardware(self) -> dict | None:
        """The virtual sensors on the board (the display's panel runs here, in the supervisor)."""
        hw = dict(self.opts.hardware)
        if not hw:
            return None
        hw["boot"] = self.boots
        return hw

    def _efuse_words(self) -> list[list[int]]:
        """The security eFuse words the firmware reads through machine.mem32 ([address, value])."""
        chip = romloader.CHIPS.get(self.profile["chip"])
        return [] if chip is None else [[a, v] for a, v in chip.security_words(self.efuse.get("security")).items()]

    def _budget_kb(self) -> int:
        """The firmware's heap for this boot: as the test set it, else the profile's budget for the
        role in the board's config (a hotspot runs Wi-Fi, which takes its share of the RAM)."""
        cfg = self._config()
        self.parts.display_on = bool(cfg.get("display"))
        if self.opts.heap_kb:
            return self.opts.heap_kb
        budget = self.profile["memory"]["heap_kb"]
        return budget["wifi"] if cfg.get("role") == "hotspot" else budget["no_wifi"]

    def _config(self) -> dict:
        """The board's config as its flash holds it now ({} when there is none yet)."""
        try:
            fs = image.read_vfs(Path(self.opts.flash))  # kept while its file is read
            with fs.open("/config.json", "r") as f:
                cfg = json.loads(f.read())
        except Exception:  # no config yet, an erased or half-written filesystem (littlefs's own errors)
            return {}
        return cfg if isinstance(cfg, dict) else {}

    def _romfs_span(self) -> list[int] | None:
        """[offset, length] of the ROMFS image in the flash file (read when the board boots, as
        flashing may have changed it), or None."""
        if self.romfs is None:
            return None
        with open(self.opts.flash, "rb") as f:
            f.seek(self.romfs.offset)
            length = image.romfs_length(f.read(16))
        return [self.romfs.offset, min(length, self.romfs.size)] if length else None

    def _supervise(self) -> None:
        while not self._stop:
            if self._held:
                self.uart.attach(None, None)
                self._wake.wait()
                self._wake.clear()
                continue
            if self._mode == "download":
                self._download_mode()
                continue
            self._run_once()

    def _download_mode(self) -> None:
        """The ROM's serial bootloader (host/loraspot/sim/romloader.py) until the next reset or a
        "run" command from the loader."""
        self.uart.emit(ROM_BANNER["download"])
        self._status({"event": "boot", "mode": "download"})
        mac = bytes.fromhex(self.efuse["mac"])

        def run_app() -> None:
            self._mode, self._cause = "run", "hard"
            self._wake.set()

        try:
            with romloader.session(Path(self.opts.flash), self.profile["flash"]["size"], mac, self.uart, run_app,
                                   self.profile["chip"], self.efuse.get("security")) as rom:
                self._wake.wait()
                self._wake.clear()
        except ValueError as e:  # no loader model for this chip: it waits for the next reset
            self._status({"event": "download_unsupported", "error": str(e)})
            self._wake.wait()
            self._wake.clear()
            return
        self._status({"event": "download_done", "commands": rom.commands})

    def arm_powercut(self, ops: int) -> None:
        """Cut the power after the ops-th flash erase or program of the next boot (the running
        one counts on as it was started): a cut in what a reset starts, e.g. an update's switch."""
        self._powercut_after = ops

    def _check_flash(self) -> str:
        """What the ROM and the second-stage bootloader check before the application runs: a valid
        bootloader image for this chip at its offset, the partition table, a valid application in
        the factory partition. Sets the vfs/romfs partitions; returns "" or the error."""
        from loraspot.flash import espimage

        offset = self.profile["image"]["offset"]
        with open(self.opts.flash, "rb") as f:
            f.seek(offset)
            head = f.read(image.TABLE_OFFSET - offset + image.TABLE_MAX)
            try:
                espimage.read_image(head, self.profile["chip"])
                parts = image.decode_partition_table(head[image.TABLE_OFFSET - offset :])
                self.ota = None
                ota = partitions.ota_slots_of(parts)
                if ota is not None:
                    app = self._boot_slot(f, *ota)
                else:
                    app = next((p for p in parts if p.type == image.TYPE_APP), None)
                if app is None:
                    return "the partition table has no application partition"
                f.seek(app.offset)
                espimage.read_image(f.read(app.size), self.profile["chip"])
                self.vfs = image.vfs_of(parts)
            except ImageError as e:
                return str(e)
        self.romfs = image.romfs_of(parts)
        return ""

    def _boot_slot(self, f, otadata: partitions.Partition, slots: list[partitions.Partition]):
        """The second-stage bootloader of an image with app slots (ESP-IDF's, rollback enabled, as
        in MicroPython's OTA image): the slot otadata selects, an update never confirmed aborted,
        a new one made pending_verify; a slot whose image does not load is passed over for the
        next (bootloader_utility.c). Sets self.ota for the firmware's esp32.Partition."""
        from loraspot.flash import espimage
        from loraspot.sim.mp import _votadata as od

        f.seek(otadata.offset)
        data = f.read(2 * od.SECTOR)
        index, writes = od.boot(data, len(slots))
        if writes:
            with open(self.opts.flash, "r+b") as w:
                for copy, entry in writes:
                    w.seek(otadata.offset + copy * od.SECTOR)
                    w.write(entry.ljust(od.SECTOR, b"\xff"))
        for k in [index] + [i for i in range(len(slots)) if i != index]:
            f.seek(slots[k].offset)
            try:
                espimage.read_image(f.read(slots[k].size), self.profile["chip"])
            except ImageError:
                continue
            self.ota = {"slots": [[s.offset, s.size, s.label] for s in slots],
                        "otadata": [otadata.offset, otadata.size], "running": k}
            return slots[k]
        return None

    def _run_once(self) -> None:
        error = self._check_flash()
        if error:  # a board with no valid firmware prints this and waits for the next reset
            self.uart.emit(ROM_BANNER["power_on"] + error.encode() + b"\r\n")
            self._status({"event": "invalid_image", "error": error})
            self._soft_reboot = ""
            self._wake.wait()
            self._wake.clear()
            return
        side_r, side_w = os.pipe()
        # The firmware's stdin is non-blocking: a read returns what the UART FIFO holds, as the
        # board's console port does, instead of waiting for a full buffer.
        in_r, in_w = os.pipe()
        os.set_blocking(in_r, False)
        if self._cause != "soft":  # a soft reset restarts the interpreter, not the chip: no ROM banner
            self.uart.emit(ROM_BANNER.get(self._cause, ROM_BANNER["power_on"]))
        # The ROMFS is memory-mapped flash on a board: here it is read into the interpreter's heap
        # before the firmware starts, so the heap is made larger by its size (outside the board's).
        rom = self._romfs_span()
        self.heap_kb = self._budget_kb()
        env = self._env(side_w, rom)
        self._soft_reboot = ""
        rom_kb = (rom[1] + 1023) // 1024 + 1 if rom else 0
        hw_kb = HARDWARE_ALLOWANCE_KB if self._hardware() else 0
        heap = f"heapsize={self.heap_kb + BOOT_ALLOWANCE_KB + hw_kb + rom_kb}K"
        cmd = [*micropython_command(), "-X", heap, str(resources.sim_mp_dir() / "vboot.py")]
        with self._proc_lock:
            if self._stop:  # stop() came first: never start a process nobody will stop
                for fd in (side_r, side_w, in_r, in_w):
                    os.close(fd)
                return
            proc = subprocess.Popen(cmd, cwd=resources.sim_mp_dir(), stdin=in_r, stdout=subprocess.PIPE,
                                    stderr=subprocess.STDOUT, pass_fds=(side_w,), env=env, bufsize=0,
                                    preexec_fn=_die_with_parent)
            self._proc = proc
        os.close(side_w)
        os.close(in_r)
        self.boots += 1
        assert proc.stdout
        self.uart.attach(proc.pid, in_w)
        booted = {"event": "boot", "mode": "run", "cause": self._cause, "pid": proc.pid, "boots": self.boots}
        if self.ota is not None:
            booted["slot"] = self.ota["slots"][self.ota["running"]][2]
        self._status(booted)
        out = threading.Thread(target=self.uart.pump_output, args=(proc.stdout.fileno(),), daemon=True)
        out.start()
        self._wdt_ms, self._wdt_fired, self._pid = 0, False, proc.pid
        dog = threading.Thread(target=self._watchdog, args=(proc,), daemon=True)
        dog.start()
        messages = self._read_side(side_r)
        proc.wait()
        dog.join()
        out.join()  # the output pipe is at EOF once the process is gone
        self.uart.attach(None, None)  # after this the UART no longer touches in_w
        with contextlib.suppress(OSError):
            os.close(in_w)
        with contextlib.suppress(OSError):
            proc.stdout.close()
        self._after_exit(messages)

    def _read_side(self, fd: int) -> list[tuple[bytes, str]]:
        """Act on the side channel's messages (sim/mp/_vside.py) until the interpreter is gone; the
        ones that say why it stopped are returned, in order."""
        messages = []
        with os.fdopen(fd, "rb") as side:
            for raw in side:
                kind, arg = _vside.parse(raw)
                try:
                    self._side_message(kind, arg, messages)
                except ValueError:  # a line cut short (the interpreter stopped in the middle of it)
                    self._status({"event": "side_garbled", "line": raw[:80].decode("ascii", "replace")})
        return messages

    def _side_message(self, kind: bytes, arg: str, messages: list) -> None:
        if self.parts.side_message(kind, arg):
            return
        if kind == _vside.SCRIPTS:
            self.uart.scripts_started()
        elif kind == _vside.RTC:
            self._rtc = bytes.fromhex(arg)
        elif kind == _vside.SENSOR:  # a virtual sensor was read: what it measured
            with contextlib.suppress(ValueError):
                self._status({"event": "sensor", **json.loads(arg)})
        elif kind == _vside.WDT:  # the watchdog started (with its timeout) or was fed
            if arg:
                self._wdt_ms = int(arg)
            self._wdt_due = time.monotonic() + self._wdt_ms / 1000.0 / self.opts.speed
            self._wdt_starved = _starved_s(self._pid)
        elif kind == _vside.HEAPSHORT:  # the boot code outgrew its allowance
            self._status({"event": "heapshort", "bytes": int(arg)})
        else:
            messages.append((kind, arg))

    def _watchdog(self, proc: subprocess.Popen) -> None:
        """The ESP32's task watchdog: a board whose firmware stopped feeding it is reset. The time
        the board's process waited for a CPU while ready to run (a busy host) does not count: a chip
        never waits for one, and at a high speed a short wait would be a long stall of the board."""
        while proc.poll() is None:
            if self._wdt_ms and time.monotonic() - (_starved_s(proc.pid) - self._wdt_starved) > self._wdt_due:
                self._wdt_fired = True
                with contextlib.suppress(OSError):
                    proc.kill()
                return
            time.sleep(0.02)

    def _after_exit(self, messages: list[tuple[bytes, str]]) -> None:
        self.parts.power_off()
        kind, arg = messages[-1] if messages else (b"", "")
        if self._stop or self._held or self._mode == "download":
            return
        if self._wdt_fired:
            self._cause = "watchdog"
            self._status({"event": "watchdog", "timeout_ms": self._wdt_ms})
        elif kind == _vside.POWERCUT:
            self._powercut_after = 0
            self._rtc = b""
            self._cause = "power_on"
            self._status({"event": "powercut", "flash_ops": int(arg)})
        elif kind == _vside.RESET and arg == _vside.SOFT.decode():
            # machine.reset() is esp_restart(): the ROM says SW_CPU_RESET and MicroPython's
            # machine.reset_cause() HARD_RESET (ports/esp32/modmachine.c maps ESP_RST_SW there)
            self._cause = "hard"
        elif kind == _vside.SOFTREBOOT:  # Ctrl-D in the REPL: back to the same REPL kind
            self._soft_reboot = arg
            self._cause = "soft"
        elif kind == _vside.RESET and arg == _vside.VM.decode():
            # machine.soft_reset(): only the interpreter restarts, and MicroPython reports
            # SOFT_RESET from then on (machine_deinit() sets is_soft_reset)
            self._cause = "soft"
        elif kind == _vside.DEEPSLEEP:
            ms = int(arg)
            self._cause = "deepsleep"
            self._status({"event": "deepsleep", "ms": ms})
            self._wake.wait(ms / 1000.0 / self.opts.speed)
            self._wake.clear()
        elif kind == _vside.NOFS:
            self._status({"event": "nofs"})
            self._wake.wait()
            self._wake.clear()
        else:
            # Killed from outside or the interpreter died: like a power cycle.
            self._rtc = b""
            self._cause = "power_on"
            self._status({"event": "power_cycle"})
        time.sleep(0.01)
