"""Talking to a loraspot board: connect by port URL, then typed calls over the console."""

from __future__ import annotations

import json
from collections.abc import Callable

from loraspot.console.client import ConsoleClient, Event

__all__ = ["ConsoleClient", "Event", "config_get", "config_set", "connect", "reboot", "security_warnings"]
from loraspot.errors import DeviceReset, DeviceTimeout
from loraspot.transport import DEFAULT_BAUD, open_port


def connect(url: str, baud: int = DEFAULT_BAUD, timeout: float = 5.0, on_log: Callable[[str], None] | None = None,
            on_event: Callable[[Event], None] | None = None, attempts: int = 3) -> tuple[ConsoleClient, dict]:
    """Open the port and greet the device; returns the client and the device's hello."""
    client = ConsoleClient(open_port(url, baud), on_log=on_log, on_event=on_event, timeout=timeout)
    try:
        for _ in range(attempts - 1):
            try:
                return client, client.hello()
            except (DeviceTimeout, DeviceReset):  # a board that is just booting answers the next try
                pass
        return client, client.hello()
    except BaseException:
        client.close()
        raise


def config_get(client: ConsoleClient, key: str | None = None) -> dict:
    if key is None:  # the device answers in pages
        values: dict = {}
        start = 0
        while True:
            page = client.request("config.get", {"start": start} if start else None)
            values.update(page["values"])
            if "next" not in page:
                return values
            start = int(page["next"])
    return {key: client.request("config.get", {"key": key})["value"]}


def role_fits(board_id: object, role: str, backhaul: str | None = None) -> None:
    """Refuse (budget.RoleDoesNotFit) a role the board's heap cannot hold, before anything is
    written; a board whose profile this host does not have is left to its own firmware."""
    from loraspot import boards, budget
    from loraspot.errors import BoardProfileError

    if role not in ("node", "hotspot"):
        return  # idle holds nothing; a role the firmware does not know it refuses itself
    try:
        profile = boards.get(str(board_id))
    except BoardProfileError:
        return
    budget.check(profile, role, backhaul)


def config_set(client: ConsoleClient, values: dict, check_fit: bool = True) -> dict:
    """Set config values, in as few requests as the device's request size allows (each one is
    applied atomically; room is left for an admin envelope when the client signs). A new role or
    backhaul is checked against the board's heap budget first (role_fits)."""
    if check_fit and ("role" in values or "backhaul" in values):
        role = values.get("role") or client.request("config.get", {"key": "role"})["value"]
        backhaul = values.get("backhaul")
        if role == "hotspot" and backhaul is None:
            backhaul = client.request("config.get", {"key": "backhaul"})["value"]
        role_fits(client.hello().get("board"), str(role), backhaul)
    if check_fit and values.get("ota_port"):  # updates over the air: refused where a session cannot fit
        from loraspot import boards, budget
        from loraspot.errors import BoardProfileError

        try:
            profile = boards.get(str(client.hello().get("board")))
        except BoardProfileError:
            profile = None
        if profile is not None:
            backhaul = values.get("backhaul") or client.request("config.get", {"key": "backhaul"})["value"]
            budget.check_ota(profile, str(backhaul))
    if check_fit and (values.get("http_port") or values.get("display") is True or values.get("receipts_interval")):
        _features_fit(client, values)
    room = client.max_request - (200 if client.admin_key is not None else 48)
    out: dict = {}
    group: dict = {}
    for key, value in values.items():
        if group and len(json.dumps({**group, key: value}, separators=(",", ":"))) > room:
            out.update(client.request("config.set", {"values": group})["values"])
            group = {}
        group[key] = value
    if group:
        out.update(client.request("config.set", {"values": group})["values"])
    return out


def _features_fit(client: ConsoleClient, values: dict) -> None:
    """Refuse a status page, a display or signed receipts the board's heap cannot hold beside its
    role (the values as they will be once these are set)."""
    from loraspot import boards, budget
    from loraspot.errors import BoardProfileError

    try:
        profile = boards.get(str(client.hello().get("board")))
    except BoardProfileError:
        return  # a board this host has no profile of: left to its own firmware

    def now(key: str):
        return values[key] if key in values else client.request("config.get", {"key": key})["value"]

    role = str(now("role"))
    hotspot = role == "hotspot"
    backhaul = str(now("backhaul")) if hotspot else None
    receipts = bool(now("receipts_interval")) if hotspot or "receipts_interval" in values else False
    budget.check_features(profile, role, backhaul, bool(now("http_port")), bool(now("display")), receipts)


def reboot(client: ConsoleClient, wait: float = 10.0, greet: bool = True) -> dict:
    """Reboot and wait for the device to come back (its boot event); returns the new hello, or
    with greet=False the boot event's data (a node that starts joining right away may be short of
    heap for a hello for some seconds: the boot event already says it is back)."""
    while not client.events.empty():  # an older boot event must not count
        client.events.get_nowait()
    client.request("reboot")
    boot = client.wait_event("boot", timeout=wait)
    return client.hello() if greet else dict(boot.data)


def security_warnings(hello: dict) -> list[str]:
    """What the chip's security eFuses (hello's `security`) leave open to anyone with a cable;
    docs/security.md has the production recipe that closes it."""
    sec = hello.get("security")
    if not isinstance(sec, dict):
        return ["the firmware does not report the chip's security eFuses (update it): flash encryption "
                "and secure boot unknown"]
    out = []
    if not sec.get("flash_encryption"):
        out.append("flash encryption is off: the keys in plain NVS can be read with esptool read-flash "
                   "(docs/security.md: the production recipe)")
    if not sec.get("secure_boot"):
        out.append("secure boot is off: anyone with a cable can flash other firmware")
    return out
