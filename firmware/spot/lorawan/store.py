# LoRaWAN state that must survive reboots and power cuts: FCntUp, FCntDown, DevNonce and the
# session's DevAddr (the session keys live in the secrets store). A counter is reserved on flash
# before it is used (LoRa Alliance TR007), in blocks of BLOCK so flash is written once per BLOCK
# uplinks, not per uplink: after a power cut the device resumes at the reservation, skipping at
# most BLOCK-1 values and never repeating one. DevNonce is written before every Join-Request.
from spot.atomic import AtomicJson

BLOCK = 16
PATH = "/lorawan.json"


class Counters:
    def __init__(self, path=PATH, block=BLOCK):
        self._file = AtomicJson(path)
        self.block = block
        self.writes = 0
        self.devaddr = None  # hex, wire order
        self.fcnt_up = 0
        self.up_reserved = 0
        self.fcnt_down = -1  # last accepted
        self.devnonce = 0  # the next one to use

    def load(self):
        self._file.cleanup()
        obj = self._file.load()[0] or {}
        self.devaddr = obj.get("devaddr")
        self.up_reserved = obj.get("up", 0)
        self.fcnt_up = self.up_reserved  # skip what the last run may have used
        self.fcnt_down = obj.get("down", -1)
        self.devnonce = obj.get("devnonce", 0)
        return self

    def _save(self):
        self._file.save({"devaddr": self.devaddr, "up": self.up_reserved, "down": self.fcnt_down,
                         "devnonce": self.devnonce})
        self.writes += 1

    def next_fcnt_up(self):
        """The counter for the next uplink, reserved on flash first when the block is used up."""
        if self.fcnt_up >= self.up_reserved:
            reserve = self.fcnt_up + self.block
            old = self.up_reserved
            self.up_reserved = reserve
            try:
                self._save()
            except OSError:
                self.up_reserved = old
                raise
        n = self.fcnt_up
        self.fcnt_up += 1
        return n

    def next_devnonce(self):
        """DevNonce for the next Join-Request: never repeats (LoRaWAN 1.0.4 counter), stored first."""
        if self.devnonce > 0xFFFF:
            raise ValueError("DevNonce space exhausted: this device needs new join credentials")
        n = self.devnonce
        self.devnonce = n + 1
        try:
            self._save()
        except OSError:
            self.devnonce = n
            raise
        return n

    def accept_down(self, fcnt):
        self.fcnt_down = fcnt
        self._save()

    def new_session(self, devaddr_hex):
        """After a join (or for ABP): counters restart with the new session."""
        self.devaddr = devaddr_hex
        self.fcnt_up = 0
        self.up_reserved = 0
        self.fcnt_down = -1
        self._save()
