"""Virtual boards for end-to-end tests: started in-process, torn down with their firmware."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from loraspot import device
from loraspot.sim.vboard import BoardOptions, VirtualBoard


class Harness:
    """A running virtual board plus the status events it reported."""

    def __init__(self, opts: BoardOptions):
        self.status: list[dict] = []
        self._cond = threading.Condition()
        self.board = VirtualBoard(opts, self._on_status)
        self.info = self.board.start()

    def _on_status(self, s: dict) -> None:
        with self._cond:
            self.status.append(s)
            self._cond.notify_all()

    def wait_status(self, event: str, count: int = 1, timeout: float = 20) -> dict:
        with self._cond:
            ok = self._cond.wait_for(lambda: sum(s["event"] == event for s in self.status) >= count, timeout)
        if not ok:
            raise TimeoutError(f"no '{event}' status #{count}: {self.status}")
        return [s for s in self.status if s["event"] == event][count - 1]

    def connect(self, via: str = "url", baud: int = 115200, **kw):
        return device.connect(self.info[via], baud, **kw)

    def stop(self) -> None:
        self.board.stop()


@pytest.fixture(autouse=True)
def _runtime_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("LORASPOT_RUNTIME_DIR", str(tmp_path / "run"))


@pytest.fixture
def make_board(tmp_path):
    started: list[Harness] = []

    def make(flash: Path | None = None, **kw) -> Harness:
        opts = BoardOptions(flash=flash or tmp_path / f"flash{len(started)}.bin", **kw)
        h = Harness(opts)
        started.append(h)
        return h

    yield make
    for h in started:
        h.stop()


@pytest.fixture
def board(make_board):
    return make_board()
