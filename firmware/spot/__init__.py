import sys

VERSION = "0.1.0"


class ConfigError(ValueError):
    """A config value or key refused (spot.config, spot.schema); code is the console's error code."""

    def __init__(self, code, msg):
        super().__init__(msg)
        self.code = code


def eui64(mac_hex):
    """EUI-64 (hex, upper case) from a MAC-48: FF FE inserted in the middle, the usual default
    DevEUI of a node and gateway EUI of a hotspot."""
    return (mac_hex[:6] + "FFFE" + mac_hex[6:]).upper()


def unload(name):
    """Forget an imported module (sys.modules and its package's attribute) so its code can be
    collected: for code needed once (the profile schema at boot, the join of a session)."""
    sys.modules.pop(name, None)
    pkg, _, attr = name.rpartition(".")
    parent = sys.modules.get(pkg)
    if parent is not None and attr in parent.__dict__:
        delattr(parent, attr)

