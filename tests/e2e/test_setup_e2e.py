"""Set-up without a cable on the virtual board (docs/setup.md): a provisioned hotspot with no Wi-Fi
network opens its WPA2 access point with the pairing code; a station with another passphrase never
reaches the page; bad values are refused naming their field with the config unchanged; good values
are applied and the board restarts and joins the Wi-Fi network and its server. On a locked board a
change needs the admin key's HMAC (`loraspot setup` signs it from the inventory). A long press of
the button (on a board with its display on) opens the access point."""

from __future__ import annotations

import http.client
import json
from urllib.parse import urlencode

import pytest
from loraspot import device
from loraspot.cli.main import main
from loraspot.listen.server import Listener
from loraspot.provision import provision
from loraspot.provision.inventory import Inventory, pairing_code
from loraspot.sim import air
from loraspot.sim.medium import Medium

from tests.e2e.hotspot_world import Events, wait

pytestmark = pytest.mark.e2e
WIFI = {"HomeNet": "correct horse battery"}


def _provisioned_hotspot(make_board, medium, inv, listener_port, lock=False):
    """A hotspot provisioned without a Wi-Fi network (its server's host wrong, its port right),
    restarted: it opens its access point. (harness, pairing code, access point's status)."""
    h = make_board(medium=medium.address, wifi=WIFI)
    url = h.info["url"]
    opts = provision.Options(role="hotspot", reboot=False, server=f"udp://192.0.2.1:{listener_port}")
    res = provision.provision_many([url], opts, inv)[0]
    assert res.ok, res
    if lock:
        assert main(["lock", "--port", url, "--inventory", str(inv)]) == 0
    with Inventory(inv) as db:
        code = pairing_code(db, db.devices()[0].dev_eui)
    client, _ = device.connect(url)
    with client:
        assert client.request("keys.list")["keys"]["pairing_code"] == "set"  # stored, never shown
        device.reboot(client, greet=False)
    return h, code, h.wait_status("access_point", timeout=60)


def _request(h, ssid, code, method, path, form=None):
    s = air.join(h.info["air"], ssid, code)
    c = http.client.HTTPConnection("192.168.4.1", timeout=15)
    c.sock = s
    c.request(method, path, body=urlencode(form) if form is not None else None,
              headers={"Content-Type": "application/x-www-form-urlencoded"} if form is not None else {})
    r = c.getresponse()
    body = r.read()
    c.close()
    return r.status, body


def _config(h, key):
    client, _ = device.connect(h.info["url"])
    with client:
        return device.config_get(client, key)[key]


def _restarted_on_wifi(h) -> Events:
    """Restart the board (given its Wi-Fi settings) and wait for its backhaul to be up."""
    client, _ = device.connect(h.info["url"])
    with client:
        device.reboot(client, greet=False)
    h.wait_status("boot", count=2, timeout=60)
    ev = Events(h.info["url"])
    if not wait(lambda: ev.client.request("stats").get("backhaul") == "up", 60):
        ev.close()
        pytest.fail("the backhaul did not come up after the restart")
    return ev


def test_access_point_set_up_joins_the_network(make_board, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("LORASPOT_MASTER_KEY", "5a" * 32)
    inv = tmp_path / "inv.sqlite"
    with Medium() as medium, Listener({}, port=0) as ls:
        h, code, ap = _provisioned_hotspot(make_board, medium, inv, ls.address[1])
        ssid = ap["ssid"]
        assert ssid == "loraspot-" + h.info["id"][-4:].upper()
        # another passphrase: refused by the access point, before any page
        with pytest.raises(air.AirError, match="wrong passphrase"):
            air.join(h.info["air"], ssid, "WRNG-CODE-XXXX")
        status, page = _request(h, ssid, code, "GET", "/")
        assert status == 200 and b"<form" in page and code.encode() not in page
        # bad values: refused naming the field, nothing changed (the valid ones of the same form neither)
        status, body = _request(h, ssid, code, "POST", "/setup", {"wifi_ssid": "HomeNet", "region": "XX868"})
        assert status == 400 and json.loads(body)["field"] == "region"
        status, body = _request(h, ssid, code, "POST", "/setup", {"wifi_ssid": "HomeNet", "wifi_password": "short"})
        assert status == 400 and json.loads(body)["field"] == "wifi_password"
        status, body = _request(h, ssid, code, "POST", "/setup", {"wifi_ssid": "x" * 40})
        assert status == 400 and json.loads(body)["field"] == "wifi_ssid"
        assert main(["setup", "--port", h.info["url"], "--server", "h" * 70, "--inventory", str(inv)]) == 2
        err = capsys.readouterr().err
        assert "field server" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
        assert _config(h, "wifi_ssid") == "" and _config(h, "region") == "EU868" and _config(h, "server") == "192.0.2.1"
        # good values through loraspot setup (the pairing code from the inventory): the board restarts,
        # joins HomeNet with the password and forwards to the server it was given
        assert main(["setup", "--port", h.info["url"], "--wifi-ssid", "HomeNet", "--wifi-password",
                     WIFI["HomeNet"], "--server", "127.0.0.1", "--region", "EU868", "--inventory", str(inv)]) == 0
        h.wait_status("boot", count=3, timeout=60)
        ev = Events(h.info["url"])
        try:
            # the link came up at boot, before this client: the backhaul is up, through the Wi-Fi stand-in
            # that connects only with HomeNet's password, to the server the page set
            assert wait(lambda: ev.client.request("stats").get("backhaul") == "up", 60), ev.events[-10:]
            assert wait(lambda: ls.snapshot()["gateways"], 60), ls.snapshot()
            got = device.config_get(ev.client)
            assert (got["wifi_ssid"], got["server"]) == ("HomeNet", "127.0.0.1")
        finally:
            ev.close()
        assert h.status.count({"event": "access_point", "ssid": ssid}) == 1  # not opened again
        assert WIFI["HomeNet"] not in json.dumps(h.status) and code not in json.dumps(h.status)


def test_a_locked_board_takes_only_signed_changes(make_board, tmp_path, monkeypatch):
    monkeypatch.setenv("LORASPOT_MASTER_KEY", "5a" * 32)
    inv = tmp_path / "inv.sqlite"
    with Medium() as medium, Listener({}, port=0) as ls:
        h, code, ap = _provisioned_hotspot(make_board, medium, inv, ls.address[1], lock=True)
        ssid = ap["ssid"]
        status, page = _request(h, ssid, code, "GET", "/")
        assert status == 200 and b"locked" in page and b" disabled" in page  # read-only
        good = {"wifi_ssid": "HomeNet", "wifi_password": WIFI["HomeNet"], "server": "127.0.0.1"}
        status, body = _request(h, ssid, code, "POST", "/setup", good)
        assert status == 403 and json.loads(body)["error"] == "auth_required"
        # a nonce, and a MAC that is not the admin key's
        status, body = _request(h, ssid, code, "POST", "/nonce", {})
        nonce = json.loads(body)["nonce"]
        status, body = _request(h, ssid, code, "POST", "/setup", {**good, "nonce": nonce, "mac": "00" * 32})
        assert status == 403 and json.loads(body)["error"] == "auth_failed"
        # the MAC over other values than the ones sent
        from loraspot.console.client import sign

        with Inventory(inv) as db:
            admin = db.secret(db.devices()[0].dev_eui, "admin_key")
        status, body = _request(h, ssid, code, "POST", "/nonce", {})
        env = sign(admin, bytes.fromhex(json.loads(body)["nonce"]), "setup", {**good, "server": "203.0.113.9"})
        status, body = _request(h, ssid, code, "POST", "/setup", {**good, **env})
        assert status == 403
        assert _config(h, "wifi_ssid") == "" and _config(h, "server") == "192.0.2.1"
        # loraspot setup signs with the admin key the inventory holds
        assert main(["setup", "--port", h.info["url"], "--wifi-ssid", "HomeNet", "--wifi-password",
                     WIFI["HomeNet"], "--server", "127.0.0.1", "--inventory", str(inv)]) == 0
        h.wait_status("boot", count=3, timeout=60)
        assert wait(lambda: ls.snapshot()["gateways"], 60), ls.snapshot()
        assert _config(h, "wifi_ssid") == "HomeNet"


def test_no_access_point_without_a_pairing_code_and_a_long_press_opens_it(make_board, tmp_path, monkeypatch):
    from loraspot import budget

    from tests.e2e.hotspot_world import hotspot_image

    with Medium() as medium, Listener({}, port=0) as ls:
        # never provisioned: no pairing code, so no access point at all (never an open one)
        path = hotspot_image(tmp_path / "hs.bin", server_port=ls.address[1])
        # the button runs with the display: the heap measured for a hotspot with its display, and headroom
        heap = budget.FEATURE_NEED_KB[("hotspot-udp", "romfs", "display")] + budget.HEADROOM_KB
        h = make_board(path, medium=medium.address, wifi=WIFI, heap_kb=heap)
        ev = Events(h.info["url"])
        try:
            # the set-up task ran at boot, before the console answered this client
            assert ev.client.request("stats")["up_ms"] >= 0
            assert not any(s["event"] == "access_point" for s in h.status)
            # a hotspot on Wi-Fi with a pairing code: a long press opens the access point
            ev.client.request("keys.set", {"kind": "pairing_code", "value": b"PAIR-CODE-2345".hex()})
            device.config_set(ev.client, {"wifi_ssid": "HomeNet", "display": True}, check_fit=False)
            ev.client.request("keys.set", {"kind": "wifi_password", "value": WIFI["HomeNet"].encode().hex()})
        finally:
            ev.close()
        ev = _restarted_on_wifi(h)
        try:
            h.board.parts.press(200)  # a short press: no set-up
            assert wait(lambda: ev.of("button"), 30), ev.events[-5:]
            assert ev.of("button")[0]["held_ms"] < 5000 and not any(s["event"] == "access_point" for s in h.status)
            h.board.parts.press(6000)
            ap = h.wait_status("access_point", timeout=60)
        finally:
            ev.close()
        status, page = _request(h, ap["ssid"], "PAIR-CODE-2345", "GET", "/")
        assert status == 200 and b"HomeNet" in page
        # a computer on the access point: loraspot setup --url (the page at 192.168.4.1 on a board)
        assert main(["setup", "--url", f"http://127.0.0.1:{h.info['http']}/", "--region", "US915"]) == 0
        h.wait_status("boot", count=4, timeout=60)
        assert _config(h, "region") == "US915"


def test_a_long_press_opens_set_up_on_a_hotspot_without_a_display(make_board, tmp_path):
    """The button is watched on a hotspot whose display is off (or that has none), in the heap
    measured for the plain hotspot: a press held 5 s opens the access point, as with the display."""
    from loraspot import budget

    from tests.e2e.hotspot_world import hotspot_image

    with Medium() as medium, Listener({}, port=0) as ls:
        path = hotspot_image(tmp_path / "hs.bin", server_port=ls.address[1], wifi_ssid="HomeNet")
        heap = budget.NEED_KB[("hotspot-udp", "romfs")] + budget.HEADROOM_KB
        h = make_board(path, medium=medium.address, wifi=WIFI, heap_kb=heap)
        ev = Events(h.info["url"])
        try:
            ev.client.request("keys.set", {"kind": "pairing_code", "value": b"PAIR-CODE-6789".hex()})
            ev.client.request("keys.set", {"kind": "wifi_password", "value": WIFI["HomeNet"].encode().hex()})
        finally:
            ev.close()
        ev = _restarted_on_wifi(h)
        try:
            assert device.config_get(ev.client, "display") == {"display": False}
            stats = ev.client.request("stats")
            assert stats.get("role_no_memory", 0) == 0 and stats["tx_no_memory"] == 0, stats
            ap = _held_into_set_up(h)
            assert [e["then"] for e in ev.of("button")] in ([], ["setup"])  # the event may race the reset
        finally:
            ev.close()
        assert b"HomeNet" in _page_only_with(h, ap, "PAIR-CODE-6789")


def test_a_long_press_opens_set_up_on_a_node_without_a_display(make_board, tmp_path):
    """A node watches its button as a hotspot without its display does, in the heap measured for
    the node: a press held 5 s restarts it into set-up (its region, for one)."""
    from loraspot import budget

    from tests.e2e.hotspot_world import node_image

    with Medium() as medium:
        path = node_image(tmp_path / "n.bin", "70B3D57ED00000E1", bytes(range(16)))
        heap = budget.NEED_KB[("node", "romfs")] + budget.HEADROOM_KB
        h = make_board(path, medium=medium.address, wifi=WIFI, heap_kb=heap, hardware={"bme280": {}})
        ev = Events(h.info["url"])
        try:
            ev.client.request("keys.set", {"kind": "pairing_code", "value": b"PAIR-CODE-4567".hex()})
            assert device.config_get(ev.client, "display") == {"display": False}
            ap = _held_into_set_up(h)
        finally:
            ev.close()
        assert b"region" in _page_only_with(h, ap, "PAIR-CODE-4567")


def _held_into_set_up(h) -> dict:
    """Hold the button until the board has opened its access point (the press is looked at once a
    second of device time, and a starved process must not let it end early): its status."""
    h.board.parts.press(600_000)
    ap = h.wait_status("access_point", timeout=120)
    h.board.parts.press(0)
    return ap


def _page_only_with(h, ap: dict, code: str) -> bytes:
    """The set-up page, reached with the pairing code and refused with another."""
    status, page = _request(h, ap["ssid"], code, "GET", "/")
    assert status == 200
    with pytest.raises(air.AirError, match="wrong passphrase"):
        _request(h, ap["ssid"], "WRONG-CODE-0000", "GET", "/")
    return page
