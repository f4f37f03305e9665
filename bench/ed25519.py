"""Signing on the board (issue "Coverage proofs, part 1"): Ed25519 and SHA-512 in Python
(spot.ed25519, spot.sha512), timed on the unix port (64-bit, at the board's heap) and on the 32-bit
WebAssembly port (npm @micropython/micropython-webassembly-pyscript, run by Node), and estimated
for a stock ESP32 at 160 MHz from measured ratios.

The estimate: both ports also run Pystone 1.2 (micropython-lib's pystone_lowmem, from PyPI: the
program behind published ESP32 figures), and the ESP32's published scores are scaled to 160 MHz.
ESP32 (MicroPython esp32 port, 240 MHz, pystone_lowmem, 500 passes): 1602 and 1661 pystones/s with
v1.12 (micropython/micropython issues #6565 and #5673), 1014 with v1.13-126 (issue #6565);
times 160/240 that is 676..1107 pystones/s. An ESP32's signature then takes the 32-bit port's time
times (its pystones / the ESP32's): a range, as the two figures differ. The 32-bit port is the
model for big integers (MicroPython's mpz uses 16-bit digits on 32-bit ports, as on the ESP32).

Heap: the smallest interpreter heap (unix port, 1 KB steps) in which the modules load and a
signature and a verification run, beside the smallest in which the interpreter starts; the
WebAssembly port's heap grows by itself and is not bounded here.

Prints one JSON line per figure, then the summary. Run by `make bench`."""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "host"))
sys.path.insert(0, str(ROOT))

from loraspot.flash.mpy import compiled_firmware  # noqa: E402

from bench.roles import NPM_DIR, wasm_ready  # noqa: E402

CACHE = ROOT / ".venv" / "bench-cache"
PYSTONE_URL = ("https://files.pythonhosted.org/packages/2b/e9/cd38fe0fe0024193e6b8132b8c370c28ccd4bd8fae92dd5ae3b54d08768f/"
               "micropython-pystone_lowmem-3.4.2-4.tar.gz")
PYSTONE_SHA256 = "3d5cd43a7b21539d55ad5de85a273c4c4025296a78525774b1583e22b6cd1c5c"
ESP32_PYSTONES_160 = (1014 * 160 / 240, 1661 * 160 / 240)
PASSES = 20000

TIMING = """
import gc, json, time
from spot import ed25519
from spot.sha512 import sha512
sk = bytes(range(32))
pk = ed25519.public_key(sk)
msg = bytes(range(200))  # a batch header is about this long
sig = ed25519.sign(sk, msg, pk)
def median_us(f, n):
    ts = []
    for _ in range(n):
        t0 = time.ticks_us()
        f()
        ts.append(time.ticks_diff(time.ticks_us(), t0))
    ts.sort()
    return ts[n // 2]
print(json.dumps({"sign_us": median_us(lambda: ed25519.sign(sk, msg, pk), 5),
                  "verify_us": median_us(lambda: ed25519.verify(pk, msg, sig), 5),
                  "keygen_us": median_us(lambda: ed25519.public_key(sk), 3),
                  "sha512_200B_us": median_us(lambda: sha512(msg).digest(), 20)}))
"""
PASS = """
from spot import ed25519
sk = bytes(range(32))
pk = ed25519.public_key(sk)
assert ed25519.verify(pk, b"x" * 200, ed25519.sign(sk, b"x" * 200, pk))
print("ok")
"""
PYSTONE = "import pystone_lowmem\npystone_lowmem.main(%d)\n" % PASSES


def micropython() -> str:
    exe = Path(sys.executable).with_name("micropython")
    return str(exe) if exe.exists() else "micropython"


def _unix(script: str, heap_kb: int, path: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, MICROPYPATH=path)
    return subprocess.run([micropython(), "-X", f"heapsize={heap_kb}K", "-c", script], capture_output=True,
                          text=True, env=env, timeout=600)


def _smallest_heap(script: str, path: str, hi: int = 112) -> int:
    lo = 1
    while lo < hi:
        mid = (lo + hi) // 2
        if _unix(script, mid, path).returncode == 0:
            hi = mid
        else:
            lo = mid + 1
    return lo


def pystone_file() -> Path:
    out = CACHE / "pystone_lowmem.py"
    if not out.exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        data = urllib.request.urlopen(PYSTONE_URL, timeout=60).read()
        if hashlib.sha256(data).hexdigest() != PYSTONE_SHA256:
            raise SystemExit("pystone_lowmem: the download does not have the expected SHA-256")
        with tarfile.open(fileobj=io.BytesIO(data)) as t:
            member = t.extractfile("micropython-pystone_lowmem-3.4.2-4/pystone_lowmem.py")
            assert member is not None
            out.write_bytes(member.read())
    return out


def _pystones(text: str) -> float:
    for line in text.splitlines():
        if "pystones/second" in line:
            return float(line.split("at")[1].split()[0])
    raise ValueError(f"no Pystone figure in {text!r}")


NODE = """
import { loadMicroPython } from "%s";
import { readFileSync } from "node:fs";
const lines = [];
const mp = await loadMicroPython({ stdout: (l) => lines.push(l), linebuffer: true });
const files = JSON.parse(readFileSync(0, "utf8"));
mp.FS.mkdir("/spot");
for (const [name, text] of Object.entries(files.modules)) mp.FS.writeFile(name, text);
for (const script of files.scripts) mp.runPython(script);
process.stdout.write(lines.join("\\n") + "\\n");
"""


def wasm_run(scripts: list[str]) -> list[str]:
    """The scripts' output under the WebAssembly port, with spot.sha512, spot.ed25519 and Pystone
    as source files in its filesystem."""
    mjs = NPM_DIR / "node_modules/@micropython/micropython-webassembly-pyscript/micropython.mjs"
    fw = ROOT / "firmware" / "spot"
    modules = {"/spot/__init__.py": "", "/spot/sha512.py": (fw / "sha512.py").read_text(),
               "/spot/ed25519.py": (fw / "ed25519.py").read_text(), "/pystone_lowmem.py": pystone_file().read_text()}
    script = NPM_DIR / "ed25519.mjs"
    script.write_text(NODE % mjs.as_posix())
    out = subprocess.run(["node", str(script)], input=json.dumps({"modules": modules, "scripts": scripts}),
                         capture_output=True, text=True, timeout=900, check=True)
    return out.stdout.splitlines()


def main() -> None:
    fw = compiled_firmware(ROOT / ".venv" / "mpy-cache")
    path = os.pathsep.join([str(fw), str(pystone_file().parent)])
    res = _unix(TIMING, 112, path)
    if res.returncode:
        raise SystemExit(res.stderr)
    unix = json.loads(res.stdout.splitlines()[-1])
    unix["pystones"] = _pystones(_unix(PYSTONE, 112, path).stdout)
    unix["heap_pass_kb"] = _smallest_heap(PASS, path)
    unix["heap_empty_kb"] = _smallest_heap('print("ok")', path)
    print(json.dumps({"port": "unix (64-bit, heap 112 KB)", **unix}))
    if not wasm_ready():
        print(json.dumps({"port": "webassembly", "skipped": "node and npm are not installed"}))
        return
    lines = wasm_run([TIMING, PYSTONE])
    wasm = json.loads(next(x for x in lines if x.startswith("{")))
    wasm["pystones"] = _pystones("\n".join(lines))
    print(json.dumps({"port": "webassembly (32-bit, Node)", **wasm}))
    lo, hi = (wasm["pystones"] / p for p in reversed(ESP32_PYSTONES_160))
    est = {k: [round(wasm[k] * lo / 1000), round(wasm[k] * hi / 1000)] for k in ("sign_us", "verify_us", "keygen_us")}
    print(json.dumps({"port": "ESP32 at 160 MHz (estimate)", "pystones": [round(p) for p in ESP32_PYSTONES_160],
                      "slower_than_wasm": [round(lo, 1), round(hi, 1)],
                      **{k.replace("_us", "_ms"): v for k, v in est.items()}}))
    for op in ("sign", "verify"):
        k = op + "_us"
        print(f"{op}: unix {unix[k] / 1000:.1f} ms, wasm {wasm[k] / 1000:.1f} ms, "
              f"ESP32@160 about {est[k][0]}..{est[k][1]} ms")
    print(f"heap for a signing pass (unix): {unix['heap_pass_kb'] - unix['heap_empty_kb']} KB beyond an empty "
          f"interpreter's {unix['heap_empty_kb']} KB")


if __name__ == "__main__":
    main()
