"""Host side of the console protocol: requests with ids, responses, events, log lines.

One request is in flight at a time, so the device's small receive buffer never overflows; a
reader thread sorts every line the device sends into responses, events and plain log text.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import itertools
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import serial

from loraspot.console import codec
from loraspot.errors import DeviceError, DeviceReset, DeviceTimeout, PortGone, ProtocolError

MAX_LINE = 64 * 1024  # longer runs without a newline are passed on as log text
_GARBLED = object()  # marks a request the device reported as unreadable
_GARBLE_CODES = ("bad_crc", "bad_json", "too_long", "bad_frame")


ALWAYS_SIGNED = ("lock", "unlock")  # the device checks these whatever its lock state
# Commands sent again when the device could not build its answer for lack of heap (a role that is
# starting takes its peak): asking twice does what asking once does.
IDEMPOTENT = frozenset(("hello", "stats", "config.get", "config.set", "keys.list", "keys.set", "fs.stat", "fs.ls",
                        "fs.get", "auth.nonce", "lock", "unlock"))
NO_MEMORY_WAITS = (0.2, 0.5, 1.0, 2.0, 4.0)  # a node's join holds its peak for a few seconds


def auth_message(nonce: bytes, op: str, args: dict) -> bytes:
    """What the admin key signs: nonce || op || "\n" || canonical JSON of the arguments."""
    return nonce + op.encode() + b"\n" + codec.canonical(args)


def sign(admin_key: bytes, nonce: bytes, op: str, args: dict) -> dict:
    """The admin envelope (a request's "auth" member) for op with these arguments."""
    mac = hmac.new(admin_key, auth_message(nonce, op, args), hashlib.sha256).digest()
    return {"nonce": nonce.hex(), "mac": mac.hex()}


@dataclass
class Event:
    kind: str
    seq: int
    t: int
    data: dict = field(default_factory=dict)
    host_time: float = 0.0


class ConsoleClient:
    def __init__(self, port: serial.SerialBase, on_log: Callable[[str], None] | None = None,
                 on_event: Callable[[Event], None] | None = None, timeout: float = 5.0, keep_events: bool = True):
        self.port = port
        self.keep_events = keep_events  # False: events only go to on_event (a monitor's endless stream)
        self.timeout = timeout
        self.max_request = codec.MAX_REQUEST
        self.caps: frozenset[str] = frozenset()  # the device's commands, from hello
        # With an admin key, commands a locked device refuses for lack of authentication are sent
        # again, signed over a fresh nonce; lock and unlock are always signed.
        self.admin_key: bytes | None = None
        self.events: queue.Queue[Event] = queue.Queue(maxsize=10000)
        self.logs: list[str] = []
        self.orphan_errors: list[dict] = []
        self.counters = {"frames": 0, "bad_frames": 0, "log_lines": 0, "events": 0, "events_dropped": 0,
                         "resends": 0, "no_memory": 0}
        self._on_log = on_log
        self._on_event = on_event
        self._ids = itertools.count(1)
        self._pending: dict[int, list] = {}
        self._req_lock = threading.Lock()
        self._state_lock = threading.Lock()
        self._gone: Exception | None = None
        self._closed = False
        self._reader = threading.Thread(target=self._read_loop, name="console-reader", daemon=True)
        self._reader.start()

    # --- requests ---------------------------------------------------------------------------------
    def request(self, op: str, args: dict | None = None, timeout: float | None = None, resends: int = 2) -> dict:
        """Send one command and wait for its answer; raise DeviceError on an error response.
        A command the device refuses with auth_required is signed and sent again when the client
        has the admin key."""
        sign = self.admin_key is not None and op in ALWAYS_SIGNED
        waits = list(NO_MEMORY_WAITS)
        while True:
            try:
                auth = self.signed(op, args or {}) if sign else None
                return self._request(op, args, timeout, resends, auth)
            except DeviceError as e:
                if e.code == "auth_required" and self.admin_key is not None and not sign:
                    sign = True  # locked: the same command again, signed over a fresh nonce
                    continue
                if e.code != "no_memory" or op not in IDEMPOTENT or not waits:
                    raise
            self.counters["no_memory"] += 1
            time.sleep(waits.pop(0))

    def signed(self, op: str, args: dict) -> dict | None:
        """The admin envelope for the request, or None when it would make the request too long:
        then it goes ahead in auth.sign, good for the next command that needs one."""
        if self.admin_key is None:
            raise ValueError("no admin key to sign with")
        nonce = bytes.fromhex(self._request("auth.nonce", None, None, 2)["nonce"])
        env = sign(self.admin_key, nonce, op, args)
        probe = {"id": 1 << 24, "op": op, "args": args, "auth": env}
        try:
            codec.encode(probe, self.max_request)
            return env
        except codec.FrameError:
            self._request("auth.sign", env, None, 2)
            return None

    def _request(self, op: str, args: dict | None, timeout: float | None, resends: int,
                 auth: dict | None = None) -> dict:
        """One command, its answer or DeviceError.

        When the device reports a garbled line while this request is the only one in flight (line
        noise), the same request is sent again, at most `resends` times.
        """
        wait = self.timeout if timeout is None else timeout
        with self._req_lock:
            if self._gone:
                raise PortGone(f"port is gone: {self._gone}")
            rid = next(self._ids) % (1 << 24) or next(self._ids)
            msg: dict = {"id": rid, "op": op}
            if args:
                msg["args"] = args
            if auth is not None:
                msg["auth"] = auth
            line = codec.encode(msg, self.max_request)
            slot: list = [threading.Event(), None]
            for _attempt in range(resends + 1):
                slot: list = [threading.Event(), None]
                with self._state_lock:
                    self._pending[rid] = slot
                try:
                    # the leading line break ends any partial line noise left on the wire
                    self.port.write(b"\n" + line)
                    if not slot[0].wait(wait):
                        if self._gone:
                            raise PortGone(f"port went away during '{op}': {self._gone}")
                        raise DeviceTimeout(f"no answer to '{op}' within {wait} s")
                except serial.SerialException as e:
                    raise PortGone(f"port went away during '{op}': {e}") from None
                finally:
                    with self._state_lock:
                        self._pending.pop(rid, None)
                if slot[1] is not _GARBLED:
                    break
                self.counters["resends"] += 1
            resp = slot[1]
            if resp is _GARBLED:
                raise ProtocolError(f"'{op}': the device could not read the request {resends + 1} times")
            if isinstance(resp, Exception):
                raise resp
            assert isinstance(resp, dict)
            if "err" in resp:
                err = resp["err"] if isinstance(resp["err"], dict) else {}
                raise DeviceError(str(err.get("code", "error")), str(err.get("msg", "")), op)
            ok = resp.get("ok")
            if not isinstance(ok, dict):
                raise ProtocolError(f"'{op}': response without a result object")
            return ok

    def hello(self) -> dict:
        info = self.request("hello")
        if info.get("proto") != 1:
            raise ProtocolError(f"device speaks console protocol {info.get('proto')!r}; this host speaks 1")
        self.max_request = int(info.get("max_request", codec.MAX_REQUEST))
        self.caps = frozenset(str(c) for c in info.get("caps", ()))
        return info

    def send_raw(self, data: bytes) -> None:
        """Write bytes as they are: fs.data windows, and tests of the device's handling of bad input."""
        with self._req_lock:
            if self._gone:
                raise PortGone(f"port is gone: {self._gone}")
            try:
                self.port.write(data)
            except serial.SerialException as e:
                raise PortGone(f"port went away: {e}") from None

    def wait_event(self, kind: str | None = None, timeout: float = 10.0) -> Event:
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise DeviceTimeout(f"no {kind or 'event'} within {timeout} s")
            try:
                ev = self.events.get(timeout=left)
            except queue.Empty:
                continue
            if kind is None or ev.kind == kind:
                return ev

    @property
    def gone(self) -> bool:
        """The port failed (unplugged, closed by the other end)."""
        return self._gone is not None

    def close(self) -> None:
        self._closed = True
        with contextlib.suppress(Exception):
            self.port.close()
        self._reader.join(timeout=2)

    def __enter__(self) -> ConsoleClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- reader -----------------------------------------------------------------------------------
    def _read_loop(self) -> None:
        buf = bytearray()
        while not self._closed:
            try:
                data = self.port.read(getattr(self.port, "in_waiting", 0) or 1)
            except (serial.SerialException, OSError, TypeError, AttributeError) as e:
                if not self._closed:
                    self._fail_all(e)
                return
            if not data:
                continue
            buf += data
            while True:
                i = buf.find(b"\n")
                if i < 0:
                    if len(buf) > MAX_LINE:
                        self._line(bytes(buf))
                        buf.clear()
                    break
                line = bytes(buf[:i]).rstrip(b"\r")
                del buf[: i + 1]
                self._line(line)

    def _fail_all(self, e: Exception) -> None:
        self._gone = e
        self._fail_pending(PortGone(f"port went away: {e}"))

    def _fail_pending(self, error: Exception) -> None:
        with self._state_lock:
            for slot in self._pending.values():
                slot[1] = error
                slot[0].set()

    def _line(self, line: bytes) -> None:
        if codec.is_frame(line):
            try:
                msg = codec.decode(line)
            except codec.FrameError:
                self.counters["bad_frames"] += 1
                self._log(line)
                return
            self.counters["frames"] += 1
            self._message(msg)
        elif line:
            self._log(line)

    def _log(self, line: bytes) -> None:
        self.counters["log_lines"] += 1
        text = line.decode("utf-8", errors="replace")
        if len(self.logs) < 5000:
            self.logs.append(text)
        if self._on_log:
            self._on_log(text)

    def _message(self, msg: dict) -> None:
        if "ev" in msg:
            ev = Event(str(msg["ev"]), int(msg.get("seq", -1)), int(msg.get("t", 0)), msg.get("data") or {},
                       time.time())
            self.counters["events"] += 1
            if ev.kind == "boot":
                self._fail_pending(DeviceReset("the device restarted before answering"))
            if self.keep_events:
                try:
                    self.events.put_nowait(ev)
                except queue.Full:
                    self.counters["events_dropped"] += 1
            if self._on_event:
                self._on_event(ev)
            return
        rid = msg.get("id")
        with self._state_lock:
            slot = self._pending.get(rid) if isinstance(rid, int) else None
        if slot is None:
            err = msg.get("err")
            if isinstance(err, dict):
                self.orphan_errors.append(err)
                if err.get("code") in _GARBLE_CODES:
                    with self._state_lock:
                        pending = list(self._pending.values())
                    if len(pending) == 1:  # one request in flight: the garbled line was it
                        pending[0][1] = _GARBLED
                        pending[0][0].set()
            return
        slot[1] = msg
        slot[0].set()
