# The ESP32's NVS as the device secrets store (board.py picks it on real boards).


class NvsSecrets:
    """Secrets in the ESP32's NVS partition (namespace "loraspot"), outside the filesystem that
    file transfers reach; the same methods as spot.config.Secrets."""

    _NAMES = "_names"

    def __init__(self, nvs=None):
        if nvs is None:
            import esp32

            nvs = esp32.NVS("loraspot")
        self._nvs = nvs

    def _read(self, name, size):
        buf = bytearray(size)
        try:
            n = self._nvs.get_blob(name, buf)
        except OSError:
            return None
        return bytes(buf[:n])

    def names(self):
        raw = self._read(self._NAMES, 256)
        return sorted(raw.decode().split(",")) if raw else []

    def has(self, name):
        return name in self.names()

    def get(self, name):
        return self._read(name, 64)

    def put(self, name, value):
        names = self.names()
        self._nvs.set_blob(name, bytes(value))
        if name not in names:
            names.append(name)
            self._nvs.set_blob(self._NAMES, ",".join(sorted(names)).encode())
        self._nvs.commit()

    def clear(self):
        for name in self.names():
            try:
                self._nvs.erase_key(name)
            except OSError:
                pass
        try:
            self._nvs.erase_key(self._NAMES)
        except OSError:
            pass
        self._nvs.commit()
