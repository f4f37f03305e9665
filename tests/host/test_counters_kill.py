"""50 random process kills while the firmware hands out counters: FCntUp strictly increasing
across restarts, DevNonce never repeated."""

from __future__ import annotations

import itertools
import random
import signal
import subprocess

from tests.conftest import FIRMWARE_TESTS, HEAP, firmware_env, micropython


def test_fifty_random_kills(tmp_path):
    env = firmware_env(False)
    rng = random.Random(50)
    ups: list[int] = []
    nonces: list[int] = []
    for _ in range(50):
        proc = subprocess.Popen([micropython(), "-X", f"heapsize={HEAP}", str(FIRMWARE_TESTS / "counters_peer.py"),
                                 str(tmp_path)], stdout=subprocess.PIPE, env=env)
        # killed after a random number of counters handed out (not after a stretch of wall time: a
        # starved process may not have started by then), in the middle of whatever it does next
        assert proc.stdout is not None
        seen = [proc.stdout.readline() for _ in range(rng.randint(1, 40))]
        proc.send_signal(signal.SIGKILL)
        out, _ = proc.communicate()
        for line in (b"".join(seen) + out).decode(errors="replace").splitlines():
            parts = line.split()
            if len(parts) != 3 or parts[2] != "." or not parts[1].isdigit():
                continue  # a line cut by the kill
            kind, value = parts[0], parts[1]
            (ups if kind == "U" else nonces).append(int(value))
    assert len(ups) > 100 and len(nonces) > 10
    assert all(b > a for a, b in itertools.pairwise(ups)), "FCntUp went back or repeated"
    assert len(set(nonces)) == len(nonces) and nonces == sorted(nonces), "DevNonce repeated"
