# Present only on the virtual board: parameters the board-support code reads (set by vboot).
SPEED = 1
START_US = None
START_MS = None
MEDIUM = None  # (host, port) of the RF medium
POSITION = (0.0, 0.0, 0.0)
RADIO_ID = None


class HostNetwork:
    """The virtual board's network interface (spot.board.Board.network): the host's network,
    always connected, with the host's clock already set by NTP. Shaped as network.WLAN."""

    KIND = "host"

    def isconnected(self):
        return True

    def ifconfig(self):
        return ("127.0.0.1", "255.0.0.0", "127.0.0.1", "127.0.0.1")

    def connect(self, ssid=None, password=None):
        pass

    def disconnect(self):
        pass

    def settime(self):
        """The host's clock is NTP-synced already: nothing to set."""
