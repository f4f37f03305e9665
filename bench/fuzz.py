"""`make fuzz`: each firmware parser under MicroPython at the board's heap (112 KB) with a seeded
generator (tests/firmware/fuzz_targets.py), and each host parser in CPython with the same generator
(bench/fuzz_host.py), after replaying the saved regression inputs (tests/data/fuzz/<target>.txt).
Prints inputs, crashes, inputs/s and heap drift per 10,000 inputs after a warm-up of 1,000; exits 1
on a crash or a drift of a heap block or more (host: allocated blocks, see HOST_BLOCKS). A crashing
input is added to the target's corpus file, so the test sample replays it from then on.

    python bench/fuzz.py [--count N] [--seed S] [TARGET ...]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import zlib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "host"))

from loraspot.flash.mpy import compiled_firmware  # noqa: E402

FIRMWARE_TARGETS = ("mac", "join_accept", "downlink", "semtech", "chirpstack", "nmea", "config", "console", "paths")
# the host's parsers, in CPython (bench/fuzz_host.py)
HOST_TARGETS = ("semtech_server", "listen_mqtt", "recording", "recording_db", "inventory", "vendor_euis", "image",
                "keys", "console_host")
TARGETS = FIRMWARE_TARGETS + HOST_TARGETS
CORPUS = ROOT / "tests" / "data" / "fuzz"
HEAP = "112K"
BLOCK = 32  # bytes of a MicroPython heap block on this 64-bit port (16 on a 32-bit ESP32)
HOST_BLOCKS = 10  # CPython objects kept per 10,000 inputs: a leak of one per input would be 10,000


def corpus(target: str) -> list[str]:
    """Saved inputs of a target: one hex string per line, after it the error it raised (# ...); a
    large input (a whole file) is kept deflated, as 'z' and the hex of its zlib stream."""
    path = CORPUS / f"{target}.txt"
    if not path.exists():
        return []
    out = []
    for ln in path.read_text().splitlines():
        if ln.strip() and not ln.startswith("#"):
            word = ln.split()[0]
            out.append(zlib.decompress(bytes.fromhex(word[1:])).hex() if word.startswith("z") else word)
    return out


def _kind(error: str) -> str:
    """What makes two crashes the same for the corpus: the error without its numbers."""
    return re.sub(r"[0-9]+", "", error.split("#", 1)[-1].strip())[:60]


def run(target: str, seed: int, count: int, timeout: float = 3600) -> dict:
    """One target: a firmware parser in its own MicroPython process, or a host parser in a CPython
    process of its own; the report, with the figures."""
    if target in HOST_TARGETS:
        return run_host(target, seed, count, timeout)
    fw = compiled_firmware(ROOT / ".venv" / "mpy-cache")
    tests = compiled_firmware(ROOT / ".venv" / "mpy-cache", ROOT / "tests" / "firmware", "fwtests")
    exe = Path(sys.executable).with_name("micropython")
    sim = ROOT / "host" / "loraspot" / "sim" / "mp"  # _vflash: the flash files of the tests
    env = dict(os.environ, MICROPYPATH=os.pathsep.join([str(tests), str(fw), str(sim), ".frozen"]))
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


def run_host(target: str, seed: int, count: int, timeout: float = 3600) -> dict:
    code = ("import json, sys\nsys.path.insert(0, 'bench')\nimport fuzz_host\n"
            f"print(json.dumps(fuzz_host.run({target!r}, {seed}, {count}, "
            "[bytes.fromhex(h) for h in json.load(sys.stdin)])))")  # the corpus on stdin: inputs can be large
    proc = subprocess.run([sys.executable, "-c", code], input=json.dumps(corpus(target)), capture_output=True,
                          text=True, timeout=timeout, cwd=ROOT)
    if proc.returncode != 0 or not proc.stdout.strip():
        last = (proc.stderr.strip().splitlines() or ["?"])[-1]
        return {"target": target, "inputs": 0, "crash_count": 1, "resets": 1, "free": [], "ms": 1, "host": True,
                "crashes": [{"input": "", "error": f"the process died: {last}"}]}
    rep = json.loads(proc.stdout.strip().splitlines()[-1])
    rep["host"] = True
    # CPython's allocated blocks, not bytes: a slope from the samples after warm-up, like the firmware's
    rep["drift_per_10k"] = -drift(rep["free"][1:-1] if len(rep["free"]) > 3 else [])
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
    path = CORPUS / f"{target}.txt"
    # one input per kind of crash: the corpus stays small enough to replay in every test run
    kinds = {_kind(ln) for ln in path.read_text().splitlines() if "#" in ln} if path.exists() else set()
    lines = []
    for c in crashes:
        if c["input"] and _kind(c["error"]) not in kinds:
            kinds.add(_kind(c["error"]))
            data = bytes.fromhex(c["input"])
            word = "z" + zlib.compress(data, 9).hex() if len(data) > 2000 else c["input"]
            lines.append(f"{word}  # {c['error'][:100]}\n")
    if lines:
        CORPUS.mkdir(parents=True, exist_ok=True)
        with path.open("a") as f:
            f.writelines(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--count", type=int, default=100_000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("targets", nargs="*", default=list(TARGETS))
    a = ap.parse_args()
    bad = 0
    unknown = [t for t in a.targets if t not in TARGETS]
    if unknown:
        ap.error(f"unknown target {unknown[0]} (one of {', '.join(TARGETS)})")
    print(f"{'target':<15} {'inputs':>8} {'crashes':>7} {'resets':>6} {'inputs/s':>9} {'drift/10k':>12}")
    for t in a.targets:
        r = run(t, a.seed, a.count)
        save(t, r["crashes"])
        unit, limit = ("blocks", HOST_BLOCKS) if r.get("host") else ("B", BLOCK)
        print(f"{t:<15} {r['inputs']:>8} {r['crash_count']:>7} {r['resets']:>6} {r.get('per_s', 0):>9.0f} "
              f"{r.get('drift_per_10k', 0) + 0.0:>{11 - len(unit)}.1f} {unit}", flush=True)
        for c in r["crashes"][:3]:
            print(f"  {c['error']}  input {c['input'][:80]}")
        if r["crash_count"] or r.get("drift_per_10k", 0) >= limit:
            bad += 1
    print(f"fails on a crash, a reset, or a drift per 10,000 inputs of a heap block ({BLOCK} B) on the firmware's "
          f"MicroPython heap, or of {HOST_BLOCKS} of CPython's allocated blocks on the host (an object kept per "
          "1,000 inputs)")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
