"""Provisioning on virtual boards (each in its own process, UART paced at 115200 baud): the
console steps for one board, then 8 boards at once, as boards per minute."""

from __future__ import annotations

import functools
import os
import statistics
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


if __name__ == "__main__":
    main()
