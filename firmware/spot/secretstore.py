# Device secrets in a file (the virtual board); ESP32 boards use spot.nvs. Apart from config so
# that the LoRaWAN path can load it without the config schema.
import binascii

from spot.atomic import AtomicJson

SECRETS_PATH = "/secrets.json"


class Secrets:
    """Secrets kept apart from config; values are never returned over the console.

    The virtual board keeps them in a file; on an ESP32 board.py supplies an NVS-backed store
    with the same methods.
    """

    def __init__(self, path=SECRETS_PATH):
        self._file = AtomicJson(path)
        self._values = None

    def _load(self):
        if self._values is None:
            self._file.cleanup()
            self._values = self._file.load()[0] or {}
        return self._values

    def names(self):
        return sorted(self._load())

    def has(self, name):
        return name in self._load()

    def get(self, name):
        """Raw secret bytes for device-internal use only."""
        value = self._load().get(name)
        return None if value is None else binascii.unhexlify(value)

    def put(self, name, value):
        new = dict(self._load())
        new[name] = binascii.hexlify(value).decode()
        self._file.save(new)
        self._values = new

    def clear(self):
        self._file.save({})
        self._values = {}
