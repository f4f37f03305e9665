"""What the network-server side of `loraspot listen` knows of a gateway, and the interface its
backhaul sides (Semtech UDP in listen/server.py, MQTT in listen/mqtt.py) use to tell the server
what arrived. The hotspot firmware has the mirror image (spot/hotspot/core.py: link, sent,
acked, downlink_in...)."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Protocol

KEEP_FRAMES = 1000  # the newest frames and messages kept for a look; the counters say the rest
KEEP_ERRORS = 200
# gateways known at once; beyond it the one heard from longest ago is forgotten (and counted): a
# stream of made-up gateway EUIs must not grow the server without end
KEEP_GATEWAYS = 1000


@dataclass
class Gateway:
    eui: str
    transport: str = "udp"  # or "mqtt"
    pull_addr: tuple | None = None  # where PULL_RESP go (the PULL_DATA source)
    push_addr: tuple | None = None
    pushes: int = 0
    pulls: int = 0
    rxpk: int = 0
    last_stat: dict | None = None
    tx_acks: dict = field(default_factory=dict)  # error -> count
    conn: str | None = None  # ONLINE / OFFLINE, as an MQTT gateway's state/conn last said


class Network(Protocol):
    """The server as a backhaul side sees it."""

    lock: threading.Lock
    power: int

    def datagram(self) -> None: ...

    def guarded(self, fn, *args) -> None: ...

    def malformed(self, what: str) -> None: ...

    def gateway(self, eui: str, transport: str = "udp") -> Gateway: ...

    def heard(self, gw: Gateway, phy: bytes, p: dict) -> None: ...

    def downlink_sent(self) -> None: ...

    def rx1(self, rxpk: dict) -> tuple[int, str]: ...

    def rx2(self) -> tuple[int, str]: ...
