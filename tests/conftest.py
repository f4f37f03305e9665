"""Shared fixtures, and the collector that runs tests/firmware/test_*.py under MicroPython
(-X heapsize=112K, like an ESP32 without PSRAM), one pytest item per test function."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from hypothesis import settings
from loraspot.flash.mpy import compiled_firmware

# Hypothesis's per-example deadline is wall time: on a loaded machine a slow example is not a
# failing one (the properties themselves are what the tests assert)
settings.register_profile("loraspot", deadline=None)
settings.load_profile("loraspot")

ROOT = Path(__file__).resolve().parents[1]
FIRMWARE_TESTS = ROOT / "tests" / "firmware"
HEAP = "112K"
# boards the tests make through the CLI compile the firmware into the checkout's cache, not ~/.cache
os.environ.setdefault("LORASPOT_CACHE", str(ROOT / ".venv"))


@pytest.fixture(scope="session")
def postgres_server():
    """One PostgreSQL server for the tests of a worker (tests/postgres.py), stopped at its end."""
    from tests.postgres import PostgresServer

    with PostgresServer() as pg:
        yield pg


@pytest.fixture(params=["sqlite", "postgresql"])
def store_target(request, tmp_path):
    """Where a store is made: an SQLite file, or a fresh database on the PostgreSQL server (each
    test that takes this runs against both)."""
    if request.param == "sqlite":
        return tmp_path / "store.sqlite"
    return request.getfixturevalue("postgres_server").new_database()


@pytest.fixture(params=["sqlite", "postgresql"])
def inventory(request, tmp_path):
    """Where a test's device inventory is: a file, or a fresh database on the PostgreSQL server
    (each test that takes this runs against both)."""
    if request.param == "sqlite":
        return tmp_path / "inv.sqlite"
    return request.getfixturevalue("postgres_server").new_database()


@pytest.fixture(autouse=True)
def _own_user_data(tmp_path, monkeypatch):
    """The default inventory of a test is its own, never the user's (~/.local/share/loraspot)."""
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "user-data"))


def micropython() -> str:
    exe = Path(sys.executable).with_name("micropython")
    return str(exe) if exe.exists() else "micropython"


def run_micropython(script: str | Path, *args: str, cwd: Path = FIRMWARE_TESTS, timeout: float = 300,
                    env: dict | None = None, heap: str = HEAP) -> subprocess.CompletedProcess:
    """Run a script under the unix port with the ESP32 heap limit and firmware on the path (a
    larger heap only for scripts that read a ROMFS image, flash on a board, into the heap)."""
    # the firmware as it is deployed: bytecode from mpy-cross (compiling source needs more heap)
    # (test modules and chip models too; cwd stays tests/firmware for the vector files)
    cache = ROOT / ".venv" / "mpy-cache"
    fw, tests = compiled_firmware(cache), compiled_firmware(cache, FIRMWARE_TESTS, "fwtests")
    path = os.pathsep.join([str(tests), str(fw), str(ROOT / "host/loraspot/sim/mp")])
    # the flash files a test makes (fwtest.RamFlash) go in a folder removed when the process ends
    with tempfile.TemporaryDirectory(prefix="fwtest-") as tmp:
        full_env = dict(os.environ, MICROPYPATH=path + os.pathsep + ".frozen", FWTEST_TMP=tmp, **(env or {}))
        return subprocess.run([micropython(), "-X", f"heapsize={heap}", str(script), *args], cwd=cwd,
                              capture_output=True, text=True, timeout=timeout, env=full_env)


def firmware_env(with_sim: bool = True) -> dict:
    """Environment for a MicroPython process that imports the firmware as deployed (bytecode)."""
    parts = [str(compiled_firmware(ROOT / ".venv" / "mpy-cache"))]
    if with_sim:
        parts.append(str(ROOT / "host/loraspot/sim/mp"))
    return dict(os.environ, MICROPYPATH=os.pathsep.join([*parts, ".frozen"]))


def run_firmware_json(script: str, data: object, timeout: float = 120) -> object:
    """Run `script` (source) under MicroPython with the heap limit, JSON `data` on stdin; return
    the JSON it prints last."""
    import json

    proc = subprocess.run([micropython(), "-X", f"heapsize={HEAP}", "-c", script], input=json.dumps(data),
                          capture_output=True, text=True, env=firmware_env(False), cwd=FIRMWARE_TESTS,
                          timeout=timeout)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


class FirmwareFailure(Exception):
    pass


# Test modules that run a role's code loaded into the heap from files, as a stock image loads it
# from littlefs: they get the heap that role is measured to hold that way plus its headroom
# (loraspot.budget), not the 112 KB of a hotspot on the virtual board's ROMFS image. The LoRaWAN
# stack's own tests load the node's largest modules (stack, mac, join, region) the same way: at
# 112 KB they passed only down to 108 KB, so the conservative GC's view of the C stack decided
# whether a run failed (it did once in CI, as a MemoryError in _node()).
ROLE_MODULES = {"test_node": "node", "test_node_faults": "node", "test_lorawan_stack": "node",
                "test_hotspot_mqtt": "hotspot-mqtt"}


# The self-test runs in a test boot, where no role is loaded and Wi-Fi is off: the smallest heap a
# real board gives then (its profile's no_wifi budget), with the chip and bus models beside it.
NO_ROLE_MODULES = ("test_selftest",)


def module_heap(stem: str) -> str:
    if stem in NO_ROLE_MODULES:
        from loraspot import boards

        real = [p for p in boards.all_boards().values() if not p["image"].get("placeholder")]
        return f"{min(p['memory']['heap_kb']['no_wifi'] for p in real)}K"
    role = ROLE_MODULES.get(stem)
    if role is None:
        return HEAP
    from loraspot import budget

    return f"{budget.NEED_KB[(role, 'littlefs')] + budget.HEADROOM_KB}K"


class FirmwareModule(pytest.File):
    def collect(self):
        names = re.findall(r"^def (test_\w+)\(", self.path.read_text(), re.M)
        for name in names:
            yield FirmwareItem.from_parent(self, name=name)

    def result(self, name: str) -> tuple[str, str]:
        """One test function in an interpreter of its own: it starts with the board's fresh heap, as
        on a board, not with what the tests before it left (module set-up and teardown_module run
        around it)."""
        proc = run_micropython(ROOT / "tests" / "mp_runner.py", self.path.stem, name, heap=module_heap(self.path.stem))
        return parse_runner_output(proc.stdout + proc.stderr, [name], proc.returncode)[name]


def parse_runner_output(text: str, names: list[str], returncode: int) -> dict[str, tuple[str, str]]:
    results: dict[str, tuple[str, str]] = {}
    current, lines = None, []
    for line in text.splitlines():
        m = re.match(r"@@(START|TRACEBACK|RESULT) (\w+)(?: (\w+))?$", line)
        if not m:
            lines.append(line)
            continue
        kind, name, status = m.groups()
        if kind == "START":
            current, lines = name, []
        elif kind == "RESULT":
            results[name] = (status, "\n".join(lines).strip())
            current, lines = None, []
    tail = "\n".join(lines).strip()
    for name in names:
        if name not in results:
            why = f"interpreter exited ({returncode}) before reporting" if name == current or current is None else \
                "not reached"
            results[name] = ("CRASH", f"{why}\n{tail}")
    return results


class FirmwareItem(pytest.Item):
    def runtest(self):
        assert isinstance(self.parent, FirmwareModule)
        status, output = self.parent.result(self.name)
        if status != "PASS":
            raise FirmwareFailure(f"{status}\n{output}")

    def repr_failure(self, excinfo):
        if isinstance(excinfo.value, FirmwareFailure):
            return f"MicroPython ({module_heap(self.path.stem)} heap) {self.name}: {excinfo.value}"
        return super().repr_failure(excinfo)

    def reportinfo(self):
        return self.path, 0, f"[micropython] {self.name}"


def pytest_pycollect_makemodule(module_path: Path, parent):
    # Firmware test modules are MicroPython code: collected by running them, never imported here.
    if module_path.parent == FIRMWARE_TESTS:
        return FirmwareModule.from_parent(parent, path=module_path)
    return None
