"""loraspot: host tool for ESP32 + LoRa boards running the loraspot firmware."""

__version__ = "0.1.0"
