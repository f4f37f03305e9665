# LoRaWAN 1.0.3 Class A end device (stack.py and the modules it uses).


class JoinFailed(Exception):
    """A join cannot even be attempted (no AppKey stored, ...)."""


class ChannelBusy(Exception):
    """Listen before talk found the channel busy on every try: the uplink waits for a later cycle."""
