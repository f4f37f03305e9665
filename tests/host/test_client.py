"""Console client against a scripted device: resend after a garbled line, restart, log lines."""

from __future__ import annotations

import threading

import pytest
from loraspot.console import codec
from loraspot.console.client import ConsoleClient
from loraspot.errors import DeviceError, DeviceReset, ProtocolError


class ScriptedDevice:
    """A serial port whose device answers each request by a script of callables."""

    def __init__(self, script):
        self.script = list(script)
        self.out = bytearray()
        self.cond = threading.Condition()
        self.is_open = True
        self.written: list[dict] = []

    @property
    def in_waiting(self) -> int:
        return len(self.out)

    def read(self, n: int = 1) -> bytes:
        with self.cond:
            self.cond.wait_for(lambda: self.out or not self.is_open, timeout=0.05)
            data = bytes(self.out[:n])
            del self.out[:n]
            return data

    def write(self, data: bytes) -> int:
        for line in data.split(b"\n"):
            if line:
                req = codec.decode(line)
                self.written.append(req)
                reply = self.script.pop(0)(req)
                with self.cond:
                    for msg in reply:
                        self.out += msg if isinstance(msg, bytes) else codec.encode(msg)
                    self.cond.notify_all()
        return len(data)

    def close(self) -> None:
        self.is_open = False


def ok(result):
    return lambda req: [{"id": req["id"], "ok": result}]


def garbled(code="bad_crc"):
    return lambda req: [{"id": None, "err": {"code": code, "msg": "x"}}]


def test_garbled_request_is_sent_again():
    dev = ScriptedDevice([garbled(), garbled("too_long"), ok({"v": 1})])
    with ConsoleClient(dev, timeout=2) as client:
        assert client.request("config.get") == {"v": 1}
        assert client.counters["resends"] == 2
        assert len({r["id"] for r in dev.written}) == 1  # the same request each time


def test_gives_up_after_resends():
    dev = ScriptedDevice([garbled()] * 3)
    with ConsoleClient(dev, timeout=2) as client, pytest.raises(ProtocolError, match="3 times"):
        client.request("hello")


def test_restart_fails_pending_request_at_once():
    dev = ScriptedDevice([lambda req: [{"ev": "boot", "seq": 0, "t": 0, "data": {}}]])
    with ConsoleClient(dev, timeout=30) as client, pytest.raises(DeviceReset):
        client.request("config.set", {"values": {"name": "x"}})


def test_error_response_and_log_lines():
    dev = ScriptedDevice([lambda req: [b"Traceback (most recent call last):\r\n", b"\xff\xfe garbage\n",
                                       {"id": req["id"], "err": {"code": "invalid", "msg": "bad value"}}]])
    with ConsoleClient(dev, timeout=2) as client:
        with pytest.raises(DeviceError) as e:
            client.request("config.set", {"values": {"stats_interval": 1}})
        assert (e.value.code, e.value.message, e.value.op) == ("invalid", "bad value", "config.set")
        assert client.logs[:2] == ["Traceback (most recent call last):", "\ufffd\ufffd garbage"]


def test_request_over_bound_is_refused_before_sending():
    dev = ScriptedDevice([])
    with ConsoleClient(dev, timeout=2) as client, pytest.raises(codec.FrameError):
        client.request("config.set", {"values": {"name": "x" * 300}})
    assert dev.written == []


def no_memory():
    return lambda req: [{"id": req["id"], "err": {"code": "no_memory", "msg": "out of memory: retry"}}]


def test_no_memory_is_retried_only_for_commands_that_can_be_repeated(monkeypatch):
    import loraspot.console.client as client_mod

    monkeypatch.setattr(client_mod, "NO_MEMORY_WAITS", (0.01, 0.01))
    dev = ScriptedDevice([no_memory(), no_memory(), ok({"free": 1}), no_memory(), no_memory(), no_memory(),
                          no_memory()])
    with ConsoleClient(dev, timeout=2) as client:
        assert client.request("stats") == {"free": 1}
        assert client.counters["no_memory"] == 2
        with pytest.raises(DeviceError) as e:
            client.request("fs.write", {"off": 0, "data": "AA=="})  # not repeated: it may have been done
        assert e.value.code == "no_memory"
        with pytest.raises(DeviceError):
            client.request("stats")  # the device never recovers: the error after the last wait
    assert [w["op"] for w in dev.written] == ["stats"] * 3 + ["fs.write"] + ["stats"] * 3


def test_signing_when_the_device_asks(monkeypatch):
    import hashlib
    import hmac
    import json

    key = bytes(range(32))
    nonce = "00112233445566778899aabbccddeeff"

    def check(req):
        env = req["auth"]
        args = json.dumps(req["args"], sort_keys=True, separators=(",", ":")).encode()
        msg = bytes.fromhex(nonce) + b"keys.set\n" + args
        good = env["nonce"] == nonce and env["mac"] == hmac.new(key, msg, hashlib.sha256).hexdigest()
        return [{"id": req["id"], "ok": {"stored": good}}]

    refuse = lambda req: [{"id": req["id"], "err": {"code": "auth_required", "msg": "locked"}}]  # noqa: E731
    dev = ScriptedDevice([refuse, ok({"nonce": nonce}), check, refuse])
    with ConsoleClient(dev, timeout=2) as client:
        client.admin_key = key
        assert client.request("keys.set", {"kind": "app_key", "value": "00" * 16}) == {"stored": True}
        client.admin_key = None
        with pytest.raises(DeviceError, match="locked"):
            client.request("keys.set", {"kind": "app_key", "value": "00" * 16})
