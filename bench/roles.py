"""Each role's heap against each board's budget (issue "Real boards, part 1"): what the node and the
hotspot hold while running on the virtual board (64-bit unix port; library loaded from littlefs or
run in place from ROMFS), the same role's modules imported from .mpy files on the 64-bit unix port
and on MicroPython's 32-bit WebAssembly port, and the margin each board's budget leaves.

The WebAssembly port has no ROMFS, uses double floats, grows its heap and has more features built in
than an ESP32 image: its figure is for code loaded from files, and only the modules that run without
the hardware (`machine`, and the radio layer) are imported on both ports. `cryptolib` (absent there) is stood in for by
an empty class of the same name (its own heap left out of the figure)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "host"))
sys.path.insert(0, str(ROOT))

from loraspot import boards, budget  # noqa: E402
from loraspot.flash.mpy import compiled_firmware  # noqa: E402

NPM_PACKAGE = "@micropython/micropython-webassembly-pyscript@1.27.0"
NPM_DIR = ROOT / ".venv" / "npm"
COMMON = ["asyncio", "spot", "spot.clock", "spot.codec", "spot.console", "spot.config", "spot.atomic",
          "spot.crashlog", "spot.lorawan", "spot.lorawan.region"]
MODULES = {
    "node": [*COMMON, "spot.lpp", "spot.node", "spot.lorawan.crypto", "spot.lorawan.frame", "spot.lorawan.mac",
                      "spot.lorawan.dutycycle", "spot.lorawan.store", "spot.lorawan.stack", "spot.sensors",
                      "spot.sensors.bme280", "spot.sensors.gps", "spot.sensors.battery"],
    "hotspot-udp": [*COMMON, "spot.hotspot.backlog", "spot.hotspot.tmst", "spot.hotspot.jit",
                             "spot.hotspot.semtech", "spot.hotspot.core", "spot.hotspot.udp"],
    "hotspot-mqtt": [*COMMON, "spot.hotspot.backlog", "spot.hotspot.tmst", "spot.hotspot.jit",
                              "spot.hotspot.semtech", "spot.hotspot.core", "spot.mqttc",
                              "spot.hotspot.mqtt"],
}
STUB = "class aes:\n    def __init__(self, key, mode, iv=None):\n        pass\n"
UNIX_SCRIPT = """
import gc
gc.collect(); base = gc.mem_alloc()
for m in MODS.split(","):
    __import__(m)
    gc.collect()
print("TOTAL", gc.mem_alloc() - base)
"""


def _libdir(tmp: Path, stub: bool) -> Path:
    lib = tmp / ("lib-stub" if stub else "lib")
    shutil.copytree(compiled_firmware(ROOT / ".venv" / "mpy-cache"), lib)
    if stub:
        (lib / "cryptolib.py").write_text(STUB)
    return lib


def wasm_ready() -> bool:
    """The WebAssembly port, installed under .venv/npm on first use (npm); False without node/npm."""
    if (NPM_DIR / "node_modules" / "@micropython" / "micropython-webassembly-pyscript").is_dir():
        return True
    if not shutil.which("npm") or not shutil.which("node"):
        return False
    NPM_DIR.mkdir(parents=True, exist_ok=True)
    r = subprocess.run(["npm", "install", "--prefix", str(NPM_DIR), "--no-audit", "--no-fund", NPM_PACKAGE],
                       capture_output=True, text=True, timeout=300)
    return r.returncode == 0


def _total(out: str) -> int | None:
    for line in out.splitlines():
        if line.startswith("TOTAL "):
            return int(line.split()[1])
    return None


def modules_32(lib: Path, mods: list[str]) -> int | None:
    script = NPM_DIR / "wasm_modules.mjs"  # beside node_modules, so that node resolves the package
    shutil.copy(ROOT / "bench" / "wasm_modules.mjs", script)
    r = subprocess.run(["node", str(script), str(lib), ",".join(["cryptolib", *mods])], capture_output=True,
                       text=True, timeout=120)
    total = _total(r.stdout)
    stub = next((int(x.split()[1]) for x in r.stdout.splitlines() if x.startswith("cryptolib ")), 0)
    return None if total is None else total - stub


def modules_64(lib: Path, mods: list[str]) -> int | None:
    exe = Path(sys.executable).with_name("micropython")
    # given with -c (this unix build stops with "uncaught NLR" importing this many .mpy modules from
    # a script file; the same imports from -c run)
    code = f"MODS = {','.join(mods)!r}" + UNIX_SCRIPT
    r = subprocess.run([str(exe), "-X", "heapsize=4M", "-c", code], capture_output=True, text=True, timeout=120,
                       cwd=lib.parent, env={"MICROPYPATH": f"{lib}:.frozen"})
    return _total(r.stdout)


def running_needs() -> dict[tuple[str, str], float]:
    """KB each role holds while running on the virtual board (the measurements NEED_KB records)."""
    import heap
    import node

    out: dict[tuple[str, str], float] = {}
    for code, kb in (("littlefs", 256), ("romfs", 152)):
        used = node.node_heap(code == "romfs", kb)
        if used is not None:
            out[("node", code)] = used / 1024
    for backhaul in ("udp", "mqtt"):
        for code, kb in (("littlefs", 256), ("romfs", 112)):
            held = heap.live_hotspot_held(backhaul, romfs=code == "romfs", heap_kb=kb)
            out[(f"hotspot-{backhaul}", code)] = held / 1024
    return out


def main() -> None:
    with tempfile.TemporaryDirectory() as d:
        lib, lib_stub = _libdir(Path(d), False), _libdir(Path(d), True)
        wasm = wasm_ready()
        print("modules of each role imported from .mpy files (hardware modules left out):")
        for role, mods in MODULES.items():
            m64 = modules_64(lib, mods)
            m32 = modules_32(lib_stub, mods) if wasm else None
            ratio = f", 32-bit/64-bit {m32 / m64:.2f}" if m32 and m64 else ""
            why = "they need `socket`, which that port lacks" if wasm else "no node/npm here"
            print(f"  {role}: {m64 / 1024:.1f} KB on the 64-bit unix port (measured), "
                  + (f"{m32 / 1024:.1f} KB on the 32-bit WebAssembly port (measured){ratio}" if m32 else
                     f"32-bit WebAssembly port: not measured ({why})"))
    needs = running_needs()
    print("heap each role holds once running on the virtual board (64-bit unix port, measured), and the")
    print("smallest heap it runs in (NEED_KB: its start needs more than it then holds):")
    for key, kb in sorted(needs.items()):
        where = "in ROMFS" if key[1] == "romfs" else "loaded from littlefs"
        print(f"  {key[0]}, library {where}: holds {kb:.1f} KB, runs in {budget.NEED_KB[key]} KB "
              f"(ratio {kb / budget.NEED_KB[key]:.2f})")
    print(f"budgets (docs/boards.md, estimates) less NEED_KB (a role fits with >= {budget.HEADROOM_KB} KB left):")
    for bid, p in boards.all_boards().items():
        cells = []
        for role, backhaul in (("node", None), ("hotspot", "udp"), ("hotspot", "mqtt")):
            f = budget.fit(p, role, backhaul)
            cells.append(f"{f.role} {f.budget_kb}-{f.need_kb}={f.margin_kb:+d} KB "
                         f"{'fits' if f.fits else 'refused'} (ratio {f.need_kb / f.budget_kb:.2f})")
        lib = "ROMFS" if "romfs" in p["flash"]["partitions"] else "littlefs"
        print(f"  {bid} ({p['image']['name']}, library in {lib}): " + "; ".join(cells))
    if "--json" in sys.argv:
        print(json.dumps({f"{r}/{c}": round(v, 1) for (r, c), v in needs.items()}))


if __name__ == "__main__":
    main()
