# Config: schema validation with clear errors, atomic writes, fallback copy, and a power-cut
# walk over every flash operation of a write (littlefs on a RAM flash that loses power).
import json
import os

from fwtest import close_flashes, eq, fresh_flash, mount, raises
from spot.config import AtomicJson, Config, ConfigError, Secrets
from spot.schema import check


def _fresh():
    return fresh_flash("/t")


def test_defaults_when_nothing_stored():
    _fresh()
    c = Config("/t/config.json").load()
    eq(c.get("role"), "idle")
    eq(c.origin, None)


def test_invalid_values_refused_with_key_and_rule_and_nothing_changes():
    _fresh()
    c = Config("/t/config.json").load()
    c.set({"stats_interval": 30})
    for key, bad in (("stats_interval", 1), ("stats_interval", "30"), ("stats_interval", True),
                     ("role", "gateway"), ("name", "x" * 33), ("name", "a\x03b"), ("console_events", 1)):
        e = raises(ConfigError, c.set, {"name": "ok", key: bad})
        eq(e.code, "invalid")
        if key not in str(e):
            raise AssertionError("message does not name %s: %s" % (key, e))
    e = raises(ConfigError, c.set, {"nope": 1})
    eq(e.code, "unknown_key")
    eq(Config("/t/config.json").load().values()["stats_interval"], 30)
    eq(Config("/t/config.json").load().get("name"), "")


def test_write_keeps_fallback_and_loads_it_when_main_is_damaged():
    _fresh()
    c = Config("/t/config.json").load()
    c.set({"name": "first"})
    c.set({"name": "second"})
    with open("/t/config.json", "w") as f:
        f.write('{"name": "sec')  # damaged main file
    d = Config("/t/config.json").load()
    eq(d.get("name"), "first")
    eq(d.origin, "backup")


def test_stored_invalid_value_falls_back_to_default_with_warning():
    _fresh()
    with open("/t/config.json", "w") as f:
        json.dump({"stats_interval": -4, "name": "n", "retired_key": 1}, f)
    c = Config("/t/config.json").load()
    eq(c.get("stats_interval"), 60)
    eq(c.get("name"), "n")
    eq(len(c.warnings), 1)


def test_power_cut_at_every_flash_operation_keeps_old_or_new():
    flash = _fresh()
    Config("/t/config.json").load().set({"name": "old", "stats_interval": 100})
    base = flash.snapshot()
    k = 1
    outcomes = {}
    while True:
        base.copy_to(flash)
        flash.dead = False
        mount(flash, "/t")
        flash.ops = 0
        flash.cut_after = k
        c = Config("/t/config.json").load()
        try:
            c.set({"name": "new", "stats_interval": 200})
        except OSError:
            pass  # littlefs may notice that the flash stopped taking writes
        cut = flash.dead
        flash.dead = False
        mount(flash, "/t")  # power back: mount what the flash holds
        got = Config("/t/config.json").load().values()
        pair = (got["name"], got["stats_interval"])
        if pair not in (("old", 100), ("new", 200)):
            raise AssertionError("after cut at op %d: %r" % (k, pair))
        outcomes[pair] = outcomes.get(pair, 0) + 1
        if not cut:
            break
        k += 1
    base.close()
    _fresh()
    if k < 3 or ("old", 100) not in outcomes or ("new", 200) not in outcomes:
        raise AssertionError("walk too short: %d ops, %r" % (k, outcomes))


def test_temp_file_of_interrupted_write_is_removed_on_load():
    _fresh()
    with open("/t/config.json.tmp", "w") as f:
        f.write("{")
    Config("/t/config.json").load()
    raises(OSError, os.stat, "/t/config.json.tmp")


def test_check_accepts_valid_values():
    eq(check("role", "hotspot"), "hotspot")
    eq(check("stats_interval", 5), 5)


def test_hotspot_keys_checked_from_their_own_table():
    fresh_flash("/h")
    c = Config("/h/config.json").load()
    eq((c.get("backhaul"), c.get("server_port"), c.get("queue_size"), c.get("position")), ("udp", 1700, 16, ""))
    c.set({"server": "ns.example.org", "position": "52.52,13.405,34", "uplink_interval": 60})
    eq(Config("/h/config.json").load().get("server"), "ns.example.org")
    for key, bad in (("queue_size", 49), ("position", "91,0,0"), ("position", "1,2"), ("backhaul", "tcp"),
                     ("keepalive", 0)):
        e = raises(ConfigError, c.set, {key: bad, "server": "changed"})
        eq(key in str(e), True)
    eq(c.get("server"), "ns.example.org")  # nothing of a refused change is kept
    eq(Config("/h/config.json").load().get("server"), "ns.example.org")
    close_flashes("/h")


def test_node_keys_hex_and_sensor_list():
    eq(check("dev_eui", "70b3d57ed000beef"), "70B3D57ED000BEEF")
    eq(check("dev_eui", ""), "")
    for bad in ("70B3D57ED000BEE", "70B3D57ED000BEEG", 7):
        eq(raises(ConfigError, check, "dev_eui", bad).code, "invalid")
    eq(check("sensors", "auto"), "auto")
    eq(check("sensors", "bme280@0x77, gps,ds18b20@25,battery"), "bme280@0x77, gps,ds18b20@25,battery")
    e = raises(ConfigError, check, "sensors", "bme280,co2")
    eq("'co2'" in str(e), True)
    eq("@ is not a number" in str(raises(ConfigError, check, "sensors", "bme280@x")), True)
    eq(raises(ConfigError, check, "uplink_interval", 4).code, "invalid")
    eq(raises(ConfigError, check, "sleep", "light").code, "invalid")


def test_secrets_stored_apart_and_hex_encoded():
    _fresh()
    s = Secrets("/t/secrets.json")
    s.put("app_key", b"\x00\x01\xfe")
    eq(Secrets("/t/secrets.json").get("app_key"), b"\x00\x01\xfe")
    eq(s.names(), ["app_key"])
    raises(OSError, os.stat, "/t/config.json")
    s.clear()
    eq(Secrets("/t/secrets.json").has("app_key"), False)


def test_atomic_json_load_missing():
    _fresh()
    eq(AtomicJson("/t/none.json").load(), (None, None))


def teardown_module():
    close_flashes("/t")
