# Config keys of the hotspot role, apart from spot/schema.py so that a node changing its own
# settings does not load them (validated by spot.schema.check with this table).
SCHEMA = {
    # hotspot role: it listens on single_freq / single_sf; region bounds its downlink frequencies
    "backhaul": ("enum", "udp", ("udp", "mqtt")),
    "server": ("str", "127.0.0.1", 64),  # Semtech UDP network server (host name or address)
    "server_port": ("int", 1700, (1, 65535)),
    "fallback": ("str", "", 64),  # used while the primary does not answer (empty: none)
    "fallback_port": ("int", 1700, (1, 65535)),
    "keepalive": ("int", 10, (1, 300)),  # PULL_DATA interval, s
    "gw_stat_interval": ("int", 30, (5, 3600)),  # Semtech stat interval, s
    "mqtt_host": ("str", "127.0.0.1", 64),
    "mqtt_port": ("int", 1883, (1, 65535)),
    "mqtt_prefix": ("str", "eu868", 32),  # ChirpStack Gateway Bridge topic prefix
    "mqtt_user": ("str", "", 32),  # its password is the secret mqtt_password
    "mqtt_tls": ("bool", False, None),
    "forward_crc_errors": ("bool", False, None),  # forward CRC-failed packets with stat -1
    "queue_size": ("int", 16, (1, 48)),  # uplinks held while the backhaul is down (~320 B each)
    "queue_max_age": ("int", 3600, (10, 86400)),  # s; older ones are dropped (and counted)
    "packet_events": ("bool", True, None),  # a console event per received packet and downlink
    "position": ("pos", "", None),  # "lat,lon,alt" for the stat object, empty when unknown
    "wifi_ssid": ("str", "", 32),  # its password is the secret wifi_password
    "ota_port": ("int", 0, (0, 65535)),  # TCP port of updates over the air (spot.ota); 0: off
    "http_port": ("int", 0, (0, 65535)),  # TCP port of the status page (spot.hotspot.status); 0: off
    # signed receipts of the frames heard (spot.hotspot.chain, docs/proofs.md): a batch closed every
    # receipts_interval s (0: off), sent to the ledger service at ledger_server (empty: kept on the board)
    "receipts_interval": ("int", 0, (0, 86400)),
    "ledger_server": ("str", "", 64),
    "ledger_server_port": ("int", 8780, (1, 65535)),
    # a signed beacon every beacon_interval s (0: off; needs receipts), witnessed by the hotspots on
    # the same channel (docs/proofs.md)
    "beacon_interval": ("int", 0, (0, 86400)),
}
