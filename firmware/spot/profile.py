# Board profile schema. The same file validates boards/*.json on the board and on the host,
# so both reject a bad profile with the same message naming the field.

CHIPS = ("esp32", "esp32s3")
RADIOS = ("sx1276", "sx1261", "sx1262", "virtual")
MAX_PIN = {"esp32": 39, "esp32s3": 48}
IMAGE_OFFSET = {"esp32": 0x1000, "esp32s3": 0x0}

# Leaf specs: "str", "int", "num", "bool", "pin", "hex16" (a "0x1234" USB id), a tuple of choices,
# a dict (nested object) or a list with one spec (list of those). A key ending in "?" is optional
# and may be null.
_I2C = {"sda": "pin", "scl": "pin"}
_OUT = {"pin": "pin", "active_low?": "bool"}

SCHEMA = {
    "id": "str",
    "name": "str",
    "chip": CHIPS,
    "image": {"name": "str", "offset": "int", "placeholder?": "bool"},  # placeholder: no image from micropython.org
    "flash": {
        "size": "int",
        "partitions": {"nvs": ["int"], "app": ["int"], "vfs": ["int"], "romfs?": ["int"]},
    },
    # PSRAM bytes; the MicroPython heap (KB) the image gives a program with Wi-Fi on and off (docs/boards.md)
    "memory": {"psram": "int", "heap_kb": {"wifi": "int", "no_wifi": "int"}},
    "radio": {
        "chip": RADIOS,
        "band_mhz": ["num"],
        "max_power_dbm": "int",
        "pa_boost?": "bool",
        "tcxo_volts?": "num",
        "dio2_rf_switch?": "bool",
        "rf_switch?": {"rx_en?": "pin", "tx_en?": "pin"},
        "pins?": {
            "sck": "pin",
            "mosi": "pin",
            "miso": "pin",
            "nss": "pin",
            "reset": "pin",
            "dio0?": "pin",
            "dio1?": "pin",
            "dio2?": "pin",
            "busy?": "pin",
        },
    },
    "power?": {
        "vext?": _OUT,
        "pmu?": {"chip": ("axp192", "axp2101"), "addr": "int", "i2c": _I2C},
    },
    "i2c?": _I2C,
    "oled?": {"driver": ("ssd1306", "sh1106"), "addr": "int", "width": "int", "height": "int",
              "i2c": _I2C, "reset?": "pin"},
    "led?": _OUT,
    "button?": _OUT,
    "battery?": {"adc_pin": "pin", "divider": "num", "enable?": _OUT},
    "gps?": {"uart": "int", "tx": "pin", "rx": "pin", "baud": "int"},
    "usb": [{"vid": "hex16", "pid": "hex16", "chip": "str"}],
}


class ProfileError(ValueError):
    pass


def _fail(where, msg):
    raise ProfileError("board profile field '%s': %s" % (where, msg))


def _check(spec, value, where, max_pin):
    if isinstance(spec, dict):
        if not isinstance(value, dict):
            _fail(where, "expected an object")
        known = {}
        for key in spec:
            name = key[:-1] if key.endswith("?") else key
            known[name] = key
        for name in value:
            if name not in known:
                _fail(where + "." + name if where else name, "unknown field")
        for name, key in known.items():
            path = where + "." + name if where else name
            if name not in value or value[name] is None:
                if not key.endswith("?"):
                    _fail(path, "missing")
                continue
            _check(spec[key], value[name], path, max_pin)
    elif isinstance(spec, list):
        if not isinstance(value, list) or not value:
            _fail(where, "expected a non-empty list")
        for i, item in enumerate(value):
            _check(spec[0], item, "%s[%d]" % (where, i), max_pin)
    elif isinstance(spec, tuple):
        if value not in spec:
            _fail(where, "expected one of %s, got %r" % (", ".join(spec), value))
    elif spec == "str":
        if not isinstance(value, str) or not value:
            _fail(where, "expected a non-empty string")
    elif spec == "bool":
        if not isinstance(value, bool):
            _fail(where, "expected true or false")
    elif spec == "int":
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            _fail(where, "expected a whole number >= 0, got %r" % (value,))
    elif spec == "num":
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            _fail(where, "expected a number, got %r" % (value,))
    elif spec == "pin":
        if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= max_pin:
            _fail(where, "expected a GPIO number 0..%d, got %r" % (max_pin, value))
    elif spec == "hex16":
        ok = isinstance(value, str) and value.startswith("0x") and 3 <= len(value) <= 6
        if ok:
            try:
                int(value, 16)
            except ValueError:
                ok = False
        if not ok:
            _fail(where, "expected a 16-bit hex id like '0x10c4', got %r" % (value,))


def _check_partitions(p):
    size = p["flash"]["size"]
    spans = []
    for name in ("nvs", "app", "vfs", "romfs"):
        span = p["flash"]["partitions"].get(name)
        if span is None:  # only romfs is optional (the schema checked the others)
            continue
        where = "flash.partitions." + name
        if len(span) != 2:
            _fail(where, "expected [offset, size]")
        off, length = span
        if off % 4096 or length % 4096 or length == 0:
            _fail(where, "offset and size must be non-zero multiples of 4096")
        if off + length > size:
            _fail(where, "ends at 0x%x, beyond the %d-byte flash" % (off + length, size))
        spans.append((off, off + length, where))
    spans.sort()
    for a, b in zip(spans, spans[1:]):
        if b[0] < a[1]:
            _fail(b[2], "overlaps " + a[2])


def _check_radio(p, max_pin):
    radio = p["radio"]
    band = radio["band_mhz"]
    if len(band) != 2 or not 137 <= band[0] < band[1] <= 1020:
        _fail("radio.band_mhz", "expected [low, high] within 137..1020 MHz")
    chip = radio["chip"]
    pins = radio.get("pins")
    if chip == "virtual":
        return
    if not pins:
        _fail("radio.pins", "missing (required for %s)" % chip)
    if chip == "sx1276" and pins.get("dio0") is None:
        _fail("radio.pins.dio0", "missing (SX127x signals RxDone/TxDone on DIO0)")
    if chip in ("sx1261", "sx1262"):
        for name in ("busy", "dio1"):
            if pins.get(name) is None:
                _fail("radio.pins." + name, "missing (required for SX126x)")


def validate(p):
    """Check a board profile (parsed JSON); return it unchanged or raise ProfileError."""
    if not isinstance(p, dict):
        raise ProfileError("board profile: expected a JSON object")
    chip = p.get("chip")
    max_pin = MAX_PIN[chip] if chip in MAX_PIN else 48
    _check(SCHEMA, p, "", max_pin)
    chip = p["chip"]
    if p["image"]["offset"] != IMAGE_OFFSET[chip]:
        _fail("image.offset", "must be 0x%x for %s" % (IMAGE_OFFSET[chip], chip))
    if p["flash"]["size"] % (1 << 20):
        _fail("flash.size", "expected a whole number of MiB")
    _check_partitions(p)
    _check_radio(p, max_pin)
    return p


def vfs_span(p):
    """(offset, size) of the filesystem partition."""
    off, size = p["flash"]["partitions"]["vfs"]
    return off, size
