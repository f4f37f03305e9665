# Device configuration (JSON, validated against SCHEMA) and the separate secrets store.
# Every write is atomic: the new content goes to a temporary file, the previous file becomes the
# fallback copy, then the temporary file is renamed into place (littlefs renames are atomic), so a
# power cut at any moment leaves the old or the new content, never an empty or partial one.
import binascii
import json
import os

CONFIG_PATH = "/config.json"
SECRETS_PATH = "/secrets.json"

# key: (kind, default, constraint). kind: "str" (constraint: max length), "int" ((min, max)),
# "bool" (None), "enum" (tuple of choices).
SCHEMA = {
    "name": ("str", "", 32),
    "role": ("enum", "idle", ("idle", "node", "hotspot")),
    "stats_interval": ("int", 60, (5, 86400)),
    "log_level": ("enum", "info", ("debug", "info", "warn", "error")),
    "console_events": ("bool", True, None),
}


class ConfigError(ValueError):
    def __init__(self, code, msg):
        super().__init__(msg)
        self.code = code


def check(key, value, schema=SCHEMA):
    """Return value if valid for key, else raise ConfigError naming the key and the rule."""
    if key not in schema:
        raise ConfigError("unknown_key", "unknown config key '%s'" % key)
    kind, _, rule = schema[key]
    if kind == "str":
        if not isinstance(value, str) or len(value) > rule:
            raise ConfigError("invalid", "config '%s': expected text of at most %d characters" % (key, rule))
        for ch in value:
            if ord(ch) < 0x20 or ord(ch) == 0x7F:
                raise ConfigError("invalid", "config '%s': control characters are not allowed" % key)
    elif kind == "int":
        if not isinstance(value, int) or isinstance(value, bool) or not rule[0] <= value <= rule[1]:
            raise ConfigError(
                "invalid", "config '%s': expected a whole number %d..%d, got %r" % (key, rule[0], rule[1], value)
            )
    elif kind == "bool":
        if not isinstance(value, bool):
            raise ConfigError("invalid", "config '%s': expected true or false, got %r" % (key, value))
    elif kind == "enum":
        if value not in rule:
            raise ConfigError("invalid", "config '%s': expected one of %s, got %r" % (key, ", ".join(rule), value))
    return value


def _exists(path):
    try:
        os.stat(path)
        return True
    except OSError:
        return False


def _remove(path):
    try:
        os.remove(path)
    except OSError:
        pass


class AtomicJson:
    """A JSON object in a file, replaced atomically with a fallback copy (path + '.bak')."""

    def __init__(self, path):
        self.path = path
        self.bak = path + ".bak"
        self.tmp = path + ".tmp"

    def load(self):
        """The stored object and where it came from ('main', 'backup'), or (None, None)."""
        for path, origin in ((self.path, "main"), (self.bak, "backup")):
            try:
                with open(path) as f:
                    obj = json.load(f)
            except (OSError, ValueError):
                continue
            if isinstance(obj, dict):
                return obj, origin
        return None, None

    def save(self, obj):
        data = json.dumps(obj)
        with open(self.tmp, "w") as f:
            f.write(data)
        if _exists(self.path):
            _remove(self.bak)
            os.rename(self.path, self.bak)
        os.rename(self.tmp, self.path)

    def cleanup(self):
        """Drop a temporary file left by a write that a power cut interrupted."""
        _remove(self.tmp)


class Config:
    def __init__(self, path=CONFIG_PATH, schema=SCHEMA):
        self._file = AtomicJson(path)
        self._schema = schema
        self._values = {}
        self.origin = None  # 'main', 'backup' or None (defaults)
        self.warnings = []

    def load(self):
        self._file.cleanup()
        stored, self.origin = self._file.load()
        values = {}
        self.warnings = []
        for key, (_, default, _) in self._schema.items():
            values[key] = default
            if stored and key in stored:
                try:
                    values[key] = check(key, stored[key], self._schema)
                except ConfigError as e:
                    self.warnings.append(str(e))
        self._values = values
        return self

    def get(self, key):
        if key not in self._schema:
            raise ConfigError("unknown_key", "unknown config key '%s'" % key)
        return self._values[key]

    def values(self):
        return dict(self._values)

    def set(self, changes):
        """Validate every change, then store them all in one atomic write."""
        if not isinstance(changes, dict) or not changes:
            raise ConfigError("bad_args", "expected a non-empty object of key: value")
        new = dict(self._values)
        for key, value in changes.items():
            new[key] = check(key, value, self._schema)
        self._file.save(new)
        self._values = new


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
