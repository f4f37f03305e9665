"""`loraspot setup`: a board's Wi-Fi network, backhaul server and region through its set-up access
point's page (firmware spot/setup.py, docs/setup.md), signed with its admin key when it is locked.

On a real board the computer joins the access point "loraspot-XXXX" with the pairing code, and the
page is at http://192.168.4.1/. A virtual board's access point is reached through its air
(loraspot.sim.air) with the same pairing code: `--port` names the board."""

from __future__ import annotations

import http.client
import json
from pathlib import Path
from urllib.parse import urlencode, urlsplit

from loraspot.console.client import sign
from loraspot.errors import LoraspotError

FIELDS = ("wifi_ssid", "wifi_password", "server", "region")


class SetupError(LoraspotError):
    exit_code = 2


class Page:
    """Requests to a set-up page: over the network at url, or through a virtual board's air."""

    def __init__(self, url: str | None = None, air: tuple[int, str, str] | None = None, timeout: float = 15.0):
        self.url = url
        self.air = air  # (air port, ssid, pairing code)
        self.timeout = timeout

    def _connection(self) -> http.client.HTTPConnection:
        if self.air is not None:
            from loraspot.sim import air

            port, ssid, code = self.air
            c = http.client.HTTPConnection("192.168.4.1", timeout=self.timeout)
            c.sock = air.join(port, ssid, code, self.timeout)
            return c
        u = urlsplit(self.url or "http://192.168.4.1/")
        if u.scheme != "http" or not u.hostname:
            raise SetupError(f"{self.url}: expected http://HOST[:PORT]/ (the board's page: http://192.168.4.1/)")
        return http.client.HTTPConnection(u.hostname, u.port or 80, timeout=self.timeout)

    def request(self, method: str, path: str, form: dict | None = None) -> tuple[int, dict]:
        where = self.url or "the board's access point"
        try:
            c = self._connection()
            try:
                body = urlencode(form) if form is not None else None
                headers = {"Content-Type": "application/x-www-form-urlencoded"} if form is not None else {}
                c.request(method, path, body=body, headers=headers)
                r = c.getresponse()
                raw = r.read()
            finally:
                c.close()
        except (OSError, http.client.HTTPException) as e:
            raise SetupError(f"{where}: {e}") from None
        try:
            return r.status, json.loads(raw)
        except ValueError:
            raise SetupError(f"{where}: answered {r.status} without JSON: is it a loraspot set-up page?") from None


def apply(page: Page, values: dict[str, str], inventory: Path | str | None = None) -> dict:
    """Send values (FIELDS) to the page; on a locked board signed with the admin key the inventory
    holds for it. The board's answer, or SetupError naming the field it refused."""
    unknown = sorted(set(values) - set(FIELDS))
    if unknown or not values:
        raise SetupError(f"nothing to set (give any of {', '.join(FIELDS)})" if not values
                         else f"unknown field(s) {', '.join(unknown)}")
    status, state = page.request("GET", "/setup.json")
    if status != 200:
        raise SetupError(f"the set-up page answered {status}")
    form = dict(values)
    if state.get("locked"):
        form.update(_signature(page, state, values, inventory))
    status, out = page.request("POST", "/setup", form)
    if status != 200:
        field = f" (field {out['field']})" if out.get("field") else ""
        raise SetupError(f"the board refused the values{field}: {out.get('msg') or out.get('error')}")
    return out


def _signature(page: Page, state: dict, values: dict[str, str], inventory: Path | str | None) -> dict:
    from loraspot.provision.inventory import Inventory, InventoryError

    try:
        with Inventory(inventory) as inv:
            dev = inv.by_mac(str(state.get("id", "")))
            if dev is None:
                raise SetupError(f"the board {state.get('id')} is locked and not in the inventory: its admin key "
                                 "is needed to change it")
            key = inv.secret(dev.dev_eui, "admin_key")
    except InventoryError as e:
        raise SetupError(str(e)) from None
    status, got = page.request("POST", "/nonce", {})
    if status != 200 or "nonce" not in got:
        raise SetupError("the board gave no nonce to sign with")
    env = sign(key, bytes.fromhex(got["nonce"]), "setup", dict(values))
    return {"nonce": env["nonce"], "mac": env["mac"]}


def virtual_page(port: str, pairing: str | None, inventory: Path | str | None) -> Page:
    """The set-up page of the running virtual board serving port, through its access point."""
    from loraspot.sim import screen

    info = screen.board_entry(port)
    if not info.get("air"):
        raise SetupError(f"{port}: this virtual board has no Wi-Fi networks in reach (loraspot sim board --wifi)")
    mac = info["serial_number"]
    if pairing is None:
        from loraspot.provision.inventory import Inventory, InventoryError, pairing_code

        try:
            with Inventory(inventory) as inv:
                dev = inv.by_mac(mac)
                if dev is None:
                    raise SetupError(f"{port}: board {mac} is not in the inventory: give --pairing-code")
                pairing = pairing_code(inv, dev.dev_eui)
        except InventoryError as e:
            raise SetupError(str(e)) from None
    return Page(air=(int(info["air"]), "loraspot-" + mac[-4:].upper(), pairing))
