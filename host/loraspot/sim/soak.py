"""`loraspot sim soak`: a simulated world (5 nodes and 2 hotspots at speed 20 unless told) run for a
number of device-hours, watched as a long field run is: no board restarts, every board's console
answers a request every device-minute, free heap stays in a band after warm-up, each node's FCnts
are consecutive, and every uplink a node reports is accounted for: received by the network server,
or lost with a reason (on the air, as the RF medium decided it; dropped and counted by a hotspot;
refused by the server).

The pace is the devices' clock (the RF medium's world time), never the wall clock: a starved host
makes the run slower, not different."""

from __future__ import annotations

import itertools
import re
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from loraspot.errors import LoraspotError
from loraspot.sim.world import World, WorldOptions

MINUTE_US = 60_000_000
WARMUP_MINUTES = 10  # joins, first uplinks and the first stats: the heap settles in this time
HEAP_BAND = 6144  # bytes a board's free heap may move from its value at the end of warm-up
SETTLE_S = 90  # device seconds an uplink may still be in flight at the end (RX windows, dedup)
REQUEST_TIMEOUT = 60.0  # wall seconds a console answer may take on a starved host


class SoakError(LoraspotError):
    exit_code = 2


class SoakFailed(LoraspotError):
    """The run ended and a check failed (the report says which)."""

    exit_code = 1


@dataclass
class SoakOptions:
    device_hours: float = 24.0
    nodes: int = 5
    hotspots: int = 2
    speed: int = 20
    uplink_interval: int = 60
    region: str = "EU868"


@dataclass
class _Board:
    name: str
    role: str
    heap: list[tuple[int, int]] = field(default_factory=list)  # (device minute, free heap)
    asked: int = 0
    answered: int = 0
    no_answer: list[str] = field(default_factory=list)
    up_ms: int = -1
    clock_backwards: int = 0


def _uplink_key(payload: bytes) -> tuple[str, int] | None:
    """(DevAddr, 16-bit FCnt) of a data uplink as sent on the air; None for anything else."""
    if len(payload) < 12 or payload[0] >> 5 not in (2, 4):
        return None
    return payload[1:5][::-1].hex(), int.from_bytes(payload[6:8], "little")


class Soak:
    def __init__(self, opts: SoakOptions, on_progress: Callable[[dict], None] | None = None):
        if opts.device_hours <= 0:
            raise SoakError("--device-hours must be more than 0")
        self.opts = opts
        self.on_progress = on_progress or (lambda _p: None)
        self._lock = threading.Lock()
        self.sent: dict[str, list[tuple[int, int]]] = {}  # node -> [(fcnt, device µs)]
        self.not_sent: Counter = Counter()  # uplinks a node reported it could not send, by reason
        # node -> every DevAddr it had (its join events, and its stats answers: a join event can
        # come before the world's console client is attached, and be missed)
        self.devaddr: dict[str, set[str]] = {}
        self.air: dict[tuple[str, int], list] = {}  # (DevAddr, FCnt16) -> [heard_by, lost_by] of its copies
        self.received: set[tuple[str, int]] = set()  # (DevEUI, FCnt) the server took
        self.refused: dict[tuple[str, int], str] = {}  # (DevEUI, FCnt16) -> the server's reason
        self._hs_ids: set[str] = set()

    # ---- what the world reports ----------------------------------------------------------------
    def _event(self, name: str, role: str, ev) -> None:
        d = ev.data
        if role != "node":
            return
        with self._lock:
            if ev.kind == "join" and d.get("ok") and d.get("devaddr"):
                self.devaddr.setdefault(name, set()).add(str(d["devaddr"]).lower())
            elif ev.kind == "uplink":
                if "error" in d:
                    self.not_sent[f"not sent by the node: {str(d['error'])[:60]}"] += 1
                elif isinstance(d.get("fcnt"), int):
                    self.sent.setdefault(name, []).append((d["fcnt"], self._now()))

    def _frame(self, f: dict) -> None:
        if f.get("type") != "uplink" or not f.get("dev_eui"):
            return
        with self._lock:
            eui = str(f["dev_eui"]).upper()
            if "error" in f:  # a refused frame's count is the one on the air (16 bits)
                self.refused[(eui, int(f.get("fcnt16", f.get("fcnt")) or 0) & 0xFFFF)] = str(f["error"])
            else:
                self.received.add((eui, int(f.get("fcnt") or 0)))

    def _air(self, frame) -> None:
        key = _uplink_key(frame.payload)
        if key is None:
            return
        with self._lock:
            copies = self.air.setdefault(key, [set(), {}])
            copies[0].update(frame.heard_by)
            copies[1].update(frame.lost_by)

    def _now(self) -> int:
        assert self.world.medium is not None
        return self.world.medium.now()

    # ---- the run ----------------------------------------------------------------------------------
    def run(self) -> dict:
        o = self.opts
        minutes = max(1, round(o.device_hours * 60))
        wopts = WorldOptions(nodes=o.nodes, hotspots=o.hotspots, speed=o.speed, uplink_interval=o.uplink_interval,
                             region=o.region)
        self.world = world = World(wopts)
        t_wall = time.monotonic()
        world.listeners.append(self._event)
        world.frame_listeners.append(self._frame)
        world.on_air = self._air
        with world:
            boards = [_Board(f"{role}{i}", role) for role, i in self._names()]
            start = self._now()
            for minute in range(1, minutes + 1):
                due = start + minute * MINUTE_US
                while self._now() < due:  # the devices' clock, not the wall's
                    time.sleep(0.02)
                for b, client in zip(boards, world.clients, strict=True):
                    self._ask(b, client, minute)
                if minute % 10 == 0 or minute == minutes:
                    self.on_progress({"event": "progress", "device_minutes": minute, "of": minutes,
                                      "uplinks": sum(len(v) for v in self.sent.values()),
                                      "received": len(self.received), **world.health})
            end = self._now()
            # what the hotspots counted as dropped, by reason, while the boards still run
            drops: Counter = Counter()
            for b, client in zip(boards, world.clients, strict=True):
                if b.role == "hotspot":
                    try:
                        st = client.request("stats", timeout=REQUEST_TIMEOUT)
                        for reason, n in (st.get("dropped") or {}).items():
                            drops[reason] += int(n)
                    except (LoraspotError, OSError):
                        pass
            health = dict(world.health)
            # the RF medium's radio ids of the hotspots (a board's radio registers with its MAC)
            self._hs_ids = {str(vb.device_id) for vb, role in zip(world.boards, world.roles, strict=True)
                            if role == "hotspot"}
            eui_of = {f"node{i}": eui for i, eui in enumerate(world.devices)}
        return self._report(boards, start, end, drops, health, eui_of, time.monotonic() - t_wall)

    def _names(self) -> list[tuple[str, int]]:
        roles = self.world.roles
        counts: Counter = Counter()
        out = []
        for role in roles:
            out.append((role, counts[role]))
            counts[role] += 1
        return out

    def _ask(self, b: _Board, client, minute: int) -> None:
        b.asked += 1
        try:
            st = client.request("stats", timeout=REQUEST_TIMEOUT)
        except (LoraspotError, OSError) as e:
            b.no_answer.append(f"minute {minute}: {e}")
            return
        b.answered += 1
        if isinstance(st.get("devaddr"), str):
            with self._lock:
                self.devaddr.setdefault(b.name, set()).add(st["devaddr"].lower())
        if isinstance(st.get("heap_free"), int):
            b.heap.append((minute, st["heap_free"]))
        up = st.get("up_ms")
        if isinstance(up, int):
            if up < b.up_ms:
                b.clock_backwards += 1  # uptime went back: the board restarted
            b.up_ms = up

    # ---- the account ------------------------------------------------------------------------------
    def _report(self, boards: list[_Board], start: int, end: int, drops: Counter, health: dict,
                eui_of: dict[str, str], wall_s: float) -> dict:
        o = self.opts
        fates: Counter = Counter()
        gaps = []
        in_flight = 0
        unaccounted = []
        heard_not_received = 0
        for node, ups in sorted(self.sent.items()):
            fcnts = [f for f, _t in ups]
            for a, b in itertools.pairwise(fcnts):
                if b != a + 1:
                    gaps.append(f"{node}: FCnt {a} then {b}")
            eui = eui_of.get(node, "")
            addrs = sorted(self.devaddr.get(node, ()))
            for fcnt, t in ups:
                if (eui, fcnt) in self.received:
                    fates["received"] += 1
                    continue
                if t > end - SETTLE_S * 1_000_000:
                    in_flight += 1
                    continue
                why = self.refused.get((eui, fcnt & 0xFFFF))
                if why is not None:
                    fates[f"refused by the server: {re.sub(r'[0-9]+', 'N', why)[:60]}"] += 1
                    continue
                found = [self.air[(a, fcnt & 0xFFFF)] for a in addrs if (a, fcnt & 0xFFFF) in self.air]
                if not found:
                    unaccounted.append(f"{node} FCnt {fcnt}: never on the air"
                                       + ("" if addrs else " (its DevAddr never seen)"))
                    continue
                heard = set().union(*(c[0] for c in found))
                lost = {k: v for c in found for k, v in c[1].items()}
                hotspot_heard = [r for r in heard if r in self._hs_ids]
                if hotspot_heard:
                    heard_not_received += 1
                    fates["dropped by a hotspot (counted)"] += 1
                elif lost:
                    reason = sorted(set(lost.values()))[0]
                    fates["lost on the air: " + reason.split(" with frame")[0]] += 1
                else:
                    fates["lost on the air: no hotspot listening (transmitting a downlink)"] += 1
        if heard_not_received > sum(drops.values()):
            unaccounted.append(f"{heard_not_received - sum(drops.values())} uplinks reached a hotspot and the "
                               "server never had them, beyond what the hotspots counted as dropped")
        heap = {}
        failures = []
        for b in boards:
            after = [v for m, v in b.heap if m > WARMUP_MINUTES] or [v for _m, v in b.heap[-1:]]
            ref = after[0] if after else 0
            heap[b.name] = {"at_warmup_end": ref, "min": min(after, default=0), "max": max(after, default=0)}
            if after and (max(after) - ref > HEAP_BAND or ref - min(after) > HEAP_BAND):
                failures.append(f"{b.name}: free heap left its band ({ref} ± {HEAP_BAND} B): "
                                f"{min(after)}..{max(after)}")
            if b.no_answer:
                failures.append(f"{b.name}: {len(b.no_answer)} console requests unanswered ({b.no_answer[0]})")
            if b.clock_backwards:
                failures.append(f"{b.name}: uptime went back {b.clock_backwards} times (a restart)")
        if health["resets"]:
            failures.append(f"{health['resets']} board restarts")
        if health["events_lost"]:
            failures.append(f"{health['events_lost']} console events lost")
        failures += [f"FCnt gap: {g}" for g in gaps[:5]]
        failures += [f"unaccounted uplink: {u}" for u in unaccounted[:5]]
        sent = sum(len(v) for v in self.sent.values())
        return {"event": "soak", "ok": not failures, "failures": failures,
                "device_hours": round((end - start) / 3.6e9, 2), "wall_s": round(wall_s, 1),
                "nodes": o.nodes, "hotspots": o.hotspots, "speed": o.speed,
                "uplinks": sent, "fates": dict(fates), "in_flight_at_end": in_flight,
                "not_sent": dict(self.not_sent), "hotspot_drops": dict(drops), "unaccounted": len(unaccounted),
                "fcnt_gaps": len(gaps), "resets": health["resets"], "events_lost": health["events_lost"],
                "console": {"asked": sum(b.asked for b in boards), "answered": sum(b.answered for b in boards)},
                "heap_band_b": HEAP_BAND, "warmup_minutes": WARMUP_MINUTES, "heap": heap}

