# Board profiles load and validate on the firmware side exactly as on the host.
import json
import os

from fwtest import eq, raises
from spot import profile

BOARDS = "../../boards"


def _load(name):
    with open(BOARDS + "/" + name) as f:
        return json.load(f)


def test_every_shipped_profile_is_valid():
    names = [n for n in os.listdir(BOARDS) if n.endswith(".json")]
    if len(names) < 9:
        raise AssertionError("expected at least 9 profiles, found %d" % len(names))
    for name in names:
        p = _load(name)
        for slot in ("otadata", "ota_1"):  # app slots: checked by the host, left out of the board's copy
            p["flash"]["partitions"].pop(slot, None)
        p = profile.validate(p)
        eq(p["id"] + ".json", name)


def _error_for(mutate):
    p = _load("ttgo-lora32-v2.1.json")
    mutate(p)
    return str(raises(profile.ProfileError, profile.validate, p))


def _expect(mutate, field):
    msg = _error_for(mutate)
    if "'" + field + "'" not in msg:
        raise AssertionError("expected field %s in: %s" % (field, msg))


def test_bad_profiles_name_the_field():
    _expect(lambda p: p["radio"]["pins"].__setitem__("nss", 40), "radio.pins.nss")
    _expect(lambda p: p["radio"]["pins"].pop("dio0"), "radio.pins.dio0")
    _expect(lambda p: p["radio"].__setitem__("chip", "sx1280"), "radio.chip")
    _expect(lambda p: p.__setitem__("chip", "esp8266"), "chip")
    _expect(lambda p: p["image"].__setitem__("offset", 0), "image.offset")
    _expect(lambda p: p["flash"]["partitions"].__setitem__("vfs", [0x300000, 0x200000]), "flash.partitions.vfs")
    _expect(lambda p: p["flash"]["partitions"].__setitem__("app", [0x10000, 0x1F1000]), "flash.partitions.vfs")
    _expect(lambda p: p["radio"].__setitem__("band_mhz", [900, 860]), "radio.band_mhz")
    _expect(lambda p: p["usb"][0].__setitem__("vid", "10c4"), "usb[0].vid")
    _expect(lambda p: p.__setitem__("colour", "red"), "colour")
    _expect(lambda p: p.pop("name"), "name")


def test_sx1262_needs_busy_pin():
    p = _load("heltec-wifi-lora32-v3.json")
    p["radio"]["pins"].pop("busy")
    msg = str(raises(profile.ProfileError, profile.validate, p))
    if "radio.pins.busy" not in msg:
        raise AssertionError(msg)


def test_s3_allows_high_gpio_numbers():
    p = _load("heltec-wifi-lora32-v3.json")
    p["led"]["pin"] = 47
    profile.validate(p)
    eq(profile.vfs_span(p), (0x200000, 0x600000))


def test_unload_lets_the_schema_go():
    import sys

    import spot
    from spot import unload

    eq("spot.profile" in sys.modules and hasattr(spot, "profile"), True)  # imported at the top
    unload("spot.profile")
    eq(("spot.profile" in sys.modules, hasattr(spot, "profile")), (False, False))
    unload("spot.profile")  # unloading twice is harmless
    from spot import profile as again  # and it loads again when needed

    eq(callable(again.validate), True)
