# The radio layer: one interface (spot.radio.base.Radio) with drivers for SX127x (sx127x.py),
# SX126x (sx126x.py) and the simulator's RF medium (virtual.py). Pick one with open_radio().


class RadioError(Exception):
    """The radio cannot do what was asked: wrong chip, no answer on SPI, bad settings."""


class RadioTimeout(RadioError):
    """The radio did not signal completion in time (its IRQ never came)."""


# A radio that is out (absent, silent on SPI, timing out) is opened again after RETRY_MS, the wait
# doubling up to RETRY_MAX_MS: the node's and the hotspot's rule.
RETRY_MS = 5000
RETRY_MAX_MS = 300000

PUBLIC_SYNC = 0x34  # LoRaWAN public networks (SX126x registers: 0x3444)
PRIVATE_SYNC = 0x12  # (SX126x: 0x1424)

# bandwidth in Hz -> register code, per chip family
BW_SX127X = {7800: 0, 10400: 1, 15600: 2, 20800: 3, 31250: 4, 41700: 5, 62500: 6, 125000: 7, 250000: 8, 500000: 9}
BW_SX126X = {7800: 0x00, 10400: 0x08, 15600: 0x01, 20800: 0x09, 31250: 0x02, 41700: 0x0A, 62500: 0x03,
             125000: 0x04, 250000: 0x05, 500000: 0x06}


def open_radio(board, clock, spi=None, pins=None):
    """The driver for board's radio chip. Real chips take an SPI bus and a dict of Pin objects
    (nss, reset, dio0/dio1/busy ...) built by spot.board; the virtual one talks UDP."""
    chip = board.profile["radio"]["chip"]
    if chip == "sx1276":
        from spot.radio.sx127x import SX127x

        return SX127x(spi, pins, clock, board.profile["radio"])
    if chip in ("sx1261", "sx1262"):
        from spot.radio.sx126x import SX126x

        return SX126x(spi, pins, clock, board.profile["radio"])
    from spot.radio.virtual import VirtualRadio

    return VirtualRadio(clock, board.profile["radio"])
