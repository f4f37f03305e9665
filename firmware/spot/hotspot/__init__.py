# The hotspot role: a single-channel LoRaWAN gateway forwarding to a network server.
