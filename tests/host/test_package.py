"""The package as a stranger installs it: the wheel built from this tree, installed into a fresh
venv, run from a folder outside the checkout. The core install decodes frames and prints network
server settings; commands that need an optional part name it; with [sim] a virtual board runs
and answers `info`."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("package")]  # one worker builds the wheel once


def _env(tmp: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "LORASPOT_", "VIRTUAL_ENV"))}
    env.update(LORASPOT_RUNTIME_DIR=str(tmp / "run"), LORASPOT_CACHE=str(tmp / "cache"), COLUMNS="80",
               PATH=os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep) if ".venv" not in p))
    return env


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """(venv bin folder, wheel, outside folder): the wheel installed without extras."""
    tmp = tmp_path_factory.mktemp("pkg")
    # built from a copy: the build writes build/ and *.egg-info beside the sources
    src = tmp / "src"
    shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns(".venv", ".git", "build", "*.egg-info", "__pycache__",
                                                           ".pytest_cache", ".ruff_cache", ".benchmarks"))
    wheels = tmp / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(wheels), str(src)],
                   check=True, capture_output=True, timeout=300, cwd=tmp)
    wheel = next(wheels.glob("loraspot-*.whl"))
    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    subprocess.run([*pip, str(wheel)], check=True, capture_output=True, timeout=600, cwd=tmp, env=_env(tmp))
    outside = tmp / "elsewhere"
    outside.mkdir()
    return venv / "bin", wheel, outside


def _run(bin_dir: Path, outside: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([str(bin_dir / "loraspot"), *args], capture_output=True, text=True, timeout=timeout,
                          cwd=outside, env=_env(outside))


def test_the_wheel_carries_the_firmware_and_the_board_profiles(installed):
    _, wheel, _ = installed
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "loraspot/_data/firmware/main.py" in names and "loraspot/_data/firmware/spot/node.py" in names
    assert {f"loraspot/_data/boards/{p.name}" for p in (ROOT / "boards").glob("*.json")} <= names
    assert "loraspot/sim/mp/vboot.py" in names


def test_the_core_install_works_outside_the_checkout(installed):
    bin_dir, _, outside = installed
    where = subprocess.run([str(bin_dir / "python"), "-c", "import loraspot; print(loraspot.__file__)"],
                           capture_output=True, text=True, cwd=outside, env=_env(outside), check=True).stdout
    assert str(bin_dir.parent) in where  # the installed package, not the checkout
    proc = _run(bin_dir, outside, "--json", "decode", "40F17DBE49000300012A3518AF", "--nwkskey",
                "44024241ed4ce9a68c6a8bc055233fd3")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["dev_addr"] == "49BE7DF1"
    proc = _run(bin_dir, outside, "hotspot", "region", "--region", "EU868", "--sf", "9")
    assert proc.returncode == 0, proc.stderr
    assert "[[regions]]" in proc.stdout


def test_a_command_that_needs_an_extra_names_it(installed):
    bin_dir, _, outside = installed
    proc = _run(bin_dir, outside, "sim", "board", "--flash", str(outside / "b.bin"))
    assert proc.returncode == 2 and "loraspot[sim]" in proc.stderr and "Traceback" not in proc.stderr
    rec = outside / "m.jsonl"
    rec.write_text(json.dumps({"device": "a", "ev": "stats", "seq": 1, "t": 5, "data": {"heap_free": 9000},
                               "host_time": 1.0}) + "\n")
    proc = _run(bin_dir, outside, "report", str(rec), "--out", str(outside / "r.html"))
    assert proc.returncode == 2 and "loraspot[report]" in proc.stderr and "Traceback" not in proc.stderr


def test_with_sim_a_virtual_board_runs_and_answers_info(installed):
    bin_dir, wheel, outside = installed
    subprocess.run([str(bin_dir / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check",
                    f"{wheel}[sim]"], check=True, capture_output=True, timeout=600, cwd=outside, env=_env(outside))
    board = subprocess.Popen([str(bin_dir / "loraspot"), "--json", "sim", "board", "--flash", str(outside / "b.bin"),
                              "--no-pty"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=outside,
                             env=_env(outside))
    try:
        url = None
        assert board.stdout is not None
        for line in board.stdout:
            event = json.loads(line)
            if event.get("event") == "serving":
                url = event["url"]
                break
        assert url, board.stderr.read() if board.stderr else ""
        proc = _run(bin_dir, outside, "--json", "info", "--port", url)
        assert proc.returncode == 0, proc.stderr
        hello = json.loads(proc.stdout)["hello"]
        assert hello["board"] == "virtual" and hello["proto"] == 1
    finally:
        board.terminate()
        board.wait(30)
