# Console commands for device secrets: keys.set stores a key and answers its key check value
# (KCV: the first 3 bytes of AES-CMAC of a zero block under the key), keys.list names what is
# stored with KCVs. A key itself is never returned, printed or logged.
import binascii

from spot.console import CommandError, arg

# kind -> (min length, max length) in bytes
KINDS = {"app_key": (16, 16), "nwk_key": (16, 16), "nwk_s_key": (16, 16), "app_s_key": (16, 16),
         "admin_key": (32, 32), "wifi_password": (8, 63), "mqtt_password": (1, 64), "pairing_code": (8, 63)}
_AES = ("app_key", "nwk_key", "nwk_s_key", "app_s_key")


def kcv(key):
    from spot.lorawan.crypto import Key

    return binascii.hexlify(Key(key).cmac(None, bytes(16))[:3]).decode()


# keys.identity runs KeyOps.id: "id" is a name the interpreter has built in, and the op's own name
# is longer than the compiler interns, so the command adds no name to the table entered at boot (a
# hotspot with the MQTT backhaul is within a few names of that table's next 15 KB step)
OPS = (("keys.set", "set", True), ("keys.list", "list", False), ("keys.identity", "id", True))

# spot.auth's commands (lock and unlock check the envelope themselves, whatever the lock state)
AUTH_OPS = (("auth.nonce", "nonce", False), ("auth.sign", "arm", False), ("lock", "lock", False),
            ("unlock", "unlock", False), ("factory_reset", "factory_reset", True))


class KeyOps:
    def __init__(self, secrets, authorize=None):
        self.secrets = secrets
        # authorize(op, args): raises CommandError unless the request carries valid admin
        # authentication (spot.auth); replacing a stored admin key needs it, locked or not
        self.authorize = authorize

    def register(self, console):
        for op, method, auth in OPS:
            console.register(op, getattr(self, method), auth)

    def _check(self, kind):
        if kind not in KINDS:
            raise CommandError("bad_args", "unknown key kind %r (%s)" % (kind, ", ".join(sorted(KINDS))))

    async def set(self, args):
        kind = arg(args, "kind", str)
        self._check(kind)
        try:
            value = binascii.unhexlify(arg(args, "value", str))
        except ValueError:
            raise CommandError("bad_args", "value must be hex")
        if kind == "admin_key" and self.authorize is not None and self.secrets.has("admin_key"):
            self.authorize("keys.set", args)
        lo, hi = KINDS[kind]
        if not lo <= len(value) <= hi:
            raise CommandError("bad_args", "%s must be %s bytes" % (kind, lo if lo == hi else "%d..%d" % (lo, hi)))
        self.secrets.put(kind, value)
        out = {"kind": kind, "stored": True}
        if kind in _AES:
            out["kcv"] = kcv(value)
        return out

    async def list(self, args):
        keys = {}
        for kind in self.secrets.names():
            keys[kind] = kcv(self.secrets.get(kind)) if kind in _AES else "set"
        return {"keys": keys}

    async def id(self, args):
        import sys

        __import__("spot.identity")  # loaded on use, by a string: none of its names at boot
        return sys.modules["spot.identity"].get(self, args)
