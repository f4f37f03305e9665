# Device side of the console protocol (docs/console-protocol.md): reads request frames from the
# console port, dispatches them to registered handlers, writes responses and numbered events.
import gc

from micropython import const

from spot import codec

try:
    from typing import Any  # for the type checker only; annotations are not evaluated on the board
except ImportError:
    pass

PROTOCOL = const(1)
_RX_CHUNK = const(128)
RESERVE = const(4096)  # heap held for the console while the role runs: released when a request
# or its answer finds the heap short, so that it is answered; taken again afterwards


class CommandError(Exception):
    """A handler's refusal, sent to the host as {"err": {"code": ..., "msg": ...}}."""

    def __init__(self, code, msg):
        super().__init__(msg)
        self.code = code


def arg(args, name, kind, default=None, required=True) -> Any:
    """Fetch a typed argument or raise CommandError('bad_args')."""
    if name not in args:
        if required:
            raise CommandError("bad_args", "missing argument '%s'" % name)
        return default
    value = args[name]
    ok = isinstance(value, kind) and not (kind is int and isinstance(value, bool))
    if not ok:
        raise CommandError("bad_args", "argument '%s' has the wrong type" % name)
    return value


class Console:
    def __init__(self, port, clock):
        self.port = port
        self.clock = clock
        self._ops = {}
        self._asm = codec.LineAssembler()
        self._rx = bytearray(_RX_CHUNK)
        self.seq = 0
        self.events_enabled = True
        self.last_rx_ms = None  # clock ticks_ms of the last request frame
        # A handler may set this to a coroutine function run right after its answer is sent, while
        # nothing else reads the port (fs.data receives its raw bytes this way).
        self.after: Any = None
        # On a locked device: async def(op, args), raises CommandError unless the request carries
        # valid admin authentication; called for commands registered with auth=True.
        self.guard: Any = None
        self.envelope: Any = None  # the "auth" member of the request being handled
        self.kbd_char = 3  # the interrupt character to restore after raw transfers (-1: production)
        self.counters = {"rx_frames": 0, "rx_bad": 0, "rx_too_long": 0, "rx_lines": 0, "tx_frames": 0, "errors": 0,
                         "tx_no_memory": 0, "reserve_used": 0}
        self.reserve = None  # type: bytearray | None

    def hold(self):
        """Take the console's reserve (again) if the heap has room for it: True when held."""
        if self.reserve is None:
            try:
                self.reserve = bytearray(RESERVE)
            except MemoryError:
                return False
        return True

    def _release(self):
        """Give the reserve back to the heap for the work at hand: True if there was one."""
        if self.reserve is None:
            return False
        self.reserve = None
        self.counters["reserve_used"] += 1
        gc.collect()
        return True

    def register(self, op, handler, auth=False):
        """handler: async def(args) -> result (JSON-able); auth: needs the admin envelope once locked."""
        self._ops[op] = (handler, auth)

    def ops(self):
        return sorted(self._ops)

    # --- output -----------------------------------------------------------------------------
    def send(self, obj):
        port = self.port
        try:
            try:
                codec.write(port, obj)
            except MemoryError:
                if not self._release():
                    gc.collect()
                codec.write(port, obj)
        except codec.FrameError as e:
            codec.write(port, {"id": obj.get("id"), "err": {"code": e.code, "msg": str(e)}})
        except MemoryError:
            # The heap is at a peak (a role starting): the host gets a short refusal it can retry
            # rather than a board that resets; a lost event shows as a gap in seq.
            self.counters["tx_no_memory"] += 1
            if obj.get("id") is None:
                return
            codec.write(port, {"id": obj["id"], "err": {"code": "no_memory", "msg": "out of memory: retry"}})
        self.counters["tx_frames"] += 1

    def event(self, kind, data=None):
        """Emit an unsolicited event; seq counts every event since boot, so gaps show losses."""
        seq = self.seq
        self.seq = seq + 1
        if not self.events_enabled and kind not in ("boot", "fault"):
            return
        ev = {"ev": kind, "seq": seq, "t": self.clock.uptime_ms()}
        if data is not None:
            ev["data"] = data
        self.send(ev)

    def _error(self, rid, code, msg):
        self.counters["errors"] += 1
        self.send({"id": rid, "err": {"code": code, "msg": msg}})

    # --- input ------------------------------------------------------------------------------
    async def serve(self):
        rx = self._rx
        while True:
            n = await self.port.readinto(rx)
            start = 0
            while start < n:
                start, line = self._asm.feed(rx, start, n)
                if line is None:
                    continue
                if line is codec.LineAssembler.TOO_LONG:
                    self.counters["rx_too_long"] += 1
                    self._error(None, "too_long", "request exceeds %d bytes" % codec.MAX_REQUEST)
                    continue
                await self.handle_line(line)

    async def handle_line(self, line):
        """One request line, answered; a heap too short for it uses the reserve (then retries)."""
        try:
            await self._handle_line(line)
        except MemoryError:
            if self._release():
                try:
                    await self._handle_line(line)
                except MemoryError:
                    self._no_memory(line)
            else:
                self._no_memory(line)
        self.hold()

    def _no_memory(self, line):
        gc.collect()
        self.counters["tx_no_memory"] += 1
        try:
            rid = codec.decode(line).get("id")
        except Exception:
            rid = None
        self._error(rid if isinstance(rid, int) else None, "no_memory", "out of memory: retry")

    async def _handle_line(self, line):
        if not codec.is_frame(line):
            # Plain text from the host (a person typing, line noise) is not ours to answer.
            if len(line):
                self.counters["rx_lines"] += 1
            return
        try:
            req = codec.decode(line)
        except codec.FrameError as e:
            self.counters["rx_bad"] += 1
            self._error(None, e.code, str(e))
            return
        self.counters["rx_frames"] += 1
        self.last_rx_ms = self.clock.ticks_ms()
        rid = req.get("id")
        if not isinstance(rid, int) or isinstance(rid, bool) or not 0 < rid < 0x1000000:
            self._error(None, "bad_request", "request needs an integer 'id' from 1 to 2^24-1")
            return
        op = req.get("op")
        args = req.get("args", {})
        if not isinstance(op, str) or not isinstance(args, dict):
            self._error(rid, "bad_request", "request needs 'op' (text) and 'args' (object)")
            return
        entry = self._ops.get(op)
        if entry is None:
            self._error(rid, "unknown_op", "unknown command '%s'" % op)
            return
        handler = entry[0]
        self.envelope = req.get("auth")
        try:
            if entry[1] and self.guard is not None:
                await self.guard(op, args)
            result = await handler(args)
        except CommandError as e:
            self.after = None
            self._error(rid, e.code, str(e))
            return
        except MemoryError:
            self.after = None
            raise  # handle_line: the reserve, then one more try
        except Exception as e:  # a handler bug must not take the console down
            self.after = None
            code = getattr(e, "code", None)
            if isinstance(code, str):
                self._error(rid, code, str(e))
            else:
                self._error(rid, "internal", "%s: %s" % (type(e).__name__, e))
            return
        self.send({"id": rid, "ok": {} if result is None else result})
        after = self.after
        if after is not None:
            self.after = None
            try:
                await after()
            except MemoryError:  # a raw transfer cut short: the host sees it and sends again
                gc.collect()
                self.counters["tx_no_memory"] += 1
