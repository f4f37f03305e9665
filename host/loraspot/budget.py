"""Does a role fit a board? The smallest heap each role was measured to run in against the heap the
board's MicroPython image gives it (the profile's `memory`, docs/boards.md), with headroom.

A role is refused for a board before anything is written to it (`provision`, `config set role`),
with the budget, the need and the ways out in the message."""

from __future__ import annotations

from dataclasses import dataclass

from loraspot.errors import LoraspotError

# The smallest heap, in KB, each role was measured to run in on the virtual board (MicroPython's
# 64-bit unix port): with its library loaded from littlefs into the heap (a stock image) or run in
# place from a ROMFS partition; the node joined and sending with all its sensors (BME280, GPS,
# battery), the hotspot with its backhaul up; 4 KB less and it did not (bench/roles.py prints what
# each role holds; tests/e2e/test_budget_e2e.py runs each one at exactly NEED_KB + HEADROOM_KB).
# That is more than what a role holds once running: its start needs room at its peak, and
# MicroPython's table of names grows in one block (15 KB on this port at the step from 640 to 1280
# names) that must be found whole.
NEED_KB = {
    ("node", "littlefs"): 198,
    ("node", "romfs"): 138,
    ("hotspot-udp", "littlefs"): 150,
    ("hotspot-udp", "romfs"): 106,
    ("hotspot-mqtt", "littlefs"): 160,
    ("hotspot-mqtt", "romfs"): 106,
}
# The smallest heap in which a hotspot forwarding on its backhaul also completes an update over the
# air (a session of one changed module: bench/ota.py bisects it in 4 KB steps on the virtual board).
# The session's code is loaded into the heap for it (spot.ota, spot.auth, otaboot). Where no figure
# was measured, the feature is refused rather than guessed.
OTA_NEED_KB = {
    ("hotspot-udp", "littlefs"): 200,  # 196 for one session; 200 for one after refused ones (docs/ota.md)
}
# The smallest heap in which a hotspot forwarding on its backhaul also serves its status page
# (http_port), draws its display (display), or both, or signs receipts of what it hears
# (receipts_interval: its frames recorded, a batch signed with Ed25519 and taken by the ledger
# service), and in which the set-up access point serves its page (it runs instead of the role):
# bench/panel.py bisects each in 4 KB steps on the virtual board. A node's display is the node's
# own figure (NEED_KB, which holds more than the bench's check alone needs) plus what the display
# costs it in that check: 132 -> 156 KB from ROMFS, 188 -> 204 KB from littlefs. What was not
# measured (receipts with the library in ROMFS or beside the display) is refused rather than guessed.
FEATURE_NEED_KB = {
    ("hotspot-udp", "romfs", "status+display"): 152,
    ("hotspot-udp", "romfs", "status"): 144,
    ("hotspot-udp", "romfs", "display"): 132,
    ("hotspot-udp", "littlefs", "status+display"): 208,
    ("hotspot-udp", "littlefs", "status"): 192,
    ("hotspot-udp", "littlefs", "display"): 184,
    ("hotspot-udp", "littlefs", "receipts"): 212,
    ("hotspot-udp", "littlefs", "status+receipts"): 232,
    ("hotspot-mqtt", "littlefs", "receipts"): 220,
    ("hotspot-mqtt", "romfs", "status+display"): 156,
    ("hotspot-mqtt", "romfs", "status"): 148,
    ("hotspot-mqtt", "romfs", "display"): 140,
    ("hotspot-mqtt", "littlefs", "status+display"): 216,
    ("hotspot-mqtt", "littlefs", "status"): 204,
    ("hotspot-mqtt", "littlefs", "display"): 196,
    ("node", "romfs", "display"): NEED_KB[("node", "romfs")] + 156 - 132,
    ("node", "littlefs", "display"): NEED_KB[("node", "littlefs")] + 204 - 188,
    ("setup", "romfs", "setup"): 84,
    ("setup", "littlefs", "setup"): 112,
}
# Heap a board's budget must give beyond that: console requests under load, a config write, a
# downlink (the console also keeps its own 4 KB reserve, inside NEED_KB).
HEADROOM_KB = 6


def ways_out() -> str:
    """What to use instead: the profiles with PSRAM, or an image with ROMFS."""
    from loraspot import boards

    psram = ", ".join(b for b, p in boards.all_boards().items() if p["memory"]["psram"])
    return (f"a board with PSRAM ({psram}), or a MicroPython image built with ROMFS "
            '(docs/boards.md, "An image with ROMFS")')


class RoleDoesNotFit(LoraspotError):
    exit_code = 2


@dataclass(frozen=True)
class Fit:
    role: str  # node, hotspot-udp, hotspot-mqtt
    board: str
    budget_kb: int
    need_kb: int
    code: str  # littlefs or romfs
    wifi: bool

    @property
    def margin_kb(self) -> int:
        return self.budget_kb - self.need_kb

    @property
    def fits(self) -> bool:
        return self.margin_kb >= HEADROOM_KB

    def message(self) -> str:
        heap = "with Wi-Fi on" if self.wifi else "without Wi-Fi"
        code = "its library loaded into the heap, no ROMFS" if self.code == "littlefs" else "its library in ROMFS"
        return (f"the {self.role} role does not fit board {self.board}: it needs {self.need_kb} KB of heap to "
                f"run ({code}) and {HEADROOM_KB} KB of headroom beside it, but the board's MicroPython image "
                f"gives {self.budget_kb} KB {heap}; use {ways_out()}")


def role_key(role: str, backhaul: str | None = None) -> str:
    if role == "hotspot":
        return "hotspot-mqtt" if backhaul == "mqtt" else "hotspot-udp"
    return role


def fit(profile: dict, role: str, backhaul: str | None = None) -> Fit:
    """How `role` (node, hotspot) fits the board of `profile`: the hotspot runs Wi-Fi, the node
    does not; code runs from ROMFS where the profile has a `romfs` partition."""
    key = role_key(role, backhaul)
    wifi = key.startswith("hotspot")
    code = "romfs" if profile["flash"]["partitions"].get("romfs") else "littlefs"
    budget = profile["memory"]["heap_kb"]["wifi" if wifi else "no_wifi"]
    return Fit(key, profile["id"], budget, NEED_KB[(key, code)], code, wifi)


def check(profile: dict, role: str, backhaul: str | None = None) -> Fit:
    """The fit, or RoleDoesNotFit naming the budget, the need and the ways out."""
    f = fit(profile, role, backhaul)
    if not f.fits:
        raise RoleDoesNotFit(f.message())
    return f



class OtaDoesNotFit(LoraspotError):
    exit_code = 2


def check_ota(profile: dict, backhaul: str | None = None) -> int:
    """Refuse (OtaDoesNotFit) updates over the air on a hotspot whose heap cannot hold a session
    beside forwarding, before anything is written; the measured need in KB otherwise."""
    key = role_key("hotspot", backhaul)
    code = "romfs" if profile["flash"]["partitions"].get("romfs") else "littlefs"
    need = OTA_NEED_KB.get((key, code))
    where = f"board {profile['id']} ({key}, {'library in ROMFS' if code == 'romfs' else 'library on littlefs'})"
    if need is None:
        raise OtaDoesNotFit(f"updates over the air are not measured for {where}: left off (docs/ota.md)")
    budget = profile["memory"]["heap_kb"]["wifi"]
    if budget - need < HEADROOM_KB:
        raise OtaDoesNotFit(f"updates over the air do not fit {where}: a session beside forwarding needs {need} KB "
                            f"of heap and {HEADROOM_KB} KB of headroom, the board's image gives {budget} KB; "
                            f"use {ways_out().split(', or')[0]}")
    return need


class FeatureDoesNotFit(LoraspotError):
    exit_code = 2


def feature_case(status: bool, display: bool, receipts: bool = False) -> str | None:
    return "+".join(n for n, on in (("status", status), ("display", display), ("receipts", receipts)) if on) or None


def check_features(profile: dict, role: str, backhaul: str | None, status: bool, display: bool,
                   receipts: bool = False) -> int | None:
    """Refuse (FeatureDoesNotFit) a status page, a display or signed receipts the board's heap cannot
    hold beside its role, before anything is written; the measured need in KB otherwise (None: none
    is on)."""
    hotspot = role == "hotspot"
    if receipts and not hotspot:
        raise FeatureDoesNotFit("signed receipts are a hotspot's: a node has none to sign")
    case = feature_case(status and hotspot, display, receipts)
    if case is None:
        return None
    if display and not profile.get("oled"):
        raise FeatureDoesNotFit(f"board {profile['id']} has no display (its profile has no \"oled\")")
    key = role_key(role, backhaul)
    code = "romfs" if profile["flash"]["partitions"].get("romfs") else "littlefs"
    names = {"status": "the status page", "display": "the display", "receipts": "signed receipts"}
    what = {case: " and ".join(names[n] for n in case.split("+"))}
    need = FEATURE_NEED_KB.get((key, code, case))
    where = f"board {profile['id']} ({key}, {'library in ROMFS' if code == 'romfs' else 'library on littlefs'})"
    if need is None:
        raise FeatureDoesNotFit(f"{what[case]} beside the {key} role are not measured for {where}: left off "
                                "(docs/setup.md)")
    budget = profile["memory"]["heap_kb"]["wifi" if key.startswith("hotspot") else "no_wifi"]
    if budget - need < HEADROOM_KB:
        verb = "does" if case in ("status", "display") else "do"
        raise FeatureDoesNotFit(f"{what[case]} {verb} not fit {where}: with them the role needs {need} KB of heap and "
                                f"{HEADROOM_KB} KB of headroom, the board's image gives {budget} KB; "
                                f"use {ways_out().split(', or')[0]}")
    return need
