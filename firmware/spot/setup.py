# Set-up without a cable (docs/setup.md): a board that has no Wi-Fi network to join, or was told
# to by a long press of its button, opens a WPA2 access point "loraspot-XXXX" whose passphrase is
# its pairing code (made at provisioning; never an open access point: no code, no access point),
# and serves a page on it taking the Wi-Fi network, its password, the backhaul server and the
# region. The values go through the config's own validation in one atomic write (a bad one is
# refused naming its field, nothing changed); the board then restarts into its role. On a locked
# board a change needs the admin key's HMAC (what `loraspot setup` sends): nonce || "setup\n" ||
# canonical JSON of the fields; without it the page is read-only. The role does not run meanwhile.
import json

from spot import ConfigError
from spot.web import escape, form

FLAG = "/setup"  # present at boot: open the access point (a long press wrote it)
FIELDS = ("wifi_ssid", "wifi_password", "server", "region")


def wanted(app):
    """Why the board opens its set-up access point at this boot, or None: the flag a long press
    left (taken), or a hotspot without a Wi-Fi network on a board that joins Wi-Fi itself."""
    import os

    try:
        os.remove(FLAG)
        return "button"
    except OSError:
        pass
    if app.config.get("role") == "hotspot" and not app.config.get("wifi_ssid") and app.board.network("") is None:
        return "no_wifi"
    return None


def ssid_of(app):
    return "loraspot-" + app.board.device_id()[-4:].upper()


class Setup:
    def __init__(self, app):
        self.app = app
        self.counts = {"requests": 0, "refused": 0, "applied": 0}
        self.auth = None

    def _locked(self):
        return bool(self.app.lock)

    def _auth(self):
        if self.auth is None:
            from spot.auth import Auth

            self.auth = Auth(self.app)
        return self.auth

    def handle(self, req):
        path = req.path.split("?")[0]
        if req.method == "GET" and path == "/":
            return 200, "text/html; charset=utf-8", self.page().encode()
        if req.method == "GET" and path == "/setup.json":
            return 200, "application/json", json.dumps(self.state()).encode()
        if path == "/nonce" and req.method == "POST":
            return 200, "application/json", json.dumps(self._nonce()).encode()
        if path == "/setup" and req.method == "POST":
            status, out = self.apply(req.body)
            return status, "application/json", json.dumps(out).encode()
        return (404 if req.method == "GET" else 405), "text/plain", b"not found"

    def _nonce(self):
        coro = self._auth().nonce({})  # a coroutine that never waits: run to its end here
        try:
            coro.send(None)
        except StopIteration as e:
            return e.value
        return {}

    def state(self):
        from spot import schema, unload

        regions = schema.SCHEMA["region"][2]
        unload("spot.schema")
        c = self.app.config
        return {"ssid": ssid_of(self.app), "id": self.app.board.device_id(), "role": c.get("role"),
                "locked": self._locked(), "fields": FIELDS, "regions": regions,
                "values": {"wifi_ssid": c.get("wifi_ssid"), "server": self._server(), "region": c.get("region")}}

    def _server_key(self):
        return "mqtt_host" if self.app.config.get("backhaul") == "mqtt" else "server"

    def _server(self):
        return self.app.config.get(self._server_key())

    def apply(self, body):
        """(status, answer) of a set-up request: all its fields validated, then written at once."""
        try:
            fields = form(body)
        except ValueError:
            return 400, {"error": "bad_form", "msg": "the form could not be read"}
        nonce, mac = fields.pop("nonce", None), fields.pop("mac", None)
        for k in fields:
            if k not in FIELDS:
                return 400, {"error": "invalid", "field": k, "msg": "unknown field '%s'" % k}
        if not fields:
            return 400, {"error": "invalid", "msg": "no field to change"}
        if self._locked():
            if not nonce or not mac:
                return 403, {"error": "auth_required", "msg": "the board is locked: changes need loraspot setup"}
            from spot.console import CommandError

            self.app.console.envelope = {"nonce": nonce, "mac": mac}
            try:
                self._auth().verify("setup", fields)
            except CommandError as e:
                return 403, {"error": e.code, "msg": str(e)}
        changes = {}
        for k, v in fields.items():
            if k == "wifi_password":
                if not 8 <= len(v.encode()) <= 63:
                    return 400, {"error": "invalid", "field": k, "msg": "the Wi-Fi password must be 8..63 characters"}
            elif k == "server":
                changes[self._server_key()] = v
            else:
                changes[k] = v
        try:
            if changes:
                self.app.config.set(changes)
        except ConfigError as e:
            key = str(e).split("'")[1] if "'" in str(e) else None
            return 400, {"error": e.code, "field": "server" if key == self._server_key() else key, "msg": str(e)}
        except OSError as e:
            return 503, {"error": "io", "msg": "config not saved: %s" % e}
        if "wifi_password" in fields:
            self.app.secrets.put("wifi_password", fields["wifi_password"].encode())
        self.counts["applied"] += 1
        self.app.console.event("setup", {"applied": sorted(fields)})
        import asyncio

        asyncio.create_task(self.app._reboot_soon(500))  # the answer goes out first
        return 200, {"ok": True, "applied": sorted(fields), "restart": True}

    def page(self):
        s = self.state()
        v = s["values"]
        locked = s["locked"]
        ro = " disabled" if locked else ""
        opts = "".join("<option%s>%s</option>" % (" selected" if r == v["region"] else "", r) for r in s["regions"])
        note = ("<p><b>This board is locked.</b> Changes need its admin key: use <code>loraspot setup</code>."
                if locked else "")
        return ("<!DOCTYPE html><html><head><meta charset=utf-8><meta name=viewport content='width=device-width'>"
                "<title>%s set-up</title></head><body><h1>%s</h1>%s<form method=post action=/setup>"
                "<p><label>Wi-Fi network <input name=wifi_ssid maxlength=32 value=\"%s\"%s></label>"
                "<p><label>Wi-Fi password <input name=wifi_password type=password minlength=8 maxlength=63%s>"
                "</label><p><label>Server <input name=server maxlength=64 value=\"%s\"%s></label>"
                "<p><label>Region <select name=region%s>%s</select></label>"
                "<p><button%s>Save and restart</button></form></body></html>") % (
            escape(s["ssid"]), escape(s["ssid"]), note, escape(v["wifi_ssid"]), ro, ro, escape(v["server"]), ro, ro,
            opts, ro)


async def run(app, why):
    """The access point and its page, for good (the board restarts once values are applied)."""
    from spot import web

    code = app.secrets.get("pairing_code")
    if not code:
        app.console.event("log", {"level": "error",
                                  "msg": "set-up access point: this board has no pairing code (provision it)"})
        return
    ssid = ssid_of(app)
    try:
        from spot.parts import Parts

        Parts(app.board).access_point(ssid, code.decode())
        sock = web.listen(app, 80)
    except OSError as e:
        app.console.event("log", {"level": "error", "msg": "set-up access point: %s" % e})
        return
    code = None
    s = Setup(app)
    app.setup = s
    app.console.event("setup", {"ssid": ssid, "why": why, "locked": bool(app.lock)})
    await web.serve(sock, s.handle, s.counts, app.clock)
