# A JSON object in a file, replaced atomically with a fallback copy: what config, secrets and
# the LoRaWAN counters are stored with. Small on purpose: the LoRaWAN path loads it alone.
import json
import os


def exists(path):
    try:
        os.stat(path)
        return True
    except OSError:
        return False


def remove(path):
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
        with open(self.tmp, "w") as f:
            json.dump(obj, f)  # written as it is encoded: no copy of the whole text in the heap
        if exists(self.path):
            remove(self.bak)
            os.rename(self.path, self.bak)
        os.rename(self.tmp, self.path)

    def cleanup(self):
        """Drop a temporary file left by a write that a power cut interrupted."""
        remove(self.tmp)
