"""A staged rollout over the air (`loraspot deploy --ota ... --canary N`): the canary group is
updated first and must pass its health check on the new app (the board's own verdict, phase
`good`, docs/ota.md); only then the rest, in waves. At the first failure the rollout stops: the
board that failed goes back to its previous app by itself, the stages not reached are left
untouched, and the report says which is which."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from loraspot.errors import LoraspotError
from loraspot.flash import ota

PASSED, CURRENT, ROLLED_BACK, FAILED, UNTOUCHED = "passed", "up to date", "rolled back", "failed", "untouched"


@dataclass
class Outcome:
    target: str
    stage: str  # "canary", "wave 1", ...
    result: str = UNTOUCHED
    app: str = ""  # the app version the board said it runs at the end
    detail: str = ""
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.result in (PASSED, CURRENT)

    def as_dict(self) -> dict:
        return {"target": self.target, "stage": self.stage, "result": self.result, "app": self.app,
                "detail": self.detail, "seconds": round(self.seconds, 1)}


def _said_of(target: str, message: str) -> str:
    """An error about target without the "HOST:PORT: " it starts with (the report names the
    board once, beside it)."""
    try:
        host, port = ota.parse_target(target)
    except ota.OtaError:
        return message
    return message.removeprefix(f"{host}:{port}: ")


def stages(targets: list[str], canaries: int, wave: int | None) -> list[tuple[str, list[str]]]:
    """The canary group (the first `canaries` targets), then the rest in waves of `wave` (one
    wave when not given)."""
    if canaries < 1 or canaries > len(targets):
        raise ota.OtaError(f"--canary takes 1 to {len(targets)} boards (the first ones given), got {canaries}")
    rest = targets[canaries:]
    size = wave or len(rest) or 1
    return [("canary", targets[:canaries])] + [(f"wave {n}", rest[i:i + size])
                                               for n, i in enumerate(range(0, len(rest), size), 1)]


def rollout(targets: list[str], canaries: int, wave: int | None = None, files: dict[str, bytes] | None = None,
            firmware: bytes | None = None, inventory: Path | str | None = None, label: str = "",
            health_wait: float = 1200.0, on_stage=None) -> list[Outcome]:
    """Update `targets` stage by stage (the boards of a stage at once); stop after the first stage
    with a board that did not pass. Returns one outcome per target, in the order given."""
    plan = stages(targets, canaries, wave)
    outcomes = {t: Outcome(t, name) for name, group in plan for t in group}

    def one(target: str) -> None:
        out = outcomes[target]
        start = time.monotonic()
        try:
            if firmware is not None:  # MicroPython itself: the call waits for the health check
                done = ota.deploy_firmware_ota(target, firmware, inventory=inventory, label=label, wait=health_wait)
                out.result, out.app = PASSED, f"MicroPython in {done['slot']}"
            else:
                res = ota.deploy_ota(target, files, inventory=inventory, label=label, wait=0)
                if not res.sent:
                    out.result, out.app = CURRENT, res.app
                else:
                    out.app = res.app
                    ota.wait_healthy(target, res.app, health_wait)
                    out.result = PASSED
        except ota.OtaError as e:
            out.result = ROLLED_BACK if e.code == "rolled_back" else FAILED
            out.detail = _said_of(target, str(e))
            if out.result == ROLLED_BACK:
                try:
                    out.app = str(ota.greeting(target, timeout=5).get("app", ""))
                except LoraspotError:
                    pass
        except (LoraspotError, OSError) as e:
            out.result, out.detail = FAILED, _said_of(target, str(e))
        out.seconds = time.monotonic() - start

    for name, group in plan:
        if on_stage is not None:
            on_stage(name, group)
        with ThreadPoolExecutor(max_workers=max(1, min(16, len(group)))) as pool:
            list(pool.map(one, group))
        if not all(outcomes[t].ok for t in group):
            break
    return [outcomes[t] for t in targets]
