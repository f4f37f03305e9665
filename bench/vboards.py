"""Virtual boards for the benchmarks, each in a process of its own (`loraspot sim board`)."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path


class Board:
    def __init__(self, flash: Path, *extra: str):
        cmd = [sys.executable, "-m", "loraspot.cli", "--json", "sim", "board", "--flash", str(flash), *extra]
        self.p = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
        assert self.p.stdout
        self.info = json.loads(self.p.stdout.readline())
        threading.Thread(target=self.p.stdout.read, daemon=True).start()

    def stop(self) -> None:
        self.p.terminate()
        self.p.wait(10)
