"""Several provisioning stations on one PostgreSQL inventory (a real server, tests/postgres.py):
virtual boards provisioned by station processes at once, each board's identity and keys once; a
station killed in the middle of a run leaves its board's row for another station to resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time

import pytest
from loraspot import device
from loraspot.lorawan.crypto import key_check_value
from loraspot.provision.inventory import Inventory, InventoryError
from loraspot.store import Store

pytestmark = pytest.mark.e2e
MASTER = "3c" * 32
ENV = {**os.environ, "LORASPOT_MASTER_KEY": MASTER}


def _station(url: str, boards, *extra: str) -> subprocess.Popen:
    """A station: `loraspot provision` in a process of its own, for these boards."""
    cmd = [sys.executable, "-m", "loraspot.cli", "--json", "provision", "--role", "node", "--no-reboot",
           "--inventory", url, *extra]
    for b in boards:
        cmd += ["--port", b.info["url"]]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV,
                            start_new_session=True)


def _on_board(b) -> dict:
    """What the board itself says it holds: {kind: KCV or "set"}, and its MAC."""
    client, hello = device.connect(b.info["url"])
    with client:
        return {"mac": hello["id"].replace(":", "").upper(), **client.request("keys.list")["keys"]}


def _check_inventory_matches_boards(url: str, boards) -> list:
    """Every board has one row, provisioned, whose AppKey is the one on the board (by KCV, as the
    board tells it); no EUI, MAC or key twice."""
    with Inventory(url, key=bytes.fromhex(MASTER)) as inv:
        devices = inv.devices()
        assert len(devices) == len(boards) and all(d.state == "provisioned" for d in devices), \
            [(d.dev_eui, d.state) for d in devices]
        by_mac = {d.mac: d for d in devices}
        for b in boards:
            held = _on_board(b)
            d = by_mac[held["mac"]]
            assert held["app_key"] == key_check_value(inv.secret(d.dev_eui, "app_key")), d.dev_eui
        for kind in ("app_key", "admin_key"):
            assert len({inv.secret(d.dev_eui, kind) for d in devices}) == len(devices)
    assert len({d.dev_eui for d in devices}) == len({d.mac for d in devices}) == len(boards)
    return devices


@pytest.mark.long
def test_four_stations_provision_forty_boards_into_one_postgresql_inventory(make_board, postgres_server):
    url = postgres_server.new_database()
    boards = [make_board(pty=False) for _ in range(40)]
    stations = [_station(url, boards[n::4]) for n in range(4)]  # all four start at once, on a new database
    results = []
    for s in stations:
        out, err = s.communicate(timeout=300)
        assert s.returncode == 0, err
        results += json.loads(out)
    assert len(results) == 40 and all(r["ok"] for r in results), [r for r in results if not r["ok"]]
    devices = _check_inventory_matches_boards(url, boards)
    assert sorted(d.dev_eui for d in devices) == sorted(r["dev_eui"] for r in results)


def test_a_station_killed_mid_run_leaves_a_row_another_station_resumes(make_board, postgres_server):
    """The first station is killed (SIGKILL: no clean-up of its own) the moment the inventory shows
    a board's row in `provisioning`, its keys made and sealed but the run not finished. A second
    station resumes that row (the same DevEUI, no --force) and provisions what is left."""
    url = postgres_server.new_database()
    boards = [make_board(pty=False) for _ in range(6)]
    with Inventory(url, key=bytes.fromhex(MASTER)):
        pass  # the schema made before the station starts, so the watch below can read it at once
    watch = Store(url)
    first = _station(url, boards)
    caught: list[tuple[str, str]] = []
    try:
        while first.poll() is None:  # an event: a row in the middle of its run
            caught = watch.execute("SELECT dev_eui, mac FROM devices WHERE state = 'provisioning'").fetchall()
            if caught:
                os.killpg(first.pid, signal.SIGKILL)
                break
            time.sleep(0.005)  # a poll's pause, not a wait for time to pass
        first.communicate(timeout=60)
        assert caught, "the station finished before any row was seen in the middle of its run"
        states = dict(watch.execute("SELECT dev_eui, state FROM devices").fetchall())
    finally:
        watch.close()
    cut = [eui for eui, state in states.items() if state == "provisioning"]
    assert cut, states
    with Inventory(url, key=bytes.fromhex(MASTER)) as inv:
        rows = [inv.by_mac(_on_board(b)["mac"]) for b in boards]
    left = [b for b, row in zip(boards, rows, strict=True) if row is None or row.state != "provisioned"]
    second = _station(url, left)
    out, err = second.communicate(timeout=300)
    assert second.returncode == 0, err
    results = json.loads(out)
    assert all(r["ok"] for r in results)
    resumed = {r["dev_eui"] for r in results}
    assert set(cut) <= resumed  # the cut rows, under their own DevEUIs: no second row for a board
    _check_inventory_matches_boards(url, boards)


def test_a_board_is_worked_on_by_one_station_at_a_time(postgres_server, tmp_path):
    """On a shared server a station holds the board it works on: another is refused meanwhile, and
    may take it as soon as the first station's connection is gone (as when it dies)."""
    url = postgres_server.new_database()
    key = bytes.fromhex(MASTER)
    holding, release = threading.Event(), threading.Event()

    def first() -> None:
        with Inventory(url, key=key) as inv, inv.claim("a4:cf:12:00:00:01"):
            holding.set()
            release.wait(60)

    t = threading.Thread(target=first)
    t.start()
    try:
        assert holding.wait(60)
        with Inventory(url, key=key) as other:
            with pytest.raises(InventoryError, match="A4CF12000001 is being provisioned by another station"), \
                    other.claim("A4CF12000001"):
                pass
            with other.claim("A4CF12000002"):  # another board: free
                pass
    finally:
        release.set()
        t.join(60)
    code = ("import sys, os\nfrom loraspot.provision.inventory import Inventory\n"
            "inv = Inventory(sys.argv[1])\nheld = inv.claim('A4CF12000001')\nheld.__enter__()\n"
            "print('held', flush=True)\nsys.stdin.readline()\n")
    station = subprocess.Popen([sys.executable, "-c", code, url], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                               text=True, env=ENV)
    try:
        assert station.stdout is not None and station.stdout.readline().strip() == "held"
        with Inventory(url, key=key) as other, pytest.raises(InventoryError, match="another station"), \
                other.claim("A4CF12000001"):
            pass
    finally:
        station.kill()
        station.communicate(timeout=60)
    # the dead station lets go of it as soon as the server sees its connection end (an event it
    # reports in pg_stat_activity)
    with Inventory(url, key=key) as other:
        while other.db.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'").fetchone()[0]:
            time.sleep(0.01)
        with other.claim("A4CF12000001"):
            pass
