# Hotspot start-up, loaded once (the App's hotspot task): the radio on the configured channel, the
# backhaul from config, the network (Wi-Fi and NTP on a board; the host's network and clock on the
# virtual board), the watchdog, then the tasks that run for good.
import asyncio

from spot import unload
from spot.hotspot.core import Hotspot

# sub-bands where a gateway may transmit with more power than the region's default (EIRP, dBm), as
# ChirpStack's lrwn region tables give it (eu868.rs: get_downlink_tx_power_eirp)
_EIRP = {"EU868": ((869400000, 869650000, 29),)}


def channel_band(config, radio):
    """((low, high) Hz downlinks may use: the region's band within the board's radio band, and the
    region's limits on transmissions: duty cycle, dwell time, EIRP)."""
    import gc

    from spot.lorawan import region

    name = config.get("region")
    r = region.get(name, config.get("sub_band"), freq=config.get("single_freq"), sf=config.get("single_sf"),
                   base=config.get("single_region"))
    band = (max(r.band[0], radio.band[0]), min(r.band[1], radio.band[1]))
    # the downlink dwell time applies in AS923 (400 ms); US915 downlinks (500 kHz) are not limited
    limits = (r.duty, _EIRP.get(r.name, ()), r.max_eirp, r.dwell_ms if r.name.startswith("AS923") else 0)
    r = None
    unload("spot.lorawan.region")
    gc.collect()  # the region's code gone before the long-lived queue is placed
    return band, limits


def position(text):
    if not text:
        return None
    lat, lon, alt = (float(x) for x in text.split(","))
    return lat, lon, alt


def build(app):
    """Radio, hotspot and backhaul objects; called before the console starts, so that their
    buffers are allocated while the heap is not yet fragmented."""
    board, config, clock, console = app.board, app.config, app.clock, app.console
    backhaul = config.get("backhaul")
    # the modules first, then the objects with their buffers
    if backhaul == "mqtt":
        from spot.hotspot import mqtt  # noqa: F401
    else:
        from spot.hotspot import udp  # noqa: F401
    import gc

    gc.collect()
    # Collect after every 4 KB allocated: garbage is freed before new long-lived objects are
    # placed behind it, which keeps the heap in larger pieces (a 112 KB heap fragments otherwise).
    gc.threshold(4096)
    radio = board.radio(clock)
    band, limits = channel_band(config, radio)
    hs = Hotspot(radio, clock, console, config.get("single_freq"), config.get("single_sf"),
                 band, limits=limits, queue_size=config.get("queue_size"),
                 max_age_s=config.get("queue_max_age"), forward_crc=config.get("forward_crc_errors"),
                 packet_events=config.get("packet_events"))
    hs.position = position(config.get("position"))
    from spot.hotspot.semtech import gateway_eui

    eui = gateway_eui(board.device_id())
    if backhaul == "mqtt":
        from spot.hotspot.mqtt import ChirpStackMqtt

        link = ChirpStackMqtt(hs, eui, config.get("mqtt_host"), config.get("mqtt_port"),
                              prefix=config.get("mqtt_prefix"), user=config.get("mqtt_user"),
                              password=app.secrets.get("mqtt_password"), tls=config.get("mqtt_tls"),
                              stat_s=config.get("gw_stat_interval"))
    else:
        from spot.hotspot.udp import SemtechUdp

        servers = [(config.get("server"), config.get("server_port"))]
        if config.get("fallback"):
            servers.append((config.get("fallback"), config.get("fallback_port")))
        link = SemtechUdp(hs, eui, servers, config.get("keepalive"), config.get("gw_stat_interval"))
    app.role_stats = hs.stats_data
    app.hotspot = hs
    return hs, link, eui


async def start(app, parts):
    from binascii import hexlify

    from spot.hotspot import net

    hs, link, eui = parts
    console = app.console
    console.event("hotspot", {"gateway_eui": hexlify(eui).decode().upper(), "freq": hs.freq, "sf": hs.sf,
                              "backhaul": app.config.get("backhaul"), "band": list(hs.band)})
    network = net.link(app, hs)
    app.network = network
    hs.listen()
    for coro in link.tasks():
        asyncio.create_task(coro)
    asyncio.create_task(hs.rx_loop())
    asyncio.create_task(hs.tx_loop())
    asyncio.create_task(net.watch(app, hs, network, link))
    if app.config.get("receipts_interval"):  # loaded by a string: none of its names in a hotspot without it
        try:
            __import__("spot.hotspot.chain", None, None, ("start",)).start(app, hs, eui)
        except MemoryError:  # a heap the host did not offer receipts on (loraspot.budget): forwarding goes on
            console.event("log", {"level": "error", "msg": "receipts off: out of memory"})
