"""A production-locked board attacked from the serial line, as a hostile tester would: every file
command with every spelling of a protected path, and Ctrl-C floods through every boot window
(by the unauthenticated `reboot` and by RTS on the line). Nothing may hand out a key or a prompt."""

from __future__ import annotations

import threading
import time

import pytest
import serial
from loraspot import device
from loraspot.console import codec
from loraspot.errors import DeviceError

from tests.e2e.test_provision_e2e import _forms, _tap

pytestmark = pytest.mark.e2e
SPELLINGS = ("{}", "/{}", "//{}", "///{}", "/.{}", "/./{}", "/.//{}", "/./.{}", "{}/", "{}/.", "{}\u0000",
             "{}\u0000.txt", "/lib/..{}", "{}\n", "\\{}", "{}\u007f")
PROTECTED = ("/secrets.json", "/secrets.json.bak", "/secrets.json.tmp", "/lock", "/lock.part")


def _spelled(path: str) -> list[str]:
    return [s.format(path) for s in SPELLINGS]


def test_no_spelling_of_a_protected_path_reaches_it_through_any_file_command(production_locked):
    h, url, secrets, _ = production_locked
    seen = _tap(h)
    client, hello = device.connect(url)
    with client:
        assert hello["production"] is True
        for path in PROTECTED:
            for spelled in _spelled(path):
                for op, args in (("fs.get", {"path": spelled, "offset": 0}), ("fs.stat", {"path": spelled}),
                                 ("fs.ls", {"path": spelled}), ("fs.put", {"path": spelled, "size": 1}),
                                 ("fs.rm", {"path": spelled}), ("fs.mkdir", {"path": spelled}),
                                 ("fs.unpack", {"path": spelled})):
                    with pytest.raises(DeviceError) as e:
                        client.request(op, args)
                    assert e.value.code in ("denied", "bad_args", "auth_required"), (op, spelled, e.value)
        for spelled in ("/", "/.", "//", "/./", "/.//."):  # the root listed in any spelling hides them
            names = {e[0] for e in client.request("fs.ls", {"path": spelled})["entries"]}
            assert "main.py" in names and not {p[1:] for p in PROTECTED} & names, (spelled, names)
        assert client.hello()["locked"] is True  # the lock file is where it was
    for secret in secrets:
        for form in _forms(secret):
            assert form not in seen


def test_the_owner_cannot_name_a_protected_path_either(production_locked):
    """Signed with the admin key, writes still never land on the secrets or the lock."""
    _h, url, secrets, _ = production_locked
    client, _ = device.connect(url)
    with client:
        client.admin_key = secrets[1]
        before = client.request("keys.list")
        for path in PROTECTED:
            for spelled in _spelled(path):
                for op, args in (("fs.put", {"path": spelled, "size": 1, "sha256": "00" * 32}),
                                 ("fs.rm", {"path": spelled}), ("fs.mkdir", {"path": spelled})):
                    with pytest.raises(DeviceError) as e:
                        client.request(op, args)
                    # (a control character may already fail the signature: refused all the same)
                    assert e.value.code in ("denied", "bad_args", "auth_failed"), (op, spelled, e.value)
        assert client.request("keys.list") == before  # the same keys, by their check values
        assert client.hello()["production"] is True


def _flood_through_boots(h, port: serial.SerialBase, resets: int, reset) -> bytes:
    """Reset the board `resets` times, flooding 0x03 from before each reset until its firmware
    has started (its boot event) and a while after; everything the board sent. One thread writes
    the line: reset(port) is called from it, again while no boot follows (a reboot request can be
    lost in the flood, as on a real line)."""
    seen = _tap(h)
    done = threading.Event()
    errors: list[BaseException] = []

    def run():
        try:
            for _ in range(resets):
                boots = sum(s["event"] == "boot" for s in h.status)
                events = seen.count(b'"ev":"boot"')
                end = time.monotonic() + 120  # only a hang takes this long
                asked = 0.0
                while seen.count(b'"ev":"boot"') <= events or sum(s["event"] == "boot" for s in h.status) <= boots:
                    if time.monotonic() > end:  # a hang, not a slow boot: the whole story, as a string
                        raise AssertionError("the board did not boot again: %d boots before, %d firmware boot events; "
                                             "last statuses: %s; last output: %r" % (
                                                 boots, events, h.status[-8:],
                                                 bytes(seen[-1500:]).replace(b"\x03", b"")))
                    if time.monotonic() - asked > 3 and sum(s["event"] == "boot" for s in h.status) <= boots:
                        reset(port)
                        asked = time.monotonic()
                    port.write(b"\x03" * 4)
                    time.sleep(0.005)
                calm = time.monotonic() + 0.1  # main.py is past its start: flood on into the running app
                while time.monotonic() < calm:
                    port.write(b"\x03" * 4)
                    time.sleep(0.005)
        except BaseException as e:
            errors.append(e)
        finally:
            done.set()

    t = threading.Thread(target=run, daemon=True)
    t.start()
    done.wait(resets * 120)
    t.join(1)
    assert not errors, errors
    return bytes(seen)


def _no_prompt(out: bytes) -> None:
    for mark in (b">>>", b"raw REPL", b"Type \"help()\""):
        assert mark not in out, (mark, out[max(0, out.find(mark) - 300) : out.find(mark) + 100])


@pytest.mark.long  # a flood, a load or a whole flash: the long tier (make test stays under 10 min)
def test_ctrl_c_floods_across_fifty_resets_never_reach_a_prompt(production_locked):
    h, url, secrets, _ = production_locked
    port = serial.serial_for_url(url, 115200, timeout=0.5)
    try:
        def by_command(p):  # needs no key: anyone on the line can reset the board through RTS anyway
            p.write(b"\n" + codec.encode({"id": 7, "op": "reboot", "args": {}}) + b"\n")

        def by_rts(p):  # EN through the auto-reset circuit, IO0 high: a run-mode boot
            p.dtr = False
            p.rts = True
            time.sleep(0.05)
            p.rts = False

        out = _flood_through_boots(h, port, 25, by_command)
        out += _flood_through_boots(h, port, 25, by_rts)
    finally:
        port.close()
    _no_prompt(out)
    assert out.count(b'"ev":"boot"') >= 50
    # A 0x03 may still land in the instants between MicroPython turning Ctrl-C on for a script and
    # that script's first statement (as on a board): it ends in a reset, never at a prompt.
    client, hello = device.connect(url)  # and the console answers, still locked in production
    with client:
        assert hello["locked"] is True and hello["production"] is True
    for secret in secrets:
        for form in _forms(secret):
            assert form not in out
