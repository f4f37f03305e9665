# The config schema and its validation, loaded only when config is read at boot or changed (the
# table and its checks would otherwise take heap for the whole run).
from spot import ConfigError

# key: (kind, default, constraint). kind: "str" (constraint: max length), "int" ((min, max)),
# "bool" (None), "enum" (tuple of choices), "hex" (exact number of hex digits, or empty), "list"
# ("auto" or comma-separated name[@number] with names from the tuple).
SCHEMA = {
    "name": ("str", "", 32),
    "role": ("enum", "idle", ("idle", "node", "hotspot")),
    "stats_interval": ("int", 60, (5, 86400)),
    "log_level": ("enum", "info", ("debug", "info", "warn", "error")),
    "console_events": ("bool", True, None),
    "display": ("bool", False, None),  # the board's display (profile "oled"; spot.display)
    # LoRaWAN (node role); keys are in the secrets store
    "region": ("enum", "EU868", ("EU868", "US915", "AS923-1", "AS923-2", "AS923-3", "AS923-4", "CN470", "SINGLE")),
    "sub_band": ("int", 2, (1, 8)),
    # the region a SINGLE node's channel lies in: its RX1/RX2, duty-cycle and power rules
    "single_region": ("enum", "EU868", ("EU868", "US915", "AS923-1", "AS923-2", "AS923-3", "AS923-4", "CN470")),
    "lbt": ("bool", False, None),  # listen before talk: AS923 in Japan (ARIB STD-T108)
    "repeater": ("bool", False, None),  # the network's repeater-compatible payload sizes (at most 222 B)
    "single_freq": ("int", 868100000, (137000000, 1020000000)),
    "single_sf": ("int", 7, (7, 12)),
    "data_rate": ("int", -1, (-1, 15)),  # -1: automatic (join from the fastest DR down, then ADR)
    "dev_eui": ("hex", "", 16),
    "activation": ("enum", "otaa", ("otaa", "abp")),  # abp: dev_addr and the secrets nwk_s_key, app_s_key
    "dev_addr": ("hex", "", 8),
    "join_eui": ("hex", "0000000000000000", 16),
    # node role
    "sensors": ("list", "auto", ("bme280", "sht31", "aht20", "ds18b20", "gps", "battery")),
    "uplink_interval": ("int", 300, (5, 86400)),
    "confirm_every": ("int", 0, (0, 255)),
    "retries": ("int", 2, (0, 8)),
    "rejoin_after": ("int", 172800, (0, 2592000)),
    "fport": ("int", 2, (1, 223)),
    "cmd_port": ("int", 10, (1, 223)),
    "sleep": ("enum", "none", ("none", "deep")),
}


_HEX = b"0123456789abcdefABCDEF"


def _position(text):
    if text == "":
        return True
    parts = text.split(",")
    if len(parts) != 3:
        return False
    try:
        lat, lon, alt = (float(x) for x in parts)
    except ValueError:
        return False
    return -90 <= lat <= 90 and -180 <= lon <= 180 and -500 <= alt <= 10000


def check(key, value, schema=SCHEMA):
    """Return value if valid for key, else raise ConfigError naming the key and the rule."""
    if key not in schema:
        raise ConfigError("unknown_key", "unknown config key '%s'" % key)
    kind, _, rule = schema[key]
    if kind == "str":
        if not isinstance(value, str) or len(value) > rule:
            raise ConfigError("invalid", "config '%s': expected text of at most %d characters" % (key, rule))
        for c in value.encode():  # bytes: indexing the str would intern every distinct character
            if c < 0x20 or c == 0x7F:
                raise ConfigError("invalid", "config '%s': control characters are not allowed" % key)
    elif kind == "int":
        if not isinstance(value, int) or isinstance(value, bool) or not rule[0] <= value <= rule[1]:
            raise ConfigError(
                "invalid", "config '%s': expected a whole number %d..%d, got %r" % (key, rule[0], rule[1], value)
            )
    elif kind == "bool":
        if not isinstance(value, bool):
            raise ConfigError("invalid", "config '%s': expected true or false, got %r" % (key, value))
    elif kind == "hex":
        if not isinstance(value, str) or (value and len(value) != rule) or value.encode().strip(_HEX):
            raise ConfigError("invalid", "config '%s': expected %d hex digits or empty" % (key, rule))
        value = value.upper()
    elif kind == "list":
        if not isinstance(value, str) or len(value) > 96:
            raise ConfigError("invalid", "config '%s': expected text of at most 96 characters" % key)
        if value != "auto":
            for item in value.split(","):
                name, _, where = item.strip().partition("@")
                if name not in rule:
                    raise ConfigError("invalid",
                                      "config '%s': unknown name %r (auto or %s)" % (key, name, ", ".join(rule)))
                try:
                    int(where, 0) if where else 0
                except ValueError:
                    raise ConfigError("invalid", "config '%s': %r after @ is not a number" % (key, where))
    elif kind == "pos":
        if not isinstance(value, str) or not _position(value):
            raise ConfigError("invalid", "config '%s': expected \"latitude,longitude,altitude\" or empty" % key)
    elif kind == "enum":
        if value not in rule:
            raise ConfigError("invalid", "config '%s': expected one of %s, got %r" % (key, ", ".join(rule), value))
    return value
