"""A simulated LoRaWAN world: the RF medium, virtual nodes (the node firmware with virtual sensors),
virtual hotspots (the hotspot firmware) and, unless the hotspots forward to an outside network
server, `loraspot listen`. Devices get fresh keys, kept in a temporary inventory or the one given
so other tools can read them. Used by `loraspot sim world` and `loraspot demo`."""

from __future__ import annotations

import secrets
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from loraspot import boards, device
from loraspot.errors import LoraspotError
from loraspot.listen.server import Listener
from loraspot.sim.medium import Medium
from loraspot.sim.vboard import BoardOptions, VirtualBoard, ensure_image

# the channel of each region's world (CN470 is left out: no board profile has a 470 MHz radio)
SINGLE = {"EU868": (868_100_000, 7), "US915": (903_900_000, 7), "AS923-1": (923_200_000, 7),
          "AS923-2": (921_400_000, 7), "AS923-3": (916_600_000, 7), "AS923-4": (917_300_000, 7)}


class WorldError(LoraspotError):
    exit_code = 2


@dataclass
class WorldOptions:
    nodes: int = 3
    hotspots: int = 1
    region: str = "EU868"
    speed: int = 1
    forward: str | None = None  # udp://HOST:PORT of a network server, or mqtt://HOST:PORT of a broker
    inventory: Path | str | None = None
    uplink_interval: int = 60
    confirm_every: int = 3
    listen_port: int = 0


@dataclass
class World:
    opts: WorldOptions
    on_event: Callable[[dict], None] = lambda _e: None
    devices: dict[str, bytes] = field(default_factory=dict)
    counts: dict = field(default_factory=lambda: {"joins": 0, "uplinks_sent": 0, "uplinks_received": 0,
                                                  "downlinks": 0, "drops": 0})

    def __post_init__(self) -> None:
        if self.opts.region not in SINGLE:
            raise WorldError(f"unknown region {self.opts.region!r} ({', '.join(SINGLE)})")
        if not 1 <= self.opts.nodes <= 32 or not 1 <= self.opts.hotspots <= 8:
            raise WorldError("1..32 nodes and 1..8 hotspots")
        self._tmp = tempfile.TemporaryDirectory(prefix="loraspot-world-")
        self.dir = Path(self._tmp.name)
        self.boards: list[VirtualBoard] = []
        self.clients: list[device.ConsoleClient] = []
        self.roles: list[str] = []
        self.medium: Medium | None = None
        self.listener: Listener | None = None
        self.settings: dict = {}  # what `loraspot hotspot region` prints for the world's channel
        self._lock = threading.Lock()
        self._stopping = False
        # what a long run watches (loraspot sim soak): boards that restarted after the world
        # started, and events the console lost (gaps in a board's event numbers)
        self.health = {"resets": 0, "events_lost": 0}
        self._seq: dict[str, int] = {}
        self._boot: dict[str, object] = {}  # board -> the boot id it was first seen with
        self.listeners: list[Callable[[str, str, device.Event], None]] = []  # (board, role, event)
        self.frame_listeners: list[Callable[[dict], None]] = []  # each frame listen handled
        self.on_air: Callable | None = None  # the RF medium's Frame, once its receivers are decided

    # ---- set-up ---------------------------------------------------------------------------------
    def _server(self) -> tuple[str, str, int]:
        """(backhaul, host, port) the hotspots forward to."""
        if self.opts.forward:
            scheme, _, rest = self.opts.forward.partition("://")
            host, _, port = rest.rpartition(":")
            if scheme not in ("udp", "mqtt") or not host or not port.isdigit():
                raise WorldError(f"--forward takes udp://HOST:PORT or mqtt://HOST:PORT, got {self.opts.forward!r}")
            return scheme, host, int(port)
        assert self.listener is not None
        return "udp", "127.0.0.1", self.listener.address[1]

    def _keys(self) -> None:
        for _ in range(self.opts.nodes):
            self.devices[f"70B3D57ED0{secrets.token_hex(3).upper()}"] = secrets.token_bytes(16)
        if self.opts.inventory is not None:
            from loraspot.provision.inventory import Inventory

            with Inventory(self.opts.inventory) as inv:
                for eui, key in self.devices.items():
                    inv.add_device(eui, name=f"sim-{eui[-6:]}", board="virtual")
                    inv.set_secret(eui, "app_key", key)

    def start(self) -> World:
        o = self.opts
        self._keys()
        freq, sf = SINGLE[o.region]
        from loraspot.listen.region import RegionExportError, export

        try:  # the settings `loraspot hotspot region` prints for this channel, as a user would take them
            self.settings = export("virtual", o.region, freq, sf)
        except RegionExportError as e:
            raise WorldError(str(e)) from None
        self.medium = Medium(speed=o.speed).__enter__()
        self.medium.on_frame = self.on_air
        if not o.forward:
            self.listener = Listener(self.devices, port=o.listen_port, dedup_ms=max(5.0, 200 / o.speed),
                                     on_frame=self._frame, region=o.region)
        backhaul, host, port = self._server()
        profile = boards.get("virtual")
        for i in range(o.hotspots):
            hs = self.settings["hotspot_config"]
            cfg = {"role": "hotspot", "region": hs["region"], "single_freq": hs["single_freq"],
                   "single_sf": hs["single_sf"], "sub_band": hs.get("sub_band", 2), "backhaul": backhaul,
                   "stats_interval": 30, "name": f"hotspot-{i + 1}"}
            if backhaul == "mqtt":
                cfg.update(mqtt_host=host, mqtt_port=port, mqtt_prefix=o.region.lower().replace("-", "_"))
            else:
                cfg.update(server=host, server_port=port)
            self._board(f"hotspot{i}", profile, cfg, None, (i * 500.0, 0, 0), {})
        for i, (eui, key) in enumerate(self.devices.items()):
            cfg = {"role": "node", "dev_eui": eui, **self.settings["node_config"],
                   "sensors": "bme280,battery", "uplink_interval": o.uplink_interval,
                   "confirm_every": o.confirm_every, "name": f"node-{i + 1}"}
            hw = {"seed": i + 1, "bme280": {}, "battery": {}}
            self._board(f"node{i}", profile, cfg, {"app_key": key}, (100.0 + 150 * i, 80.0 * (i % 3), 0), hw)
            time.sleep(0.5 / max(1, o.speed) * 10)  # start the nodes apart: their joins do not collide
        return self

    def _board(self, name: str, profile: dict, cfg: dict, secret: dict | None, pos: tuple, hw: dict) -> None:
        assert self.medium is not None
        flash = self.dir / f"{name}.bin"
        ensure_image(flash, profile, cfg, secret)
        vb = VirtualBoard(BoardOptions(flash=flash, speed=self.opts.speed, medium=self.medium.address,
                                       position=pos, hardware=hw, register=True, pty=False))
        info = vb.start()
        self.boards.append(vb)
        role = cfg["role"]
        client, hello = device.connect(info["url"], on_event=lambda ev: self._device_event(name, role, ev))
        with self._lock:
            self._boot.setdefault(name, hello.get("boot"))
        self.clients.append(client)
        self.roles.append(role)

    # ---- events ---------------------------------------------------------------------------------
    def _emit(self, ev: dict, count: str | None = None) -> None:
        """Report an event and count it in one step: once stopping began neither happens, so the
        summary always counts exactly the events that were reported."""
        with self._lock:
            if self._stopping:
                return
            if count:
                self.counts[count] += 1
            self.on_event(ev)

    def _device_event(self, name: str, role: str, ev: device.Event) -> None:
        d = ev.data
        with self._lock:
            last = self._seq.get(name)
            # a boot event of another boot than the board's first (on a busy machine the first
            # boot's own event can come after the console client was attached)
            if ev.kind == "boot" and d.get("boot") != self._boot.setdefault(name, d.get("boot")):
                self.health["resets"] += 1
            elif ev.seq >= 0 and last is not None and ev.seq > last + 1:
                self.health["events_lost"] += ev.seq - last - 1
            if ev.seq >= 0:
                self._seq[name] = ev.seq
        for fn in self.listeners:
            fn(name, role, ev)
        if role == "node" and ev.kind == "uplink" and "error" not in d:
            self._emit({"event": "uplink_sent", "device": name, **d}, "uplinks_sent")
        elif role == "node" and ev.kind == "join" and d.get("ok"):
            # joins are counted from the nodes themselves at the end (a node's join event can come
            # before the world's console client is attached, and be missed)
            self._emit({"event": "join", "device": name, **d})
        elif role == "node" and ev.kind == "downlink":
            self._emit({"event": "downlink", "device": name, **d}, "downlinks")
        elif role == "hotspot" and ev.kind in ("gwstat", "backhaul"):
            self._emit({"event": "stats" if ev.kind == "gwstat" else "backhaul", "device": name, **d})
        elif role == "hotspot" and ev.kind == "stats":
            dropped = d.get("dropped") or {}
            self.counts["drops"] = max(self.counts["drops"], sum(dropped.values()))

    def _frame(self, f: dict) -> None:
        for fn in self.frame_listeners:
            fn(f)
        counted = "uplinks_received" if f.get("type") == "uplink" and "error" not in f else None
        self._emit({"event": "frame", **{k: v for k, v in f.items() if k != "gateways"},
                    "rssi": max(g["rssi"] for g in f["gateways"]), "snr": max(g["lsnr"] for g in f["gateways"])},
                   counted)

    def summary(self) -> dict:
        return {"event": "summary", **self.counts, "nodes": self.opts.nodes, "hotspots": self.opts.hotspots,
                "region": self.opts.region}

    # ---- end ------------------------------------------------------------------------------------
    def joined(self) -> int:
        """Nodes that hold a session now, asked of each node (its own word cannot be missed)."""
        n = 0
        for c, role in zip(self.clients, self.roles, strict=True):
            if role != "node":
                continue
            try:
                n += bool(c.request("stats").get("joined"))
            except (LoraspotError, OSError):
                continue  # a node that does not answer is not counted
        return n

    def stop(self) -> None:
        with self._lock:
            self._stopping = True  # nothing is reported, or counted, once stopping began
        if self.clients:
            self.counts["joins"] = self.joined()
        for c in self.clients:
            c.close()
        for b in self.boards:
            b.stop()
        if self.listener is not None:
            self.listener.close()
        if self.medium is not None:
            self.medium.__exit__(None, None, None)
        self._tmp.cleanup()

    def __enter__(self) -> World:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc: object) -> None:
        self.stop()
