"""`make fuzz`: each firmware parser under MicroPython at the board's heap (112 KB) with a seeded
generator (tests/firmware/fuzz_targets.py), after replaying the saved regression inputs
(tests/data/fuzz/<target>.txt). Prints inputs, crashes, inputs/s and heap drift per 10,000 inputs
after a warm-up of 1,000; exits 1 on a crash or a drift of a heap block or more. A crashing input
is added to the target's corpus file, so the test sample replays it from then on.

    python bench/fuzz.py [--count N] [--seed S] [TARGET ...]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "host"))

from loraspot.flash.mpy import compiled_firmware  # noqa: E402

TARGETS = ("mac", "join_accept", "downlink", "semtech", "chirpstack", "nmea", "config", "console")
CORPUS = ROOT / "tests" / "data" / "fuzz"
HEAP = "112K"
BLOCK = 32  # bytes of a MicroPython heap block on this 64-bit port (16 on a 32-bit ESP32)


def corpus(target: str) -> list[str]:
    """Saved inputs of a target: one hex string per line (# comments)."""
    path = CORPUS / f"{target}.txt"
    if not path.exists():
        return []
    return [ln.split()[0] for ln in path.read_text().splitlines() if ln.strip() and not ln.startswith("#")]


def run(target: str, seed: int, count: int, timeout: float = 3600) -> dict:
    """One target in its own MicroPython process; the report it prints, with the figures."""
    fw = compiled_firmware(ROOT / ".venv" / "mpy-cache")
    tests = compiled_firmware(ROOT / ".venv" / "mpy-cache", ROOT / "tests" / "firmware", "fwtests")
    exe = Path(sys.executable).with_name("micropython")
    env = dict(os.environ, MICROPYPATH=os.pathsep.join([str(tests), str(fw), ".frozen"]))
    args = [target, str(seed), str(count), *corpus(target)]
    # -c, not a script file: the unix port cannot import this many .mpy from a script's frame
    code = f"import fuzz_targets\nfuzz_targets.main({['fuzz', *args]!r})"
    proc = subprocess.run([str(exe) if exe.exists() else "micropython", "-X", f"heapsize={HEAP}", "-c", code],
                          capture_output=True, text=True, env=env, timeout=timeout, cwd=ROOT / "tests" / "firmware")
    if proc.returncode != 0 or not proc.stdout.strip():
        last = (proc.stderr.strip().splitlines() or ["?"])[-1]
        return {"target": target, "inputs": 0, "crash_count": 1, "resets": 1, "free": [], "ms": 1,
                "crashes": [{"input": "", "error": f"the process died (a reset): {last}"}]}
    lines = [json.loads(ln) for ln in proc.stdout.splitlines() if ln.startswith("{")]
    rep = lines[-1]
    rep["crash_count"] = rep["crashes"]
    rep["crashes"] = lines[:-1]  # one line per crash (the first 20), then the figures
    rep["resets"] = 0
    rep["drift_per_10k"] = drift(rep["free"][1:-1] if len(rep["free"]) > 3 else [])
    rep["per_s"] = rep["inputs"] * 1000 / rep["ms"]
    return rep


def drift(free: list[int]) -> float:
    """Heap lost per 10,000 inputs: the least-squares slope of the free heap sampled every 10,000
    inputs (after gc.collect), the first 11,000 inputs left out as warm-up; 0 with too few samples."""
    n = len(free)
    if n < 3:
        return 0.0
    mx, my = (n - 1) / 2, sum(free) / n
    return -sum((x - mx) * (y - my) for x, y in enumerate(free)) / sum((x - mx) ** 2 for x in range(n))


def save(target: str, crashes: list[dict]) -> None:
    """Add crashing inputs to the target's regression corpus (kept in the repository)."""
    known = set(corpus(target))
    new = [c for c in crashes if c["input"] and c["input"] not in known]
    if new:
        CORPUS.mkdir(parents=True, exist_ok=True)
        with (CORPUS / f"{target}.txt").open("a") as f:
            for c in new:
                f.write(f"{c['input']}  # {c['error'][:100]}\n")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--count", type=int, default=100_000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("targets", nargs="*", default=list(TARGETS))
    a = ap.parse_args()
    bad = 0
    print(f"{'target':<12} {'inputs':>8} {'crashes':>7} {'resets':>6} {'inputs/s':>9} {'drift B/10k':>11}")
    for t in a.targets:
        r = run(t, a.seed, a.count)
        save(t, r["crashes"])
        print(f"{t:<12} {r['inputs']:>8} {r['crash_count']:>7} {r['resets']:>6} {r.get('per_s', 0):>9.0f} "
              f"{r.get('drift_per_10k', 0):>11.1f}", flush=True)
        for c in r["crashes"][:3]:
            print(f"  {c['error']}  input {c['input'][:80]}")
        if r["crash_count"] or r.get("drift_per_10k", 0) >= BLOCK:
            bad += 1
    print(f"heap block: {BLOCK} B; a crash or a drift of a block per 10,000 inputs fails")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
