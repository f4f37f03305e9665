"""README.md's "first network" walk, run line by line as printed there: two blank virtual boards
flashed, one provisioned as hotspot, `listen` started, then one provisioned as node (on the plan
the hotspot hears, its key taken by `listen` from the growing inventory), until `listen` shows
the node's decoded sensor readings.

The only changes to the lines: the `.venv/bin/loraspot` of the checkout is this interpreter's,
every port number is swapped for a free one (tests run side by side), and the inventory is the
test's own (XDG_DATA_HOME). A line ending in `&` runs in the background; the next line starts when
it has printed its first line, as a user waits for "serving on" before going on."""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from tests.broker import free_port
from tests.conftest import ROOT

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

MARK = "<!-- first-network:"
PORT = re.compile(r"(?<=:)(\d{4,5})\b|(?<=-port )(\d{4,5})\b")


def readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    assert MARK in text, "README.md lost its first-network walk"
    block = text.split(MARK, 1)[1].split("```sh\n", 1)[1].split("```", 1)[0]
    return [line for line in block.splitlines() if line.strip()]


def _split(line: str) -> tuple[list[str], bool]:
    argv = shlex.split(line, comments=True)
    background = argv[-1] == "&"
    return (argv[:-1] if background else argv), background


class Background:
    """A command left running: its output collected line by line."""

    def __init__(self, argv: list[str], cwd: Path, env: dict):
        self.proc = subprocess.Popen(argv, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     text=True, start_new_session=True)
        self.lines: list[str] = []
        self.changed = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with self.changed:
                self.lines.append(line.rstrip("\n"))
                self.changed.notify_all()
        with self.changed:
            self.changed.notify_all()

    def wait_for(self, pred, timeout: float) -> bool:
        with self.changed:
            return self.changed.wait_for(lambda: pred(self.lines) or self.proc.poll() is not None, timeout) and \
                pred(self.lines)

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGINT)  # Ctrl-C, as the README says
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


def test_the_readme_walk_ends_in_decoded_uplinks(tmp_path):
    lines = readme_commands()
    ports: dict[str, str] = {}

    def swap(m: re.Match) -> str:
        n = m.group(0)
        return ports.setdefault(n, str(free_port()))

    exe = str(Path(sys.executable).parent / "loraspot")
    env = {k: v for k, v in os.environ.items() if k != "LORASPOT_MASTER_KEY"}
    env["XDG_DATA_HOME"] = str(tmp_path / "data")
    background: list[Background] = []
    transcript: list[str] = []
    try:
        for line in lines:
            argv, in_background = _split(PORT.sub(swap, line))
            assert argv[0] == ".venv/bin/loraspot", line
            argv[0] = exe
            transcript.append("$ " + shlex.join(argv))
            if in_background:
                job = Background(argv, tmp_path, env)
                background.append(job)
                assert job.wait_for(lambda out: len(out) >= 1, 60), (line, job.lines)
                transcript += job.lines
            else:
                done = subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=180)
                transcript += [done.stdout, done.stderr]
                assert done.returncode == 0, "\n".join(transcript)
        listen = next(job for job in background if "listen" in job.proc.args)

        def uplink(out: list[str]) -> bool:
            return any("type=uplink" in s and "values=temperature=" in s for s in out)

        assert listen.wait_for(uplink, 120), "\n".join(transcript + [f"[{' '.join(job.proc.args[1:4])}]\n" +
                                                                   "\n".join(job.lines) for job in background])
    finally:
        for job in reversed(background):
            job.stop()
    joins = [s for s in listen.lines if "type=join" in s and "error" not in s]
    node_eui = joins[0].split()[0].split("=")[1]
    assert any(s.startswith(f"device={node_eui}") and "type=uplink" in s for s in listen.lines)
    assert not any("unknown DevEUI" in s for s in listen.lines), listen.lines
    # the plan the node got: the hotspot's one channel, said in words
    assert "plan: SINGLE on 868.1 MHz SF7" in "\n".join(transcript)
