# Present only on the virtual board: parameters the board-support code reads (set by vboot).
SPEED = 1
START_US = None
START_MS = None
MEDIUM = None  # (host, port) of the RF medium
POSITION = (0.0, 0.0, 0.0)
RADIO_ID = None
RADIO_SPARE = None  # vboot: [a block lent to the heap when the virtual radio's recv finds no room]


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


WIFI = None  # {ssid: passphrase} of the networks in reach (loraspot sim --wifi), or None: the host's network
HTTP_PORT = 0  # the loopback port this board's web server listens on (80 on a board)


def network(ssid):
    """spot.board.Board.network on the virtual board: the host's network, or with networks in
    reach the station (sim/mp/_vwifi.py), None without one to join."""
    if WIFI is None:
        return HostNetwork()
    if not ssid:
        return None
    from _vwifi import VirtualWlan

    wlan = VirtualWlan()
    wlan.active(True)
    return wlan
