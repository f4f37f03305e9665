"""Host twin of the firmware's LoRaWAN codec (CPython, `cryptography`)."""
