# The factory self-test (console command "selftest"): radio identity and register read-back, the
# noise floor on the board's channel (receive only: nothing is sent, as an antenna may be missing),
# I2C scan against what the profile and config expect, one reading of each sensor against
# plausible ranges, a filesystem write and read-back, free heap, battery voltage, GPS sentences.
# A board running a role is restarted once into a test boot first (spot.app.App.selftest), where
# the role does not start and so holds neither the radio nor the sensors; the host restarts it again.
import gc
import os

NOISE_MAX_DBM = -90  # a quiet channel reads about -110..-125 dBm; above this: interference or a fault
HEAP_MIN = 8192  # free heap the test boot must have at least (the console's own reserve and more)
BATTERY_ABSENT_V = 1.0  # below: no cell fitted (USB powered), not a fault
BATTERY_LOW_V = 3.3  # a Li-ion cell this low is nearly empty
GPS_WAIT_MS = 3000
# plausible ranges of each reading, by sensor
RANGES = {
    "bme280": (("temperature", -40, 85), ("humidity", 0, 100), ("pressure", 300, 1100)),
    "sht31": (("temperature", -40, 125), ("humidity", 0, 100)),
    "aht20": (("temperature", -40, 85), ("humidity", 0, 100)),
    "ds18b20": (("temperature", -55, 125),),
}
READBACK = {"sx1276": 0x21, "sx1261": 0x06C0, "sx1262": 0x06C0}  # preamble LSB / GFSK sync word 0


def _check(out, name, ok, detail, value=None):
    c = {"name": name, "ok": bool(ok), "detail": detail}
    if value is not None:
        c["value"] = value
    out.append(c)


def _err(e):
    return str(e) or type(e).__name__


class SelfTest:
    scratch = "/selftest.tmp"  # the filesystem check's file (removed again)

    def __init__(self, app):
        self.app = app

    async def run(self, args):
        app = self.app
        out = []
        await self._radio(out)
        await self._sensors(out)
        self._fs(out)
        gc.collect()
        free = gc.mem_free()
        _check(out, "heap", free >= HEAP_MIN, "%d bytes free (at least %d)" % (free, HEAP_MIN), free)
        gc.collect()
        return {"ok": all(c["ok"] for c in out), "checks": out, "test_boot": app.test_boot}

    def _channel(self):
        cfg = self.app.config
        if cfg.get("role") == "hotspot" or cfg.get("region") == "SINGLE":
            return cfg.get("single_freq")
        from spot.lorawan import region

        return region.get(cfg.get("region")).channels[0][0]

    async def _radio(self, out):
        app = self.app
        chip = app.board.profile["radio"]["chip"]
        try:
            radio = app.board.radio(app.clock)  # resets the chip and checks its identity
        except Exception as e:  # RadioError, or OSError from the SPI bus
            _check(out, "radio", False, _err(e))
            return
        try:
            detail = chip
            if chip == "sx1276":
                detail = "SX1276 (RegVersion 0x%02x)" % radio.read(0x42)
            reg = READBACK.get(chip)
            if reg is not None:
                rd = radio.read if chip == "sx1276" else radio.read_register
                wr = radio.write if chip == "sx1276" else radio.write_register
                old = rd(reg)
                back = []
                for v in (0x55, 0xAA):
                    wr(reg, v)
                    back.append(rd(reg))
                wr(reg, old)
                if back != [0x55, 0xAA]:
                    _check(out, "radio", False, "%s: register 0x%02x read back 0x%02x 0x%02x, wrote 0x55 0xaa"
                           % (detail, reg, back[0], back[1]))
                    return
                detail += ", register read-back ok"
            _check(out, "radio", True, detail, chip)
        except Exception as e:
            _check(out, "radio", False, _err(e))
            radio = None
        try:
            if radio is not None:
                freq = self._channel()
                radio.configure(freq=freq, sf=7, bw=125000)
                floor = await radio.channel_rssi(5000)
                _check(out, "noise_floor", floor <= NOISE_MAX_DBM, "%d dBm at %.1f MHz (limit %d dBm)"
                       % (floor, freq / 1e6, NOISE_MAX_DBM), floor)
        except Exception as e:
            _check(out, "noise_floor", False, _err(e))
        finally:
            try:
                if radio is not None:
                    radio.sleep()
                    if hasattr(radio, "close"):
                        radio.close()
            except Exception:
                pass

    def _i2c(self, out, spec):
        """The scan against the profile's own parts and the configured I2C sensors."""
        from spot.sensors.setup import I2C_DEFAULT, parse

        board = self.app.board
        if not board.profile.get("i2c"):
            return
        expect = list(board.reserved_i2c())
        oled = board.profile.get("oled")
        if oled and not self.app.config.get("display") and oled["addr"] in expect:
            # the display answers only while it is powered, and it is powered (its Vext rail on the
            # Heltec boards) only when the firmware draws on it
            expect.remove(oled["addr"])
        if spec != "auto":
            expect += [where or I2C_DEFAULT[name] for name, where in parse(spec) if name in I2C_DEFAULT]
        try:
            found = board.i2c().scan()
        except OSError as e:  # each configured sensor is still tried (and fails on its own)
            errno = e.args[0] if e.args else "?"
            _check(out, "i2c", False, "bus error (errno %s): bus stuck or wiring fault" % errno)
            return
        missing = [a for a in expect if a not in found]
        listed = " ".join("0x%02x" % a for a in found) or "nothing"
        if missing:
            _check(out, "i2c", False, "found %s; missing %s" % (listed, " ".join("0x%02x" % a for a in missing)))
        else:
            _check(out, "i2c", True, "found " + listed)

    async def _sensors(self, out):
        """The sensors as the node would set them up (spot.sensors.setup), each read once; the
        battery and GPS of a profile that has them even when the config leaves them out."""
        from spot.sensors import setup

        app = self.app
        prof = app.board.profile
        spec = app.config.get("sensors")
        self._i2c(out, spec)
        sensors, report = setup.build(app.board, app.clock, spec)
        for name, why in report["errors"].items():
            if name != "i2c":  # the scan's own error is the i2c check
                _check(out, name, False, why)
        by_name = {s.NAME: s for s in sensors}
        for s in sensors:
            if s.NAME in ("gps", "battery"):
                continue
            try:
                values = await s.read()
                if not isinstance(values, tuple):
                    values = (values,)
            except Exception as e:
                _check(out, s.NAME, False, _err(e))
                continue
            bad = []
            shown = []
            for (field, lo, hi), v in zip(RANGES.get(s.NAME, ()), values):
                shown.append("%s %.1f" % (field, v))
                if not lo <= v <= hi:
                    bad.append("%s %.1f outside %d..%d" % (field, v, lo, hi))
            _check(out, s.NAME, not bad, ", ".join(bad or shown))
        if prof.get("battery") and "battery" not in report["errors"]:
            try:
                battery = by_name.get("battery")
                if battery is None:
                    from spot.sensors.battery import Battery

                    battery = Battery(app.board.battery_adc(), prof["battery"]["divider"])
                volts = (await battery.read())[0]
                if volts < BATTERY_ABSENT_V:
                    _check(out, "battery", True, "no cell (%.2f V): powered over USB" % volts, volts)
                else:
                    _check(out, "battery", volts >= BATTERY_LOW_V, "%.2f V%s" % (
                        volts, " (low: below %.1f V)" % BATTERY_LOW_V if volts < BATTERY_LOW_V else ""), volts)
            except Exception as e:
                _check(out, "battery", False, _err(e))
        if prof.get("gps") and "gps" not in report["errors"]:
            try:
                gps = by_name.get("gps")
                if gps is None:
                    from spot.sensors.gps import GPS

                    gps = GPS(app.board.gps_uart(), app.clock)
                try:
                    await gps.read(GPS_WAIT_MS)
                    _check(out, "gps", True, "%d NMEA sentences, position fix" % gps.nmea.sentences)
                except Exception as e:
                    n = gps.nmea.sentences
                    _check(out, "gps", n > 0, "%d NMEA sentences, no fix yet" % n if n else _err(e))
            except Exception as e:
                _check(out, "gps", False, _err(e))

    def _fs(self, out):
        path = self.scratch
        data = os.urandom(256)
        try:
            with open(path, "wb") as f:
                f.write(data)
            with open(path, "rb") as f:
                ok = f.read() == data
            os.remove(path)
            _check(out, "filesystem", ok, "256 bytes written and read back" if ok else "read back differs")
        except OSError as e:
            _check(out, "filesystem", False, "write/read-back failed: %s" % _err(e))
