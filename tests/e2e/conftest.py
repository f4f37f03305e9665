"""Virtual boards for end-to-end tests: started in-process, torn down with their firmware."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest
import serial
from loraspot import boards, device
from loraspot.flash import image
from loraspot.flash.mpy import compiled_firmware
from loraspot.sim.vboard import BoardOptions, VirtualBoard

ROOT = Path(__file__).resolve().parents[2]


def bytecode_image(path: Path, main: bytes, extra: dict[str, bytes] | None = None, board: str = "virtual") -> Path:
    """A flash image with the firmware library as bytecode (as `loraspot flash` ships it) and the
    given main.py (plus extra files)."""
    profile = boards.get(board)
    files = image.app_files(profile, mpy_dir=compiled_firmware(ROOT / ".venv" / "mpy-cache"))
    files["main.py"] = main
    files.update(extra or {})
    image.create_flash_image(path, profile, files)
    return path


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

    def read_result(self, timeout: float = 30) -> dict:
        """The JSON of the first `RESULT {...}` line a test main.py prints (it repeats it, as output
        before the serial port is opened is lost); AssertionError with what was seen when none comes."""
        seen: list[str] = []
        with serial.serial_for_url(self.info["url"], 115200, timeout=0.5) as port:
            end = time.monotonic() + timeout
            while time.monotonic() < end:
                line = port.readline().decode(errors="replace").strip()
                if line.startswith("RESULT "):
                    return json.loads(line[7:])
                if line and len(seen) < 50:
                    seen.append(line)
        raise AssertionError(f"no RESULT line: {seen} {self.status}")

    def wait_app(self) -> dict:
        """Wait until the firmware's app answers on its console (its hello). Only from then on does
        a Ctrl-C on the line interrupt it: main.py keeps interrupts off until spot.app has read the
        lock (docs/security.md), and a Ctrl-C before that is data, as on a board. mpremote reads a
        pty with no timeout, so a Ctrl-C lost that way would leave it waiting for ever."""
        client, hello = self.connect(attempts=12)
        client.close()
        return hello

    def backlog(self, seconds: float = 2.0) -> str:
        """What the board printed that nobody read yet (its last 4,000 characters), to explain a
        failure."""
        got = bytearray()
        with serial.serial_for_url(self.info["url"], 115200, timeout=0.2) as port:
            end = time.monotonic() + seconds
            while time.monotonic() < end:
                got += port.read(4096)
        return got.decode(errors="replace")[-4000:]

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


@pytest.fixture
def production_locked(make_board, tmp_path, request, monkeypatch):
    """A node provisioned and locked in production mode, as `loraspot lock --production` leaves it:
    (harness, url, [AppKey, admin key], inventory)."""
    from loraspot.cli.main import main
    from loraspot.provision import provision
    from loraspot.provision.inventory import Inventory
    from loraspot.sim.medium import Medium

    monkeypatch.setenv("LORASPOT_MASTER_KEY", "5a" * 32)
    inv = tmp_path / "inv.sqlite"
    medium = Medium().__enter__()  # the node role needs a radio when it restarts
    request.addfinalizer(lambda: medium.__exit__(None, None, None))
    h = make_board(medium=medium.address)
    url = h.info["url"]
    assert provision.provision_many([url], provision.Options(role="node", reboot=False), inv)[0].ok
    with Inventory(inv) as db:
        dev = db.devices()[0]
        secrets = [db.secret(dev.dev_eui, kind) for kind in ("app_key", "admin_key")]
    assert main(["lock", "--port", url, "--production", "--inventory", str(inv)]) == 0
    return h, url, secrets, inv
