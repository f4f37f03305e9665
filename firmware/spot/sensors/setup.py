# Which sensors a node reads, from the `sensors` config value: "auto" (scan the I2C bus, add the
# board's GPS and battery when its profile has them) or a comma-separated list of name[@where]:
# bme280[@0x77], sht31[@0x45], aht20, ds18b20[@pin], gps, battery. Loaded once at boot.
from spot.sensors import SensorError

I2C_DEFAULT = {"bme280": 0x76, "sht31": 0x44, "aht20": 0x38}
_PROBE = ((0x76, "bme280"), (0x77, "bme280"), (0x44, "sht31"), (0x45, "sht31"), (0x38, "aht20"))


def parse(spec):
    """[(name, where or None)] of a sensors config value (checked by the config schema)."""
    out = []
    for item in spec.split(","):
        item = item.strip()
        if not item:
            continue
        name, _, where = item.partition("@")
        out.append((name, int(where, 0) if where else None))
    return out


def _make(board, clock, name, where, i2c):
    if name == "bme280":
        from spot.sensors.bme280 import BME280

        return BME280(i2c(), where or 0x76)
    if name == "sht31":
        from spot.sensors.sht31 import SHT31

        return SHT31(i2c(), where or 0x44)
    if name == "aht20":
        from spot.sensors.aht20 import AHT20

        return AHT20(i2c())
    if name == "ds18b20":
        from spot.sensors.ds18b20 import DS18B20

        return DS18B20(board.onewire(where))
    if name == "gps":
        from spot.sensors.gps import GPS

        return GPS(board.gps_uart(), clock)
    from spot.sensors.battery import Battery

    return Battery(board.battery_adc(), board.profile["battery"]["divider"])


def build(board, clock, spec):
    """(sensors, report): the sensor objects in config order and what setup found, for the
    `sensors` event: {"found": [...], "unknown": [I2C addresses nobody claimed], "errors": {...}}."""
    bus = []

    def i2c():
        if not bus:
            bus.append(board.i2c())
        return bus[0]

    report = {"found": [], "unknown": [], "errors": {}}
    if spec == "auto":
        wanted = []
        try:
            present = i2c().scan()
        except OSError as e:
            present = []
            report["errors"]["i2c"] = "bus error (errno %s): bus stuck or wiring fault" % (e.args[0] if e.args else "?")
        claimed = set()
        for addr, name in _PROBE:
            if addr in present and not any(n == name for n, _ in wanted):
                wanted.append((name, addr))
                claimed.add(addr)
        report["unknown"] = [a for a in present if a not in claimed and a not in board.reserved_i2c()]
        if board.profile.get("gps"):
            wanted.append(("gps", None))
        if board.profile.get("battery"):
            wanted.append(("battery", None))
    else:
        wanted = parse(spec)
    sensors = []
    for name, where in wanted:
        try:
            sensors.append(_make(board, clock, name, where, i2c))
            label = "%s@%d" if name == "ds18b20" else "%s@0x%02x"
            report["found"].append(name if where is None else label % (name, where))
        except (SensorError, OSError, ValueError, KeyError) as e:
            report["errors"][name] = str(e) or type(e).__name__
    return sensors, report
