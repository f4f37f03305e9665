"""Provisioning on virtual boards: flash -> provision -> join through a virtual hotspot to
`loraspot listen` with keys from the inventory; secrets never leave a device; the lock's
challenge-response; duplicates, wrong master key, and a backup taken while another process
provisions."""

from __future__ import annotations

import base64
import json
import os
import sqlite3
import subprocess
import sys
import time

import pytest
import serial
from loraspot import device
from loraspot.cli.main import main
from loraspot.console.client import sign
from loraspot.errors import DeviceError
from loraspot.listen.server import Listener, inventory_keys
from loraspot.lorawan.crypto import key_check_value
from loraspot.provision import provision
from loraspot.provision.inventory import Inventory
from loraspot.sim.medium import Medium

from tests.e2e.hotspot_world import FREQ, SF, Events, hotspot_image, wait

pytestmark = pytest.mark.e2e
SPEED = 10
MASTER = "5a" * 32


@pytest.fixture(autouse=True)
def _master_key(monkeypatch):
    monkeypatch.setenv("LORASPOT_MASTER_KEY", MASTER)


def _tap(h) -> bytearray:
    """Everything the board sends on its serial line from now on."""
    seen = bytearray()
    h.board.uart.add_sink(seen.extend)
    return seen


def _forms(secret: bytes) -> list[bytes]:
    return [secret, secret.hex().encode(), secret.hex().upper().encode(), base64.b64encode(secret),
            base64.b64encode(secret).rstrip(b"=")]


def _run(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_flash_provision_join_and_no_secret_ever_leaves(make_board, tmp_path, capsys):
    inv = tmp_path / "inv.sqlite"
    cfg = tmp_path / "config.json"
    cfg.write_text(json.dumps({"single_freq": FREQ, "single_sf": SF, "sensors": "bme280", "uplink_interval": 30}))
    frames: list[dict] = []
    captured = bytearray()
    with Medium(speed=SPEED) as medium:
        node = make_board(tmp_path / "node.bin", blank=True, pty=False, register=False, speed=SPEED,
                          medium=medium.address, hardware={"seed": 1, "bme280": {}})
        tap = _tap(node)
        url = node.info["url"]
        node.wait_status("invalid_image")
        code, out, err = _run(capsys, "--json", "flash", "--port", url, "--board", "virtual", "--config", str(cfg))
        assert code == 0, out + err
        captured += (out + err).encode()
        node.wait_status("boot")

        code, out, err = _run(capsys, "--json", "provision", "--port", url, "--role", "node", "--region", "SINGLE",
                              "--freq", str(FREQ), "--sf", str(SF), "--no-reboot", "--inventory", str(inv))
        assert code == 0, out + err
        captured += (out + err).encode()
        (res,) = json.loads(out)
        eui = res["dev_eui"]
        assert res["ok"] and eui == provision.eui64(node.board.device_id)
        with Inventory(inv) as db:
            app_key = db.secret(eui, "app_key")
            admin_key = db.secret(eui, "admin_key")
            row = db.device(eui)
        assert res["kcv"] == key_check_value(app_key)  # the device's answer is the host's own check value
        assert row.state == "provisioned" and row.role == "node" and row.mac == node.board.device_id.upper()

        with Listener(inventory_keys(inv), port=0, dedup_ms=200 / SPEED, on_frame=frames.append) as ls:
            hs = make_board(hotspot_image(tmp_path / "hs.bin", server_port=ls.address[1]), speed=SPEED,
                            medium=medium.address, register=False, position=(50.0, 0, 0))
            hs.wait_status("boot")
            hs_events = Events(hs.info["url"])  # connected: the hotspot has started
            client, hello = device.connect(url, on_log=lambda s: captured.extend(s.encode()))
            with client:
                assert hello["role"] == "node" and hello["locked"] is False
                device.reboot(client, greet=False)  # a joining node may be short of heap for a hello
                ok = wait(lambda: any(f.get("type") == "uplink" and f.get("dev_eui") == eui and "error" not in f
                                      for f in frames), 90)
                # What a curious host could ask for: config, the secrets file, key names, a bad key.
                values = device.config_get(client)  # the whole table, in pages, from a running node
                assert values["dev_eui"] == eui and values["role"] == "node"
                captured += json.dumps(values).encode() + json.dumps(client.request("keys.list")).encode()
                with pytest.raises(DeviceError) as e:
                    client.request("fs.get", {"path": "/secrets.json", "offset": 0})
                captured += str(e.value).encode()
                with pytest.raises(DeviceError) as e:
                    client.request("keys.set", {"kind": "app_key", "value": app_key.hex() + "00"})
                captured += str(e.value).encode()
            hs_events.close()
    assert ok, [(f.get("type"), f.get("error")) for f in frames]
    assert any(f.get("type") == "join" and f.get("dev_eui") == eui and "error" not in f for f in frames)
    code, out, err = _run(capsys, "--json", "devices", "--inventory", str(inv), "list")
    assert code == 0 and [d["dev_eui"] for d in json.loads(out)] == [eui]
    captured += (out + err).encode()
    code, out, err = _run(capsys, "devices", "--inventory", str(inv), "show", eui)
    assert code == 0 and key_check_value(app_key) in out
    captured += (out + err).encode()
    everything = bytes(tap) + bytes(captured)
    assert len(tap) > 1000  # the tap saw the boots, events and answers
    for secret in (app_key, admin_key):
        for form in _forms(secret):
            assert form not in everything
    # ... and the one explicit way shows them
    code, out, _ = _run(capsys, "--json", "devices", "--inventory", str(inv), "show", eui, "--reveal-keys")
    assert code == 0 and json.loads(out)["secrets"]["app_key"] == app_key.hex().upper()


def test_two_boards_get_their_own_keys_and_duplicates_are_refused(make_board, tmp_path, capsys, monkeypatch):
    inv = tmp_path / "inv.sqlite"
    a, b = make_board(pty=False), make_board(pty=False)
    code, out, err = _run(capsys, "--json", "provision", "--port", a.info["url"], "--port", b.info["url"], "--role",
                          "node", "--no-reboot", "--inventory", str(inv))
    assert code == 0, out + err
    ra, rb = json.loads(out)
    assert ra["ok"] and rb["ok"] and ra["dev_eui"] != rb["dev_eui"] and ra["kcv"] != rb["kcv"]
    with Inventory(inv) as db:
        ka, kb = db.secret(ra["dev_eui"], "app_key"), db.secret(rb["dev_eui"], "app_key")
        assert ka != kb and db.secret(ra["dev_eui"], "admin_key") != db.secret(rb["dev_eui"], "admin_key")

    # Again without --force: refused, nothing changed.
    code, out, err = _run(capsys, "provision", "--port", a.info["url"], "--role", "node", "--no-reboot",
                          "--inventory", str(inv))
    assert code == 7 and "--force" in out + err
    with Inventory(inv) as db:
        assert db.secret(ra["dev_eui"], "app_key") == ka

    # A vendor list that gives a third board the EUI board a has: refused, the board left as it was.
    c = make_board(pty=False)
    vendor = tmp_path / "euis.csv"
    vendor.write_text(f"mac,dev_eui\n{c.board.device_id},{ra['dev_eui']}\n")
    code, out, err = _run(capsys, "--json", "provision", "--port", c.info["url"], "--role", "node", "--no-reboot",
                          "--vendor-euis", str(vendor), "--inventory", str(inv))
    assert code == 7
    assert f"DevEUI {ra['dev_eui']} already belongs to the board with MAC" in json.loads(out)[0]["error"]
    client, _ = device.connect(c.info["url"])
    with client:
        assert client.request("keys.list") == {"keys": {}}

    # --force: new keys, on the device and in the inventory.
    code, out, err = _run(capsys, "--json", "provision", "--port", a.info["url"], "--role", "node", "--no-reboot",
                          "--force", "--inventory", str(inv))
    assert code == 0, out + err
    with Inventory(inv) as db:
        new = db.secret(ra["dev_eui"], "app_key")
    assert new != ka and json.loads(out)[0]["kcv"] == key_check_value(new)

    # The wrong master key: a clear error, the inventory untouched.
    before = inv.read_bytes()
    monkeypatch.setenv("LORASPOT_MASTER_KEY", "11" * 32)
    code, out, err = _run(capsys, "provision", "--port", a.info["url"], "--role", "node", "--force",
                          "--inventory", str(inv))
    assert code == 6 and "wrong master key" in err
    assert inv.read_bytes() == before


def _key(inv, url):
    client, hello = device.connect(url)
    client.close()
    with Inventory(inv) as db:
        d = db.by_mac(hello["id"])
        assert d is not None
        return db.secret(d.dev_eui, "admin_key")


def test_lock_challenge_response(make_board, tmp_path, capsys):
    inv = tmp_path / "inv.sqlite"
    h = make_board(speed=100)  # 300 s of nonce lifetime pass in 3 s
    url = h.info["url"]
    assert provision.provision_many([url], provision.Options(role="node", reboot=False), inv)[0].ok
    admin = _key(inv, url)
    code, out, err = _run(capsys, "lock", "--port", url, "--inventory", str(inv))
    assert code == 0, out + err
    client, hello = device.connect(url)
    with client:
        assert hello["locked"] is True
        for op, args in (("keys.set", {"kind": "app_key", "value": "00" * 16}),
                         ("config.set", {"values": {"role": "hotspot"}}),
                         ("fs.put", {"path": "/x.txt", "size": 1}), ("fs.rm", {"path": "/config.json"}),
                         ("factory_reset", {}), ("unlock", {})):
            with pytest.raises(DeviceError) as e:
                client.request(op, args)
            assert e.value.code in ("auth_required", "auth_failed"), (op, e.value)
        assert device.config_set(client, {"name": "shed-7"}) == {"name": "shed-7"}  # harmless keys stay open
        assert device.config_get(client, "role") == {"role": "node"}

        def send(args, env):
            return client._request("config.set", args, None, 0, env)

        def signed(args, key=admin):
            nonce = bytes.fromhex(client.request("auth.nonce")["nonce"])
            return sign(key, nonce, "config.set", args)

        good = {"values": {"uplink_interval": 120}}
        env = signed(good)
        assert send(good, env) == {"values": {"uplink_interval": 120}}
        with pytest.raises(DeviceError, match="unknown or already used nonce"):
            send(good, env)  # replayed
        env = signed({"values": {"uplink_interval": 121}})
        with pytest.raises(DeviceError, match="wrong authentication"):
            send({"values": {"uplink_interval": 121}}, {**env, "mac": env["mac"][:-2]})  # a prefix
        with pytest.raises(DeviceError, match="wrong authentication"):
            send({"values": {"uplink_interval": 122}}, signed({"values": {"uplink_interval": 122}}, os.urandom(32)))
        env = signed({"values": {"uplink_interval": 123}})
        with pytest.raises(DeviceError, match="wrong authentication"):
            send({"values": {"uplink_interval": 124}}, env)  # signed for other arguments
        env = signed({"values": {"uplink_interval": 125}})
        time.sleep(3.3)  # 330 s of device time
        with pytest.raises(DeviceError) as e:
            send({"values": {"uplink_interval": 125}}, env)
        assert e.value.code == "nonce_expired"
        assert device.config_get(client, "uplink_interval") == {"uplink_interval": 120}

        client.admin_key = admin  # signed on request: a key too long for one request goes ahead in auth.sign
        out = client.request("keys.set", {"kind": "wifi_password", "value": os.urandom(63).hex()})
        assert out["stored"] is True
    code, out, err = _run(capsys, "unlock", "--port", url, "--inventory", str(inv))
    assert code == 0, out + err
    client, hello = device.connect(url)
    with client:
        assert hello["locked"] is False
        assert client.request("keys.set", {"kind": "app_key", "value": "11" * 16})["stored"] is True


def test_production_lock_turns_the_repl_off(production_locked, capsys):
    h, url, _, inv = production_locked

    def raw_repl() -> bool:
        """What mpremote does to get in (Ctrl-C, then Ctrl-A), on the board's pty."""
        with serial.Serial(h.info["pty"], 115200, timeout=0.2) as s:
            s.write(b"\r\x03")
            time.sleep(0.3)
            s.reset_input_buffer()
            s.write(b"\r\x01")
            seen = b""
            end = time.monotonic() + 3
            while time.monotonic() < end and b"raw REPL; CTRL-B to exit" not in seen:
                seen += s.read(256)
            if b"raw REPL; CTRL-B to exit" not in seen:
                return False
            s.write(b"\r\x04")  # soft reset from the raw REPL: back to main.py
            time.sleep(0.5)
            return True

    interrupts = h.board.uart.counters["interrupts"]
    assert not raw_repl()
    assert h.board.uart.counters["interrupts"] == interrupts  # Ctrl-C reached main.py as a plain byte
    client, hello = device.connect(url)  # the console still answers, locked
    with client:
        assert hello["locked"] is True
        device.reboot(client)  # and after a reset the REPL stays off
    assert not raw_repl()
    code, out, err = _run(capsys, "unlock", "--port", url, "--inventory", str(inv))
    assert code == 0, out + err
    assert raw_repl()
    assert h.board.uart.counters["interrupts"] > interrupts


def test_backup_while_another_process_provisions(make_board, tmp_path):
    inv = tmp_path / "inv.sqlite"
    Inventory(inv).close()
    boards = [make_board(pty=False) for _ in range(3)]
    cmd = [sys.executable, "-m", "loraspot.cli", "provision", "--role", "node", "--no-reboot", "--inventory", str(inv)]
    for b in boards:
        cmd += ["--port", b.info["url"]]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "LORASPOT_MASTER_KEY": MASTER})
    copies = []
    while proc.poll() is None or len(copies) < 3:
        dest = tmp_path / f"backup{len(copies)}.sqlite"
        assert main(["devices", "--inventory", str(inv), "backup", str(dest)]) == 0
        copies.append(dest)
        time.sleep(0.05)
    out = proc.communicate()[0]
    assert proc.returncode == 0, out
    for dest in copies:  # every copy a whole database, each device in it with all its keys
        db = sqlite3.connect(dest)
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        db.close()
        with Inventory(dest) as copy:
            for d in copy.devices():
                if d.state == "provisioned":
                    assert len(copy.secret(d.dev_eui, "app_key")) == 16
                    assert len(copy.secret(d.dev_eui, "admin_key")) == 32
    with Inventory(copies[-1]) as last:
        assert sum(d.state == "provisioned" for d in last.devices()) == 3


def test_reprovision_needs_the_admin_key_and_keeps_the_lock(make_board, tmp_path, capsys, monkeypatch):
    inv = tmp_path / "inv.sqlite"
    h = make_board(pty=False)
    url = h.info["url"]
    opts = provision.Options(role="node", reboot=False)
    assert provision.provision_many([url], opts, inv)[0].ok
    old = _key(inv, url)
    assert _run(capsys, "lock", "--port", url, "--production", "--inventory", str(inv))[0] == 0

    # Another inventory (another master key) does not hold this board's admin key: refused.
    monkeypatch.setenv("LORASPOT_MASTER_KEY", "77" * 32)
    other = provision.provision_many([url], provision.Options(role="node", reboot=False, force=True),
                                     tmp_path / "other.sqlite")[0]
    assert not other.ok and "admin key this inventory does not hold" in (other.error or "")
    # Nor can a console without the key replace the admin key on an unlocked board.
    monkeypatch.setenv("LORASPOT_MASTER_KEY", MASTER)
    assert _run(capsys, "unlock", "--port", url, "--inventory", str(inv))[0] == 0
    client, _ = device.connect(url)
    with client:
        with pytest.raises(DeviceError) as e:
            client.request("keys.set", {"kind": "admin_key", "value": "00" * 32})
        assert e.value.code == "auth_required"
    assert _run(capsys, "lock", "--port", url, "--production", "--inventory", str(inv))[0] == 0

    # The holder re-provisions with --force: new keys, locked in production again, the old key dead.
    opts.force = True
    r = provision.provision_many([url], opts, inv)[0]
    assert r.ok, r.error
    new = _key(inv, url)
    assert new != old
    client, hello = device.connect(url)
    with client:
        assert hello["locked"] is True and hello["production"] is True
        with pytest.raises(DeviceError):
            client.request("keys.set", {"kind": "app_key", "value": "00" * 16})
        client.admin_key = old
        with pytest.raises(DeviceError) as e:
            client.request("keys.set", {"kind": "app_key", "value": "00" * 16})
        assert e.value.code == "auth_failed"
        client.admin_key = new
        assert client.request("keys.set", {"kind": "app_key", "value": "00" * 16})["stored"] is True
    with Inventory(inv) as db:
        (d,) = db.devices()
        assert d.state == "locked" and "admin_key_pending" not in db.secret_kinds(d.dev_eui)


def test_a_cut_off_run_is_recovered_with_the_pending_admin_key(make_board, tmp_path):
    """The device took the new admin key but the run ended before the inventory recorded it."""
    inv = tmp_path / "inv.sqlite"
    h = make_board(pty=False)
    url = h.info["url"]
    assert provision.provision_many([url], provision.Options(role="node", reboot=False), inv)[0].ok
    old = _key(inv, url)
    fresh = os.urandom(32)
    with Inventory(inv) as db:
        (d,) = db.devices()
        db.set_secret(d.dev_eui, "admin_key_pending", fresh)
    client, _ = device.connect(url)
    with client:
        client.admin_key = old
        client.request("keys.set", {"kind": "admin_key", "value": fresh.hex()})
    r = provision.provision_many([url], provision.Options(role="node", reboot=False, force=True), inv)[0]
    assert r.ok, r.error
    assert _key(inv, url) not in (old, fresh)


def test_factory_reset_of_a_locked_board_needs_its_key_and_erases_everything(make_board, tmp_path, capsys,
                                                                           monkeypatch):
    inv = tmp_path / "inv.sqlite"
    h = make_board(pty=False)
    url = h.info["url"]
    assert provision.provision_many([url], provision.Options(role="node", reboot=False), inv)[0].ok
    assert _run(capsys, "lock", "--port", url, "--inventory", str(inv))[0] == 0
    monkeypatch.setenv("LORASPOT_MASTER_KEY", "66" * 32)  # an inventory without this board
    code, _, err = _run(capsys, "factory-reset", "--port", url, "--yes", "--inventory", str(tmp_path / "o.sqlite"))
    assert code == 7 and "locked" in err and "give --inventory" in " ".join(err.split())
    monkeypatch.setenv("LORASPOT_MASTER_KEY", MASTER)
    assert _run(capsys, "factory-reset", "--port", url, "--yes", "--inventory", str(inv))[0] == 0
    client, hello = device.connect(url)
    with client:
        assert hello["locked"] is False and hello["role"] == "idle"
        assert client.request("keys.list") == {"keys": {}}
    with Inventory(inv) as db:
        (d,) = db.devices()
        assert d.state == "registered"


def test_everyday_commands_on_a_locked_board(make_board, tmp_path, capsys, monkeypatch):
    """config set signs with the inventory's admin key (or says how); Wi-Fi's password is set as a
    secret, never shown; reboot; a bad value is bad input (exit 2)."""
    monkeypatch.setenv("LORASPOT_MASTER_KEY", MASTER)
    inv = tmp_path / "inv.sqlite"
    h = make_board(pty=False)
    url = h.info["url"]
    assert provision.provision_many([url], provision.Options(role="hotspot", reboot=False), inv)[0].ok
    assert _run(capsys, "lock", "--port", url, "--inventory", str(inv))[0] == 0
    code, _, err = _run(capsys, "config", "set", "--port", url, "--inventory", str(tmp_path / "none.sqlite"),
                        "stats_interval", "30")
    assert code == 7 and "give --inventory" in " ".join(err.split())
    code, out, err = _run(capsys, "config", "set", "--port", url, "--inventory", str(inv), "stats_interval", "30")
    assert (code, out.strip()) == (0, "stats_interval = 30"), err
    code, _, err = _run(capsys, "config", "set", "--port", url, "--inventory", str(inv), "stats_interval", "1")
    assert code == 2 and "stats_interval" in err
    password = "correct horse battery"
    code, out, err = _run(capsys, "config", "set", "--port", url, "--inventory", str(inv), "wifi_password", password)
    assert code == 0 and password not in out + err and "(set; never shown)" in out
    code, _, err = _run(capsys, "config", "set", "--port", url, "--inventory", str(inv), "wifi_password", "short")
    assert code == 7 and "8 to 63" in err
    with Inventory(inv) as db:
        (dev,) = db.devices()
        assert db.secret(dev.dev_eui, "wifi_password") == password.encode()
    code, out, err = _run(capsys, "reboot", "--port", url, "--inventory", str(inv))
    assert code == 0 and "back up as hotspot" in out, err
    client, hello = device.connect(url)
    with client:
        assert hello["locked"] and "wifi_password" in client.request("keys.list")["keys"]
        assert device.config_get(client, "stats_interval") == {"stats_interval": 30}


def test_config_pushed_to_a_selection_of_boards_with_a_result_each(make_board, tmp_path, capsys, monkeypatch):
    """`config push`: the same settings to several boards at once; a locked one signed for with
    the inventory's admin key, one of another role skipped, one that cannot be reached failed
    while the others change; a bad value refused before any board is touched."""
    monkeypatch.setenv("LORASPOT_MASTER_KEY", MASTER)
    inv = tmp_path / "inv.sqlite"
    locked, open_, node = (make_board(pty=False) for _ in range(3))
    for h, role in ((locked, "hotspot"), (open_, "hotspot"), (node, "node")):
        assert provision.provision_many([h.info["url"]], provision.Options(role=role, reboot=False), inv)[0].ok
    assert _run(capsys, "lock", "--port", locked.info["url"], "--inventory", str(inv))[0] == 0
    urls = [h.info["url"] for h in (locked, open_, node)]

    def setting(h, key):
        client, _ = device.connect(h.info["url"])
        with client:
            return device.config_get(client, key)[key]

    before = [setting(h, "stats_interval") for h in (locked, open_, node)]
    args = [a for u in urls for a in ("--port", u)]
    code, _, err = _run(capsys, "config", "push", *args, "--inventory", str(inv), "stats_interval=1")
    assert code == 2 and "stats_interval" in err and "Traceback" not in err, err
    assert [setting(h, "stats_interval") for h in (locked, open_, node)] == before  # nothing touched
    gone = "socket://127.0.0.1:9"  # nothing answers there
    code, out, err = _run(capsys, "--json", "config", "push", *args, "--port", gone, "--inventory", str(inv),
                          "--role", "hotspot", "stats_interval=45", 'name="roof"', "keepalive=20")
    assert code == 1 and "1 of 4 boards were not changed" in err, err
    rows = {r["port"]: r for r in json.loads(out)}
    assert [rows[u]["result"] for u in urls] == ["changed", "changed", "skipped"]
    assert rows[gone]["result"] == "failed" and rows[gone]["error"]
    assert rows[urls[0]]["values"] == {"stats_interval": 45, "name": "roof", "keepalive": 20}  # a hotspot's key too
    assert [setting(h, "stats_interval") for h in (locked, open_, node)] == [45, 45, before[2]]
    assert [setting(h, "keepalive") for h in (locked, open_)] == [20, 20]
    code, _, err = _run(capsys, "config", "push", *args, "--inventory", str(inv), "keepalive=0")
    assert code == 2 and "'keepalive': expected a whole number 1..300" in err, err  # by the hotspot's table
    assert setting(locked, "name") == "roof" and setting(node, "name") != "roof"
