"""`loraspot flash`: the MicroPython image and the app bundle written in one esptool session
(esptool used as a library), compressed, at the highest baud rate the link carries, each region
verified by MD5; several boards at once, one thread each, a failure on one never stopping the
others."""

from __future__ import annotations

import json
import struct
import threading
import time
import zlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import serial
from esptool.cmds import detect_chip, write_flash
from esptool.logger import TemplateLogger, log
from esptool.util import FatalError

from loraspot import resources
from loraspot.errors import BoardProfileError, ImageError, LoraspotError, PortError, PortNotFound
from loraspot.flash import espimage, firmware
from loraspot.flash import image as fsimage
from loraspot.flash.mpy import compiled_firmware

BAUDS = (921600, 460800, 115200)
CONNECT_BAUD = 115200



class FlashError(LoraspotError):
    exit_code = 5


@dataclass
class Region:
    addr: int
    data: bytes
    name: str


@dataclass
class Bundle:
    """Everything one board gets: its MicroPython image and the app bundle, as flash regions."""

    profile: dict
    firmware: espimage.Firmware
    regions: list[Region]

    @property
    def size(self) -> int:
        return sum(len(r.data) for r in self.regions)

    def wire_bytes(self) -> int:
        """Bytes esptool sends for the data (compressed as it compresses), SLIP and headers aside."""
        return sum(len(zlib.compress(r.data, 9)) for r in self.regions)


def load_firmware(profile: dict, image_path: Path | None) -> tuple[bytes, espimage.Firmware]:
    """The MicroPython image for the board: the file given, the virtual board's placeholder, or the
    pinned image from the cache (its SHA-256 checked)."""
    if image_path is not None:
        try:
            data = Path(image_path).read_bytes()
        except OSError as e:
            raise ImageError(f"cannot read the image {image_path}: {e.strerror}") from None
    elif profile["image"].get("placeholder"):  # a board that runs no image from micropython.org
        data = espimage.placeholder(profile)
    else:
        data = firmware.cached_image(profile)
    fw = espimage.read_firmware(data, profile["chip"])
    if fw.offset != profile["image"]["offset"]:
        want = profile["image"]["offset"]
        raise ImageError(f"the image starts at 0x{fw.offset:x}, the board profile says 0x{want:x}")
    check_version(fw)
    return data, fw


def check_version(fw: espimage.Firmware) -> None:
    """Refuse, before anything is written, an image of another MicroPython release than the one the
    app is built and tested for (every release since 1.24 loads .mpy 6.3: the gap is the API)."""
    want = firmware.target()["micropython"]
    if fw.project != espimage.PLACEHOLDER_PROJECT and _version(fw.version) != _version(want):
        raise ImageError(f"the image runs MicroPython {fw.version or '(unknown)'}; this loraspot is built and "
                         f"tested for MicroPython {want} (.mpy {firmware.target()['mpy']}): use a {want} image "
                         "(loraspot firmware fetch --board BOARD)")


def _version(text: str) -> tuple[int, int]:
    digits = text.lstrip("v").split("-")[0].split(".")
    try:
        return int(digits[0]), int(digits[1])
    except (ValueError, IndexError):
        return (0, 0)


def load_config(path: Path) -> dict:
    """The config a user gives `flash --config`: a JSON object of config keys, or a one-line error."""
    try:
        config = json.loads(Path(path).read_text(encoding="utf-8"))
    except (ValueError, RecursionError) as e:  # UnicodeDecodeError is a ValueError
        raise BoardProfileError(f"{path}: not valid JSON ({e})") from None
    if not isinstance(config, dict) or not all(isinstance(k, str) for k in config):
        raise BoardProfileError(f"{path}: the config must be a JSON object of settings, "
                                'e.g. {"role": "node", "region": "EU868"}')
    return config


def build_bundle(profile: dict, image_path: Path | None = None, config: dict | None = None,
                 files: dict[str, bytes] | None = None) -> Bundle:
    """The regions to write: the image at its offset, the library as a ROMFS image when the
    partition table has a romfs partition, and the littlefs vfs (only the blocks littlefs wrote:
    the rest of the partition is free space whatever it holds). Partitions come from the table in
    the image, the board profile otherwise."""
    data, fw = load_firmware(profile, image_path)
    parts = fw.partitions or fsimage.partitions_for(profile)
    vfs = fsimage.vfs_of(parts)
    romfs = fsimage.romfs_of(parts)
    if files is None:
        files = fsimage.app_files(profile, config, mpy_dir=compiled_firmware(resources.cache_dir() / "mpy-cache"))
    regions = [Region(fw.offset, data, "MicroPython " + (fw.version or "image"))]
    if romfs is not None:
        rom = {k: v for k, v in files.items() if k.startswith(fsimage.ROMFS_DIR)}
        files = {k: v for k, v in files.items() if not k.startswith(fsimage.ROMFS_DIR)}
        regions.append(Region(romfs.offset, fsimage.build_romfs(rom, romfs.size), "app library (ROMFS)"))
    used: set[int] = set()
    lfs = fsimage.build_littlefs(files, vfs.size, used)
    for first, count in fsimage.block_runs(used):
        at = first * fsimage.BLOCK
        regions.append(Region(vfs.offset + at, lfs[at : at + count * fsimage.BLOCK], "app filesystem"))
    return Bundle(profile, fw, regions)


# --- esptool's output, per thread ---------------------------------------------------------------------
class _ThreadLogger(TemplateLogger):
    """esptool's logger is one object for the process: this one hands progress to the callback of
    the thread that is flashing, and keeps each thread's messages for its error report."""

    local = threading.local()

    def print(self, *args, **kwargs):
        lines = getattr(self.local, "lines", None)
        if lines is not None:
            lines.append(" ".join(str(a) for a in args))

    def note(self, message):
        self.print(message)

    def warning(self, message):
        self.print("warning:", message)

    def error(self, message):
        self.print("error:", message)

    def stage(self, finish=False):
        pass

    def progress_bar(self, cur_iter, total_iters, prefix="", suffix="", bar_length=30):
        cb = getattr(self.local, "progress", None)
        if cb is not None:
            cb(cur_iter, total_iters, prefix)

    def set_verbosity(self, verbosity):
        pass


_logger = _ThreadLogger()
_logger_lock = threading.Lock()


_installed = [False]


def _install_logger() -> None:
    """Once per process: esptool's logger cannot be swapped again once a custom one is set."""
    with _logger_lock:
        if not _installed[0]:
            log.set_logger(_logger)  # pyright: ignore[reportAttributeAccessIssue] (EspLogger's, typed as its base)
            _installed[0] = True


# --- one board ----------------------------------------------------------------------------------------
@dataclass
class Result:
    port: str
    board: str
    mac: str = ""
    ok: bool = False
    seconds: float = 0.0
    baud: int = 0
    error: str = ""
    written: int = 0
    log: list[str] = field(default_factory=list)
    stage: str = "connect"  # where a failure happened: connect, write, reset

    def as_dict(self) -> dict:
        return {"port": self.port, "board": self.board, "mac": self.mac, "ok": self.ok,
                "seconds": round(self.seconds, 2), "baud": self.baud, "error": self.error, "written": self.written}


def explain(e: BaseException, port: str, stage: str) -> str:
    """One clear sentence for what went wrong, and what to do."""
    text = str(e)
    low = text.lower()
    if isinstance(e, (PortError, ImageError)):
        return text
    if "permission denied" in low:
        import sys

        group = "dialout" if sys.platform.startswith("linux") else "uucp"
        return f"{port}: permission denied; add your user to the '{group}' group and log in again"
    if "exclusively lock" in low or "resource busy" in low or "temporarily unavailable" in low:
        return f"{port}: port is busy (another program has it open: close the monitor, mpremote or screen)"
    if "no such file" in low or "errno 2]" in low:
        return f"{port}: no such serial port (unplugged?)"
    if "connection refused" in low:
        return f"{port}: nothing is listening there (is the virtual board running?)"
    if stage == "connect" and ("failed to connect" in low or "no serial data" in low or "wrong boot mode" in low):
        return (f"{port}: the board is not in download mode: hold BOOT (IO0), press and release RESET (EN), then "
                "release BOOT and run again; if that does not help, the USB cable may carry power only")
    if stage == "write":
        return f"{port}: the board stopped answering while writing ({text.strip() or type(e).__name__}): unplugged " \
               "or reset? The board will not boot until it is flashed again: re-run loraspot flash"
    return f"{port}: {stage} failed: {text.strip() or type(e).__name__}"


def _open(port: str, connect_attempts: int):
    from loraspot.transport import open_for_flashing

    ser = open_for_flashing(port)  # ours: opened and closed here, never through esptool's insides
    try:
        return detect_chip(ser, CONNECT_BAUD, "default-reset", False, connect_attempts), ser  # type: ignore[arg-type]
    except BaseException:
        ser.close()
        raise


def _connect(port: str, bauds: tuple[int, ...], res: Result, chip_id: str | None, connect_attempts: int = 3):
    """Reset into download mode, check the chip, run the stub at the highest baud rate that works
    (each failed rate costs a reconnect, as the stub then listens at a rate the host cannot use)."""
    esp = ser = None
    for i, baud in enumerate(bauds):
        esp, ser = _open(port, connect_attempts)
        chip = getattr(esp, "CHIP_NAME", "?")
        if chip_id is not None and chip != espimage.chip_name(chip_id):
            ser.close()
            raise FlashError(f"{port}: the board has an {chip}, the image is for an {espimage.chip_name(chip_id)} "
                             "(wrong --board or --image?)")
        res.mac = bytes(esp.read_mac("BASE_MAC")).hex().upper()  # one notation for MACs and EUIs: upper-case hex
        esp = esp.run_stub()
        if baud != CONNECT_BAUD:
            try:
                esp.change_baud(baud)
                esp.flash_id()  # a command at the new rate: the link carries it or it times out
            except (FatalError, serial.SerialException, OSError):
                ser.close()
                esp = None
                if i + 1 < len(bauds):
                    res.log.append(f"{baud} baud failed; trying {bauds[i + 1]}")
                    continue
                raise
        res.baud = baud
        break
    assert esp is not None and ser is not None
    return esp, ser


def _with_session(port: str, bauds: tuple[int, ...], work: Callable[[object, Result], None],
                  chip: str | None = None, board: str = "", connect_attempts: int = 3) -> Result:
    """Run work(esp, result) in a stub session; errors end up in the result, explained by the
    stage (result.stage) they happened in."""
    _install_logger()
    res = Result(port, board)
    _logger.local.lines = res.log
    start = time.monotonic()
    ser = None
    try:
        esp, ser = _connect(port, bauds, res, chip, connect_attempts)
        res.stage = "write"
        work(esp, res)
        res.ok = True
    except LoraspotError as e:
        res.error = str(e)
    except (FatalError, serial.SerialException, OSError, struct.error) as e:
        res.error = explain(e, port, res.stage)
    finally:
        _logger.local.progress = None
        _logger.local.lines = None
        if ser is not None:
            try:
                ser.close()
            except Exception:
                pass
        res.seconds = time.monotonic() - start
    return res


def check_writable(path: Path) -> None:
    """An OSError naming `path` if a file cannot be written there (checked with its .part file)."""
    tmp = Path(path).with_name(Path(path).name + ".part")
    try:
        with open(tmp, "ab"):
            pass
        tmp.unlink()
    except OSError as e:
        raise OSError(e.errno, e.strerror, str(path)) from None


def backup(port: str, path: Path, bauds: tuple[int, ...] = BAUDS, include_secrets: bool = False,
           progress: Callable[[int, int], None] | None = None) -> Result:
    """Read the whole flash (its size from the flash ID) into `path`, written only when complete,
    then reset the board into its firmware. Secrets (NVS, the secrets store, the lock) are left
    out unless `include_secrets`. The output is opened before the board is touched, so that a
    file that cannot be written fails at once. result.log says what was left out."""
    path = Path(path)
    tmp = path.with_name(path.name + ".part")
    try:  # before the board is touched: a file that cannot be written fails now, naming the user's file
        out = open(tmp, "wb")  # noqa: SIM115 (kept open across the session)
    except OSError as e:
        raise OSError(e.errno, e.strerror, str(path)) from None

    def work(esp, res: Result) -> None:
        size = 1 << ((esp.flash_id() >> 16) & 0xFF)
        report = progress
        data = esp.read_flash(0, size, (lambda cur, n, _off: report(cur, n)) if report else None)
        res.stage = "reset"
        esp.hard_reset()  # back to its firmware, not left in the bootloader
        if not include_secrets:
            data, removed = fsimage.without_secrets(data)
            res.log += [f"left out: {what}" for what in removed]
        out.write(data)
        out.close()
        tmp.replace(path)
        res.written = len(data)

    try:
        res = _with_session(port, bauds, work)
    finally:
        out.close()
        if tmp.exists():
            tmp.unlink()
    if not res.ok:
        raise FlashError(f"backup failed: {res.error}")
    return res


def restore(port: str, path: Path, bauds: tuple[int, ...] = BAUDS,
            progress: Callable[[int, int], None] | None = None) -> Result:
    """Write a whole-flash backup back (compressed, verified by MD5), then reset the board."""
    data = Path(path).read_bytes()

    def on_bar(cur: int, n: int, _prefix: str) -> None:
        if progress and n:
            progress(int(cur / n * len(data)), len(data))

    def work(esp, res: Result) -> None:
        size = 1 << ((esp.flash_id() >> 16) & 0xFF)
        if len(data) != size:
            raise FlashError(f"{path} holds {len(data)} bytes, the board's flash has {size}: not a backup of it")
        _logger.local.progress = on_bar
        write_flash(esp, [(0, data)], compress=True, flash_size="keep", flash_mode="keep", flash_freq="keep",
                    force=True)
        res.written = len(data)
        res.stage = "reset"
        esp.hard_reset()

    res = _with_session(port, bauds, work)
    if not res.ok:
        raise FlashError(f"restore failed: {res.error}")
    return res


def flash_port(port: str, bundle: Bundle, bauds: tuple[int, ...] = BAUDS,
               progress: Callable[[int, int, str], None] | None = None, connect_attempts: int = 3,
               reset: bool = True, guard: Callable[[str], None] | None = None) -> Result:
    """Flash one board: connect (auto-reset into download mode), check the chip, upload the stub,
    take the highest baud rate that works, write every region compressed and verify it by MD5,
    then reset the board into the new firmware. Never raises: the Result says what happened.
    `guard(mac)`, called once the MAC is known and before anything is written, may refuse (raise
    a LoraspotError): the board is then reset into its old firmware, untouched."""
    total = bundle.size
    starts = [sum(len(r.data) for r in bundle.regions[:i]) for i in range(len(bundle.regions))]

    def on_bar(cur: int, n: int, prefix: str) -> None:
        # esptool reports per region ("Writing at 0x..."): placed within the whole bundle
        if not progress or not n:
            return
        try:
            addr = int(prefix.split("0x", 1)[1].split()[0], 16)
        except (IndexError, ValueError):
            return
        i = max((k for k, r in enumerate(bundle.regions) if r.addr <= addr), default=0)
        progress(starts[i] + int(cur / n * len(bundle.regions[i].data)), total, bundle.regions[i].name)

    def work(esp, res: Result) -> None:
        if guard is not None:
            try:
                guard(res.mac)
            except LoraspotError:
                res.stage = "reset"
                esp.hard_reset()  # back to the firmware it runs, nothing written
                raise
        _logger.local.progress = on_bar
        write_flash(esp, [(r.addr, r.data) for r in bundle.regions], compress=True, flash_size="keep",
                    flash_mode="keep", flash_freq="keep")
        res.written = total
        if progress:
            progress(total, total, "verified")
        res.stage = "reset"
        if reset:
            esp.hard_reset()

    return _with_session(port, bauds, work, bundle.profile["chip"], bundle.profile["id"], connect_attempts)


def flash_many(ports: list[str], bundles: dict[str, Bundle],
               progress: Callable[[str, int, int, str], None] | None = None, bauds: tuple[int, ...] = BAUDS,
               guard: Callable[[str], None] | None = None) -> list[Result]:
    """Flash several boards at once (one thread each); results in the order of `ports`."""
    def one(port: str) -> Result:
        report = progress
        cb = (lambda cur, n, what: report(port, cur, n, what)) if report else None
        return flash_port(port, bundles[port], bauds, cb, guard=guard)

    with ThreadPoolExecutor(max_workers=max(1, len(ports)), thread_name_prefix="flash") as pool:
        return list(pool.map(one, ports))


# --- which boards ---------------------------------------------------------------------------------------
@dataclass
class Target:
    port: str
    candidates: list[str]  # board profile ids that fit (one when it is known)


def resolve_targets(ports: list[str], every: bool, board_id: str | None) -> list[Target]:
    """The boards to flash: the ports given, or every detected board (`every`), or the only one
    detected. The profile is `board_id`, else the one the USB VID/PID (or the virtual board's
    registration) names; several candidates are left for the caller to ask about."""
    from loraspot import boards, transport

    if board_id:
        boards.get(board_id)  # an unknown id is an error before anything is opened
    found = transport.list_ports()
    by_url: dict[str, transport.PortInfo] = {}
    for info in found:
        by_url[info.url] = info
        if info.reset_url:
            by_url[info.reset_url] = info
    if not ports:
        detected = [p for p in found if p.boards]
        if not detected:
            raise PortNotFound("no board found: connect one (with a data cable) or give --port")
        if len(detected) > 1 and not every:
            names = ", ".join(p.url for p in detected)
            raise PortError(f"several boards are connected ({names}): give --port (repeatable) or --all")
        ports = [p.reset_url or p.url for p in detected]
    out = []
    for port in ports:
        info = by_url.get(port)
        if info is not None and info.reset_url and port == info.url:
            port = info.reset_url  # where the board can be reset (a pty has no DTR/RTS)
        cands = [board_id] if board_id else (list(info.boards) if info else [])
        out.append(Target(port, cands))
    return out
