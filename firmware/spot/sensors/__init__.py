# Sensor drivers. Each takes its bus (machine.I2C, UART, OneWire, ADC) as an argument and raises
# SensorError with a code the node reports in an event: "absent" (nothing answers at the address),
# "crc" (a checksum failed), "bus" (the bus is stuck or errored), "id" (something else answers),
# "range" (a reading outside what the part can measure).


class SensorError(Exception):
    def __init__(self, code, msg):
        super().__init__(msg)
        self.code = code


def bus_error(name, addr, e):
    """SensorError from an OSError of the I2C bus: ENODEV/EIO (no ACK) is an absent sensor."""
    errno = e.args[0] if e.args else 0
    if errno in (19, 5):  # ENODEV, EIO: no acknowledge
        return SensorError("absent", "%s: no answer at I2C address 0x%02x" % (name, addr))
    return SensorError("bus", "%s at 0x%02x: I2C bus error (errno %d): bus stuck or wiring fault" % (name, addr, errno))


def crc8(data, poly, init):
    """CRC-8, MSB first, no reflection (Sensirion: poly 0x31 init 0xFF; AHT20 the same)."""
    crc = init
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = ((crc << 1) ^ poly) & 0xFF if crc & 0x80 else (crc << 1) & 0xFF
    return crc
