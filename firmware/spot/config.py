# Device configuration (JSON, validated against SCHEMA) and the separate secrets store.
# Every write is atomic: the new content goes to a temporary file, the previous file becomes the
# fallback copy, then the temporary file is renamed into place (littlefs renames are atomic), so a
# power cut at any moment leaves the old or the new content, never an empty or partial one.

from spot.atomic import AtomicJson
from spot.secretstore import Secrets  # noqa: F401 (the console and tests import it from here)

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
