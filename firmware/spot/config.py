# Device configuration (JSON, validated against spot/schema.py) and the separate secrets store.
# Every write is atomic: the new content goes to a temporary file, the previous file becomes the
# fallback copy, then the temporary file is renamed into place (littlefs renames are atomic), so a
# power cut at any moment leaves the old or the new content, never an empty or partial one.

from spot import ConfigError, unload
from spot.atomic import AtomicJson
from spot.secretstore import Secrets  # noqa: F401 (the console and tests import it from here)

CONFIG_PATH = "/config.json"
SECRETS_PATH = "/secrets.json"


class Config:
    def __init__(self, path=CONFIG_PATH):
        self._file = AtomicJson(path)
        self._values = {}
        self.origin = None  # 'main', 'backup' or None (defaults)
        self.warnings = []

    def load(self):
        from spot import schema, schema_hotspot

        self._file.cleanup()
        stored, self.origin = self._file.load()
        values = {}
        self.warnings = []
        for table in (schema.SCHEMA, schema_hotspot.SCHEMA):
            for key, (_, default, _) in table.items():
                values[key] = default
                if stored and key in stored:
                    try:
                        values[key] = schema.check(key, stored[key], table)
                    except ConfigError as e:
                        self.warnings.append(str(e))
        self._values = values
        unload("spot.schema")
        unload("spot.schema_hotspot")
        return self

    def get(self, key):
        if key not in self._values:
            raise ConfigError("unknown_key", "unknown config key '%s'" % key)
        return self._values[key]

    def values(self):
        """The values themselves, not a copy: read them, change them through set()."""
        return self._values

    def set(self, changes):
        """Validate every change, then store them all in one atomic write."""
        if not isinstance(changes, dict) or not changes:
            raise ConfigError("bad_args", "expected a non-empty object of key: value")
        from spot import schema

        try:
            checked = {}
            for key, value in changes.items():
                if key in schema.SCHEMA or key not in self._values:
                    checked[key] = schema.check(key, value)
                else:  # a hotspot key: its table is loaded only for it
                    from spot import schema_hotspot

                    checked[key] = schema.check(key, value, schema_hotspot.SCHEMA)
        finally:
            unload("spot.schema")
            unload("spot.schema_hotspot")
        # changed in place (no copy of the whole table) and put back if the write fails
        old = {key: self._values[key] for key in checked}
        self._values.update(checked)
        try:
            self._file.save(self._values)
        except BaseException:
            self._values.update(old)
            raise
