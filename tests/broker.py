"""A real MQTT broker on loopback for a test.

Debian's Mosquitto when it is installed (`make test` installs it when run as root, as CI does);
otherwise amqtt from PyPI, which `make test` installs into a venv of its own (`.venv/broker`, its
pinned dependencies would clash with the tool's). Both keep a persistent session's subscriptions
across a restart, as a production broker does; neither is ever skipped silently.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

from loraspot.sim.parts import free_port  # a broker brought back binds its port again

AMQTT = Path(sys.prefix) / "broker" / "bin" / "amqtt"


def mosquitto_exe() -> str | None:
    exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    return exe if Path(exe).exists() else None


def kinds() -> list[str]:
    """The brokers this machine has, Mosquitto first."""
    return [k for k, ok in (("mosquitto", mosquitto_exe()), ("amqtt", AMQTT.exists())) if ok]


class Broker:
    def __init__(self, workdir: Path, port: int | None = None, kind: str | None = None):
        have = kinds()
        kind = kind or os.environ.get("LORASPOT_TEST_BROKER") or (have[0] if have else "mosquitto")
        if kind not in have:
            raise RuntimeError(f"no {kind} broker here: `make test` installs one (Debian's mosquitto as root, "
                               f"else amqtt into {AMQTT.parent.parent})")
        self.kind = kind
        self.port = port or free_port()
        if kind == "mosquitto":
            conf = workdir / "mosquitto.conf"
            # sessions and queued QoS 1 messages are saved on shutdown and restored on start; started
            # as root, mosquitto would drop to its own user, which cannot write into a test's folder
            conf.write_text(f"listener {self.port} 127.0.0.1\nallow_anonymous true\npersistence true\n"
                            f"persistence_location {workdir}/\nuser {pwd.getpwuid(os.geteuid()).pw_name}\n")
            self.argv = [str(mosquitto_exe()), "-c", str(conf)]
        else:
            conf = workdir / "amqtt.yaml"
            # amqtt's session plugin (amqtt/contrib/persistence.py) restores persistent sessions and
            # their subscriptions on start; kept when the broker stops
            conf.write_text("listeners:\n  default:\n    type: tcp\n"
                            f"    bind: 127.0.0.1:{self.port}\n"
                            "plugins:\n  amqtt.plugins.authentication.AnonymousAuthPlugin:\n"
                            "    allow_anonymous: true\n  amqtt.contrib.persistence.SessionDBPlugin:\n"
                            f"    connection: sqlite+aiosqlite:///{workdir}/amqtt.db\n"
                            "    clear_on_shutdown: false\n")
            self.argv = [str(AMQTT), "-c", str(conf)]
        self.log = workdir / f"{kind}.log"  # a file, never a pipe: a chatty broker would fill a pipe and stall
        self.proc: subprocess.Popen | None = None
        self.start()

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def start(self) -> None:
        restored = self._restored()
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(self.argv, stdout=subprocess.DEVNULL, stderr=log)
        end = time.monotonic() + 20
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.kind} did not start: {self.log.read_text()[-2000:]}")
            if self._ready(restored):
                return
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"{self.kind} did not open its port")

    def _restored(self) -> int:
        """How many times amqtt has said it restored its sessions (one line per start)."""
        return self.log.read_text(errors="replace").count("Restored ") if self.log.exists() else 0

    def _ready(self, restored: int) -> bool:
        # amqtt opens its port before its session plugin restores the persistent sessions
        # (amqtt/broker.py: _start_listeners, then the POST_START event): a message published in
        # between finds no subscriber and is dropped. It is ready once it says it restored them.
        # Mosquitto restores its persistence file before it listens.
        if self.kind == "amqtt" and self._restored() <= restored:
            return False
        try:
            socket.create_connection(("127.0.0.1", self.port), 0.2).close()
            return True
        except OSError:
            return False

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.proc = None
