"""`loraspot listen`: a Semtech UDP (and MQTT) server for checking hotspots without a network server."""
