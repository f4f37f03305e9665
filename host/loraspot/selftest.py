"""The factory self-test of boards running loraspot (`loraspot selftest`): each board runs its
`selftest` console command (firmware/spot/selftest.py); a board running a role restarts once into a
test boot for it and is restarted again afterwards, so that it goes back to its role. Boards are
tested in parallel; each result is kept in the inventory with its time."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from loraspot import device
from loraspot.errors import LoraspotError

RESULT_TIMEOUT = 60.0  # seconds for the board's answer (a GPS is given a few seconds to speak)
RESTART_TIMEOUT = 30.0


@dataclass
class Result:
    port: str
    ok: bool = False
    board: str = ""
    mac: str = ""
    name: str | None = None
    checks: list[dict] = field(default_factory=list)
    error: str = ""  # the board could not be tested at all (no answer, not loraspot ...)
    restarted: bool = False
    at: float = 0.0

    def failed(self) -> list[dict]:
        return [c for c in self.checks if not c.get("ok")]

    def as_dict(self) -> dict:
        return {"port": self.port, "ok": self.ok, "board": self.board, "id": self.mac, "name": self.name,
                "checks": self.checks, "error": self.error or None, "restarted": self.restarted, "at": self.at}


def _answer(r: dict) -> list[dict]:
    checks = r.get("checks")
    if not isinstance(checks, list) or not all(isinstance(c, dict) and "name" in c for c in checks):
        raise LoraspotError("the board's self-test answer is not understood (update its firmware)")
    return checks


def run(port: str) -> Result:
    """Self-test the board on port; errors that stop the test are in Result.error."""
    res = Result(port)
    try:
        client, hello = device.connect(port)
    except LoraspotError as e:
        res.error = str(e)
        res.at = time.time()
        return res
    try:
        res.board, res.mac = str(hello.get("board") or ""), str(hello.get("id") or "").upper()
        res.name = hello.get("name")
        if "selftest" not in (hello.get("caps") or []):
            raise LoraspotError("this board's firmware has no self-test: update it (loraspot deploy)")
        while not client.events.empty():
            client.events.get_nowait()
        answer = client.request("selftest", timeout=RESULT_TIMEOUT)
        if answer.get("restart"):  # a role was running: now in the test boot
            res.restarted = True
            client.wait_event("boot", timeout=RESTART_TIMEOUT)
            answer = client.request("selftest", timeout=RESULT_TIMEOUT)
            if answer.get("restart"):
                raise LoraspotError("the board did not start its test boot")
        res.checks = _answer(answer)
        res.ok = bool(answer.get("ok")) and not res.failed()
        if res.restarted:  # back to its role
            device.reboot(client, wait=RESTART_TIMEOUT, greet=False)
    except LoraspotError as e:
        res.error = str(e)
        res.ok = False
    finally:
        client.close()
    res.at = time.time()
    return res


def run_all(ports: list[str]) -> list[Result]:
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=max(1, min(16, len(ports)))) as pool:
        return list(pool.map(run, ports))


def keep(results: list[Result], inventory_path: Path | str | None) -> None:
    """Each result that names its board goes into the inventory (with the time it was taken)."""
    from loraspot.provision.inventory import Inventory

    with Inventory(inventory_path) as inv:
        for r in results:
            if r.mac:
                checks = r.checks if not r.error else [*r.checks, {"name": "session", "ok": False, "detail": r.error}]
                inv.add_selftest(r.mac, r.board or None, r.ok, checks, at=r.at)
