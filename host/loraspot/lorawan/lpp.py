"""Cayenne Low Power Payload decoder (the host twin of firmware/spot/lpp.py).

Each value is one byte of channel, one byte of type and the type's data, big-endian, with the
resolutions of the Cayenne LPP documentation (myDevices)."""

from __future__ import annotations

from dataclasses import dataclass

from loraspot.errors import LoraspotError


class LppError(LoraspotError, ValueError):
    exit_code = 2


@dataclass(frozen=True)
class LppType:
    id: int
    name: str
    size: int  # data bytes
    signed: bool
    scale: float  # raw / scale = value
    unit: str
    axes: int = 1  # values per item (accelerometer and gyrometer: 3)


TYPES = {
    t.id: t
    for t in (
        LppType(0, "digital_in", 1, False, 1, ""),
        LppType(1, "digital_out", 1, False, 1, ""),
        LppType(2, "analog_in", 2, True, 100, ""),
        LppType(3, "analog_out", 2, True, 100, ""),
        LppType(101, "illuminance", 2, False, 1, "lux"),
        LppType(102, "presence", 1, False, 1, ""),
        LppType(103, "temperature", 2, True, 10, "°C"),
        LppType(104, "humidity", 1, False, 2, "%RH"),
        LppType(113, "accelerometer", 6, True, 1000, "G", axes=3),
        LppType(115, "barometer", 2, False, 10, "hPa"),
        LppType(134, "gyrometer", 6, True, 100, "°/s", axes=3),
        LppType(136, "gps", 9, True, 1, ""),
    )
}


def _int(data: bytes, signed: bool) -> int:
    return int.from_bytes(data, "big", signed=signed)


def decode(payload: bytes) -> list[dict]:
    """Every value in the payload: [{channel, type, name, value, unit}]. A GPS value is
    {lat, lon, alt} (degrees, degrees, metres); accelerometer and gyrometer {x, y, z}.
    LppError for an unknown type or a value cut short (nothing is guessed)."""
    out: list[dict] = []
    pos = 0
    while pos < len(payload):
        if pos + 2 > len(payload):
            raise LppError(f"LPP: value header cut short at byte {pos}")
        channel, kind = payload[pos], payload[pos + 1]
        t = TYPES.get(kind)
        if t is None:
            raise LppError(f"LPP: unknown type {kind} on channel {channel} at byte {pos}")
        data = payload[pos + 2 : pos + 2 + t.size]
        if len(data) < t.size:
            raise LppError(f"LPP: {t.name} on channel {channel} needs {t.size} bytes, {len(data)} left")
        value: object
        if t.id == 136:
            value = {"lat": _int(data[0:3], True) / 10000, "lon": _int(data[3:6], True) / 10000,
                     "alt": _int(data[6:9], True) / 100}
        elif t.axes == 3:
            value = {axis: _int(data[2 * i : 2 * i + 2], True) / t.scale for i, axis in enumerate("xyz")}
        else:
            raw = _int(data, t.signed)
            value = raw if t.scale == 1 else raw / t.scale
        out.append({"channel": channel, "type": kind, "name": t.name, "value": value, "unit": t.unit})
        pos += 2 + t.size
    return out


def encode(items: list[tuple[int, int, object]]) -> bytes:
    """(channel, type, value) items to LPP bytes, for tests and tools (the device encodes its own)."""
    out = bytearray()
    for channel, kind, value in items:
        t = TYPES[kind]
        out += bytes((channel, kind))
        if t.id == 136:
            assert isinstance(value, dict)
            for v, scale in ((value["lat"], 10000), (value["lon"], 10000), (value["alt"], 100)):
                out += round(v * scale).to_bytes(3, "big", signed=True)
        elif t.axes == 3:
            assert isinstance(value, dict)
            for axis in "xyz":
                out += round(value[axis] * t.scale).to_bytes(2, "big", signed=True)
        else:
            assert isinstance(value, (int, float))
            out += round(value * t.scale).to_bytes(t.size, "big", signed=t.signed)
    return bytes(out)
