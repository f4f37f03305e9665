"""Provisioning on virtual boards (each in its own process, UART paced at 115200 baud): the
console steps for one board, then 8 boards at once, as boards per minute; then stations (each a
`loraspot provision` process of its own, as on separate benches) sharing one PostgreSQL inventory:
24 boards by 1, 2 and 4 stations, as boards per minute (a real server, tests/postgres.py)."""

from __future__ import annotations

import functools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from loraspot.provision import provision
from loraspot.provision.inventory import Inventory
from vboards import Board


def main() -> None:
    global print
    print = functools.partial(print, flush=True)
    os.environ.setdefault("LORASPOT_RUNTIME_DIR", tempfile.mkdtemp())
    os.environ.setdefault("LORASPOT_MASTER_KEY", os.urandom(32).hex())
    with tempfile.TemporaryDirectory() as d:
        inv = Path(d) / "inv.sqlite"
        opts = provision.Options(role="node", reboot=False)
        boards = [Board(Path(d) / f"b{i}.bin", "--no-pty") for i in range(8)]
        try:
            time.sleep(3)  # the boards boot
            # One board at a time: each board once, then again with --force (new keys, same steps).
            single = []
            for force in (False, True):
                opts.force = force
                for b in boards[:3]:
                    r = provision.provision_many([b.info["url"]], opts, inv)[0]
                    assert r.ok, r.error
                    single.append(r.seconds)
            print(f"provision one board (console steps: hello, keys.list, config.set, keys.set x2; 115200 baud): "
                  f"median {statistics.median(single):.2f} s, min {min(single):.2f} s over {len(single)} runs")
            opts.force = True
            t = time.monotonic()
            res = provision.provision_many([b.info["url"] for b in boards], opts, inv)
            wall = time.monotonic() - t
            assert all(r.ok for r in res), [r.error for r in res if not r.ok]
            per = [r.seconds for r in res]
            print(f"provision 8 boards in parallel: {wall:.2f} s wall = {8 / wall * 60:.0f} boards/min "
                  f"(one at a time: {60 / statistics.median(single):.0f} boards/min); per board "
                  f"median {statistics.median(per):.2f} s, slowest {max(per):.2f} s")
            with Inventory(inv) as db:
                n = sum(x.state == "provisioned" for x in db.devices())
            print(f"  inventory: {n} devices provisioned, each with keys of its own")
        finally:
            for b in boards:
                b.stop()


def _stations(inventory: str, n: int, boards: list[Board]) -> float:
    """n station processes provisioning the boards between them; the wall time, every board ok."""
    cmd = [sys.executable, "-m", "loraspot.cli", "--json", "provision", "--role", "node", "--no-reboot",
           "--inventory", inventory]
    t = time.monotonic()
    procs = [subprocess.Popen(cmd + [a for b in boards[k::n] for a in ("--port", b.info["url"])],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for k in range(n)]
    results = []
    for p in procs:
        out, err = p.communicate(timeout=600)
        assert p.returncode == 0, err
        results += json.loads(out)
    wall = time.monotonic() - t
    assert len(results) == len(boards) and all(r["ok"] for r in results)
    return wall


def stations() -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from tests.postgres import PostgresServer, bindir

    if bindir() is None:
        print("stations: skipped, PostgreSQL is not installed (make servers)")
        return
    count = 24
    with tempfile.TemporaryDirectory() as d, PostgresServer() as pg:
        rates = {}
        for label, n, target in (("SQLite file", 1, str(Path(d) / "one.sqlite")),
                                 *(("PostgreSQL", k, None) for k in (1, 2, 4))):
            boards = [Board(Path(d) / f"s{label[0]}{n}-{i}.bin", "--no-pty") for i in range(count)]
            try:
                wall = _stations(target or pg.new_database(), n, boards)
            finally:
                for b in boards:
                    b.stop()
            rates[(label, n)] = count / wall * 60
            print(f"{count} boards, {n} station(s) on one {label} inventory: {wall:.1f} s wall = "
                  f"{rates[(label, n)]:.0f} boards/min", flush=True)
        one = rates[("PostgreSQL", 1)]
        print("  stations on PostgreSQL, boards/min ratio to one station: " +
              ", ".join(f"{n}: {rates[('PostgreSQL', n)] / one:.2f}x" for n in (1, 2, 4)) +
              f"; one station on a file: {rates[('SQLite file', 1)] / one:.2f}x", flush=True)


if __name__ == "__main__":
    main()
    stations()
