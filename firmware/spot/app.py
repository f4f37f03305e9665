# The firmware application: loads board and config, serves the console, emits heartbeat stats.
import asyncio
import binascii
import gc
import os
import sys

import micropython

try:
    from typing import Any  # noqa: F401 (for the type checker only)
except ImportError:
    pass

from spot import VERSION, crashlog, unload
from spot.board import Board
from spot.clock import ticks_diff
from spot.codec import MAX_FRAME, MAX_REQUEST
from spot.config import Config
from spot.console import PROTOCOL, CommandError, Console, arg


class App:
    def __init__(self, board, config, secrets, clock, console):
        self.board = board
        self.config = config
        self.secrets = secrets
        self.clock = clock
        self.console = console
        self.boot_id = binascii.hexlify(os.urandom(4)).decode()
        self.reset_cause = board.reset_cause()
        self.last_crash = crashlog.last()
        self.security = board.security()  # read once: a hello then costs no module load
        self._groups = {}  # command modules loaded on first use: "fs" -> FileOps, "keys" -> KeyOps
        self.safe_mode = False
        self.test_boot = False  # restarted for the self-test: the role does not start (spot.selftest)
        self.node = None  # type: Any
        self.hotspot = None
        self.role_stats = None  # the role's counters for stats (the hotspot's)
        self.radio_fault = None  # the hotspot's radio failure while it waits to open it again
        self.radio_faults = 0
        self.lock = b""  # spot.fsnames.LOCK_PATH's content: b"L" locked, b"P" locked in production
        self.update = None  # the state of an update over the air (otaboot), read once at boot
        self.app_version = ""  # the first 12 hex digits of /app.json's SHA-256
        self.ota_port = 0  # the port updates over the air are taken on (a hotspot with ota_port)
        self.ota_busy = False
        self.ota_counts = {"sessions": 0, "refused": 0, "staged": 0}
        # set only where used (no names on every role's boot path): network, the hotspot's link
        # (spot.hotspot.net.Wifi); setup, the set-up page (spot.setup.Setup); display (spot.display)

    def register(self):
        c = self.console
        c.register("hello", self.hello)
        c.register("stats", self.stats)
        c.register("config.get", self.config_get)
        c.register("config.set", self.config_set, auth=True)
        c.register("reboot", self.reboot)
        # File and key commands are rare on a running board: only their names are registered
        # here; the module is loaded when a host first uses one (its code stays on flash till then).
        from spot import fsnames, keys

        for group, ops in (("fs", fsnames.OPS), ("keys", keys.OPS), ("auth", keys.AUTH_OPS)):
            for op, method, auth in ops:
                c.register(op, self._lazy(group, method), auth)
        c.register("selftest", self.selftest)
        unload("spot.fsnames")
        unload("spot.keys")

    def _lazy(self, group, method):
        async def call(args):
            return await getattr(self._group(group), method)(args)

        return call

    def _group(self, group):
        obj = self._groups.get(group)
        if obj is None:
            if group == "fs":
                from spot.fsops import FileOps

                obj = FileOps(self.console)
            elif group == "auth":
                from spot.auth import Auth

                obj = Auth(self)
            elif group == "selftest":
                from spot.selftest import SelfTest

                obj = SelfTest(self)
            else:
                from spot.keys import KeyOps

                obj = KeyOps(self.secrets, self._authorize)
            self._groups[group] = obj
        return obj

    def apply_lock(self, state):
        """Admin authentication on or off (state b"", b"L" or b"P"); the REPL off in production."""
        self.lock = state
        self.console.guard = self._guard if state else None
        self.console.kbd_char = -1 if state == b"P" else 3
        micropython.kbd_intr(self.console.kbd_char)

    def _authorize(self, op, args):
        # on a locked device the guard has checked the request already
        if self.console.guard is None:
            self._group("auth").verify(op, args)  # pyright: ignore[reportAttributeAccessIssue]

    async def _guard(self, op, args):
        self._group("auth").check(op, args)  # pyright: ignore[reportAttributeAccessIssue]

    # --- commands -----------------------------------------------------------------------------
    async def hello(self, args):
        return {
            "proto": PROTOCOL,
            "fw": VERSION,
            "board": self.board.id,
            "chip": self.board.profile["chip"],
            "role": self.config.get("role"),
            "name": self.config.get("name"),
            "id": self.board.device_id(),
            "boot": self.boot_id,
            "reset": self.reset_cause,
            "crash": self.last_crash,
            "max_frame": MAX_FRAME,
            "max_request": MAX_REQUEST,
            "caps": self.console.ops(),
            "config_origin": self.config.origin,
            "safe_mode": self.safe_mode,
            "test_boot": self.test_boot,
            "locked": bool(self.lock),
            "production": self.lock == b"P",
            "security": {"flash_encryption": bool(self.security & 1), "secure_boot": bool(self.security & 2),
                         "download": ("enabled", "secure", "disabled")[self.security >> 2]},
            # what a deploy checks its bytecode against (the arch bits of _mpy masked)
            "micropython": "%d.%d.%d" % sys.implementation.version[:3],
            "mpy": "%d.%d" % (sys.implementation._mpy & 0xFF, sys.implementation._mpy >> 8 & 3),
            "radio": self.radio_status(),
            "app": self.app_info(),
        }

    def app_info(self):
        """The app's version, and of an update over the air: its phase, the previous version and
        the last rollback with its reason."""
        st = self.update
        if not self.app_version:
            self.app_version = _version_of("/app.json")
        out = {"version": self.app_version}  # type: dict[str, Any]
        if st:
            out["phase"] = st.get("phase")
            out["previous"] = st.get("prev")
            out["label"] = st.get("label")
            out["rollbacks"] = st.get("rollbacks", 0)
            if st.get("why"):
                out["last_rollback"] = st.get("why")
        if self.ota_port:
            out["ota_port"] = self.ota_port
            out["ota"] = self.ota_counts
        return out

    def radio_status(self):
        """"ok", "starting", "fault: <why>", or None when the role uses no radio (idle)."""
        if self.node is not None:
            return self.node.radio_status()
        if self.hotspot is not None:
            return "ok"
        if self.radio_fault is not None:
            return "fault: " + self.radio_fault
        return "starting" if self.config.get("role") != "idle" and not self.safe_mode else None

    def stats_data(self):
        gc.collect()
        data = {
            "up_ms": self.clock.uptime_ms(),
            "ticks_ms": self.clock.ticks_ms(),
            "heap_free": gc.mem_free(),
            "heap_alloc": gc.mem_alloc(),
            "events": self.console.seq,
            "radio_faults": self.node.radio_faults if self.node is not None else self.radio_faults,
        }
        data.update(self.console.counters)
        if self.node is not None:  # a node: whether it holds a session (joined, or ABP), and its
            data["joined"] = self.node.lw.session is not None  # DevAddr (sent in clear on the air)
            if data["joined"]:
                data["devaddr"] = self.node.devaddr()
        if self.role_stats is not None:
            data.update(self.role_stats())
        return data

    async def stats(self, args):
        return self.stats_data()

    async def config_get(self, args):
        if "key" in args:
            key = arg(args, "key", str)
            return {"key": key, "value": self.config.get(key)}
        # in pages: the whole table as one answer is more heap than a running node can spare
        start = arg(args, "start", int, 0, required=False)
        keys = sorted(self.config.values())
        out = {"values": {k: self.config.get(k) for k in keys[start : start + CONFIG_PAGE]}}
        if start + CONFIG_PAGE < len(keys):
            out["next"] = start + CONFIG_PAGE
        return out

    async def config_set(self, args):
        if "values" in args:
            changes = arg(args, "values", dict)
        else:
            changes = {arg(args, "key", str): args.get("value")}
            if "value" not in args:
                raise CommandError("bad_args", "missing argument 'value'")
        try:
            self.config.set(changes)
        except OSError as e:
            raise CommandError("io", "config not saved: %s" % e)
        self.console.events_enabled = self.config.get("console_events")
        return {"values": {k: self.config.get(k) for k in changes}}

    async def selftest(self, args):
        """The factory self-test (spot.selftest). A running role holds the radio and the sensors:
        the board restarts once into a test boot, where the role does not start, and says so."""
        if not (self.test_boot or self.safe_mode or self.config.get("role") == "idle"):
            with open(TEST_FLAG, "wb") as f:
                f.write(b"1")
            await self.reboot(args)
            return {"restart": True}
        return await self._group("selftest").run(args)  # pyright: ignore[reportAttributeAccessIssue]

    async def reboot(self, args):
        asyncio.create_task(self._reboot_soon())
        return {"in_ms": 100}

    async def _reboot_soon(self, ms=100):
        await asyncio.sleep_ms(ms)
        self.board.reset()

    # --- tasks ----------------------------------------------------------------------------------
    async def run_node(self):
        """Build the node (spot.nodeboot, loaded for that only: nothing of spot.node depends on
        it), then run it. The heap running short is a pause, never a reset: what was being done
        is tried again a little later (the session, counters and schedule stay)."""
        while True:
            try:
                node = self.node
                if node is None:
                    node = self._build_node()
                    node.report_start()
                await node.run()
                return
            except MemoryError:
                gc.collect()
                self.console.counters["role_no_memory"] = self.console.counters.get("role_no_memory", 0) + 1
                self.console.event("log", {"level": "error", "msg": "node: out of memory, again in 5 s"})
                await self.clock.sleep_ms(5000)

    def _build_node(self):
        from spot import nodeboot

        try:
            return nodeboot.build(self)
        finally:
            unload("spot.nodeboot")

    async def heartbeat(self, button=None):
        last = self.clock.ticks_ms()
        pin = since = None
        if button:
            # a board without its display watches its button here, once a second, for a press held
            # 5 s (set-up: spot.setup); no module, task or buffer of its own for it
            from spot import board as board_mod

            p = board_mod.machine.Pin
            low = button.get("active_low", True)
            pin = p(button["pin"], p.IN, p.PULL_UP if low else p.PULL_DOWN)
        while True:
            # re-read the interval every second so a config change applies at once
            await self.clock.sleep_ms(1000)
            now = self.clock.ticks_ms()
            if pin is not None:
                if pin.value() != (0 if low else 1):
                    since = None
                elif since is None:
                    since = now
                elif ticks_diff(now, since) >= 5000:
                    self.console.event("button", {"held_ms": ticks_diff(now, since), "then": "setup"})
                    with open("/setup", "wb") as f:  # spot.setup.FLAG, taken at the next boot
                        f.write(b"1")
                    self.board.reset()
            if ticks_diff(now, last) >= self.config.get("stats_interval") * 1000:
                last = now
                try:
                    self.console.event("stats", self.stats_data())
                except MemoryError:  # a heap peak: this stats event is lost (a gap in seq), not the board
                    self.console.counters["tx_no_memory"] += 1

    def _task_failed(self, loop, context):
        # An unhandled exception in a background task is a crash, as in main().
        exc = context.get("exception")
        try:
            self.console.event("fault", {"error": "%s: %s" % (type(exc).__name__, exc)})
            crashlog.record(exc, self.boot_id, self.clock.uptime_ms())
        finally:
            self.board.reset(after_crash=True)

    async def run(self):
        asyncio.get_event_loop().set_exception_handler(self._task_failed)
        role = self.config.get("role")
        parts = None
        if not self.safe_mode:
            self.test_boot = _take_test_flag()
        panel = button = None
        if not self.safe_mode and not self.test_boot:
            # the names of occasional modules, the set-up page's or the status page's, display's
            # and button's modules and buffers (spot.panel, only where one may be on), then the
            # role's modules and long-lived buffers, while the heap is still in one piece
            # (MicroPython's name table grows in one block)
            cfg = self.config
            if cfg.get("display") or _setup_flag() or (
                role == "hotspot"
                and (cfg.get("http_port") or (not cfg.get("wifi_ssid") and self.board.network("") is None))
            ):
                from spot import panel as panel_mod

                role, panel = panel_mod.build(self, role, _enter_names)
            else:
                _enter_names(role)
            if role in ("hotspot", "node") and getattr(self, "display", None) is None:
                button = self.board.profile.get("button")  # its long press, watched by heartbeat
            if role == "hotspot":
                parts = self._build_hotspot()
            elif role == "node":
                try:
                    self._build_node()
                except MemoryError:
                    gc.collect()  # run_node tries again
        self.register()
        self.apply_lock(self.lock)
        self.console.hold()  # the console's reserve, while the heap is still in one piece
        self.console.event("boot", {"boot": self.boot_id, "fw": VERSION, "reset": self.reset_cause,
                                    "board": self.board.id, "crash": self.last_crash})
        for w in self.config.warnings:
            self.console.event("log", {"level": "warn", "msg": w})
        if self.node is not None:
            self.node.report_start()
        if self.update:
            from spot import otaapp

            otaapp.report(self)
        if self.safe_mode:
            # Crashed again and again right after start: serve only the console so the host can
            # read the crash log and repair files.
            self.console.event("fault", {"error": "safe mode after %d crashes" % self.board.crash_streak,
                                         "crash": self.last_crash})
        else:
            asyncio.create_task(self.heartbeat(button))
            if self.test_boot:
                pass  # restarted for the self-test: the role stays off (spot.selftest)
            elif role == "node":
                asyncio.create_task(self.run_node())
            elif parts is not None:
                self._start_hotspot(parts)
            elif role == "hotspot":
                asyncio.create_task(self._hotspot_retry())
            if role == "hotspot" and self.config.get("ota_port"):
                from spot import otaapp

                asyncio.create_task(otaapp.listen(self))
            if panel is not None:
                from spot import panel as panel_mod

                panel_mod.start(self, panel)
        if self.update and self.update.get("phase") == "trial":
            from spot import otaapp

            asyncio.create_task(otaapp.trial(self))
        await self.console.serve()

    def _build_hotspot(self):
        from spot.hotspot import boot
        from spot.radio import RadioError

        try:
            return boot.build(self)
        except RadioError as e:  # absent or silent: reported, opened again later; the console stays
            self.radio_fault = str(e) or type(e).__name__
            self.radio_faults += 1
            return None

    def _start_hotspot(self, parts):
        from spot.hotspot import boot

        self.radio_fault = None
        self.console.event("radio", {"ok": True, "chip": self.board.profile["radio"]["chip"]})
        asyncio.create_task(boot.start(self, parts))
        unload("spot.hotspot.boot")

    async def _hotspot_retry(self):
        """The hotspot's radio was out at boot: try again, 5 s doubling to 5 min (as the node)."""
        from spot.radio import RETRY_MAX_MS, RETRY_MS

        wait = RETRY_MS
        while True:
            self.console.event("radio", {"ok": False, "error": self.radio_fault, "faults": self.radio_faults,
                                         "retry_ms": wait})
            await self.clock.sleep_ms(wait)
            wait = min(2 * wait, RETRY_MAX_MS)
            parts = self._build_hotspot()
            if parts is not None:
                self._start_hotspot(parts)
                return


def _sweep():
    # in a function of its own so that nothing keeps the module once it is unloaded
    from spot import fsnames

    try:
        fsnames.sweep_parts()
    except OSError:
        pass


TEST_FLAG = "/selftest"  # present at boot: a test boot (removed as it is read, so only one)


def _setup_flag():
    """A long press of the button asked for set-up at this boot (spot.button, or the heartbeat of a
    board without its display, wrote the flag that spot.setup takes)."""
    try:
        os.stat("/setup")
        return True
    except OSError:
        return False


def _take_test_flag():
    try:
        os.remove(TEST_FLAG)
        return True
    except OSError:
        return False


def _lock_state():
    try:
        with open("/lock", "rb") as f:
            return f.read(1)
    except OSError:
        return b""


# Modules a role loads only now and then and drops again. Their names are entered in MicroPython's
# name table at boot, while the heap is in one piece: that table grows by a block of twice its
# entries when full (15 KB on the virtual board, about 9 KB on an ESP32, at the step from 640 to
# 1280 names), and a step taken later, in a heap the running role has cut up, fails however much
# is free in pieces.
LATER = {
    "node": ("spot.nodesleep", "spot.nodecmd", "spot.lorawan.join", "spot.schema", "spot.fsops", "spot.keys",
             "spot.auth"),
    "hotspot": ("spot.schema", "spot.schema_hotspot", "spot.fsops", "spot.keys", "spot.auth"),
}


def _enter_names(role):
    for name in LATER.get(role, ()):
        if name not in sys.modules:
            __import__(name)
            unload(name)
    gc.collect()


CONFIG_PAGE = 12  # config values per config.get answer
SAFE_MODE_STREAK = 3  # crashes in a row that put the board in safe mode (console only)


def _version_of(path):
    """An app's version: the first 12 hex digits of its manifest's SHA-256. The same as
    otaboot.version_of, which a hello does not load: a hotspot at its heap budget has no room for
    it (tests/e2e/test_budget_e2e.py answered no_memory)."""
    import hashlib

    h = hashlib.sha256()
    buf = bytearray(256)
    try:
        with open(path, "rb") as f:
            while True:
                n = f.readinto(buf)
                if not n:
                    break
                h.update(memoryview(buf)[:n])
    except OSError:
        return ""
    return binascii.hexlify(h.digest()).decode()[:12]


def _read_update(app):
    """The state of an update over the air, when there is one (otaboot loaded only then)."""
    try:
        os.stat("/.ota/state.json")
    except OSError:
        try:
            os.stat("/.ota/state.json.bak")
        except OSError:
            return
    try:
        import otaboot

        app.update = otaboot.state()
    except (ImportError, OSError, ValueError):
        pass
    unload("otaboot")


def main():
    gc.collect()  # drop what compiling the modules left behind before the first flash write
    board = Board.load()  # a bad profile stops here, before anything could reset in a loop
    clock = board.clock()
    app = None
    try:
        config = Config().load()
        lock = _lock_state()
        # main.py left interrupts off: on again unless locked in production mode
        micropython.kbd_intr(-1 if lock == b"P" else 3)
        _sweep()
        console = Console(board.console_port(), clock)
        console.events_enabled = config.get("console_events")
        app = App(board, config, board.secrets(), clock, console)
        app.lock = lock
        _read_update(app)
        app.safe_mode = app.reset_cause == "crash" and board.crash_streak >= SAFE_MODE_STREAK
        asyncio.run(app.run())
    except Exception as e:
        # Unhandled: keep the traceback on flash, then reset like a watchdog would.
        try:
            crashlog.record(e, app.boot_id if app else "-", clock.uptime_ms())
        except Exception:
            pass
        board.reset(after_crash=True)

