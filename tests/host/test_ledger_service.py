"""The ledger service (`loraspot ledger serve`): batches uploaded over HTTP as a board sends them
are taken in order, refused with their reason (a replay's answer tells the board it was taken
before), bad bodies get a one-line answer and the service goes on; the CLI's serve prints a line per
batch and stops on Ctrl-C without a traceback."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from loraspot.proofs.ledger import Ledger
from loraspot.proofs.service import LedgerService

from tests.broker import free_port
from tests.host.test_ledger import EUI, _chain, _pub


def _ctrl_c_stops() -> None:
    """In the child before it runs: Ctrl-C (SIGINT) as a terminal gives it, whatever this process
    inherited (a shell running a job in the background ignores SIGINT for it, and that is passed on)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _wire(batch) -> bytes:
    return batch.header.encode() + batch.signature + b"".join(r.encode() for r in batch.records)


def _post(port: int, body: bytes, path: str = "/batches") -> tuple[int, dict]:
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=body, method="POST",
                                 headers={"Content-Type": "application/octet-stream"})
    try:
        with urllib.request.urlopen(req, timeout=20) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


@pytest.fixture
def service(store_target):
    key = Ed25519PrivateKey.generate()
    with Ledger(store_target) as led:
        led.add_gateway(EUI.hex(), _pub(key).hex())
    with LedgerService(store_target, port=0).start() as s:
        yield s, key


def test_two_services_on_one_postgresql_ledger_take_each_batch_once(postgres_server):
    """Two ledger services (two stations) on one PostgreSQL ledger, four gateways: every batch is
    posted to both services at once, from threads: each is taken exactly once, the other copy
    refused as replayed, and every chain ends whole, in order."""
    from concurrent.futures import ThreadPoolExecutor

    url = postgres_server.new_database()
    gateways = [(bytes.fromhex(f"024C53FFFE0000{i:02X}"), Ed25519PrivateKey.generate()) for i in range(4)]
    chains = {}
    with Ledger(url) as led:
        for eui, key in gateways:
            led.add_gateway(eui.hex(), _pub(key).hex())
            chains[eui] = _chain(key, [2] * 8, eui)[0]
    with LedgerService(url, port=0).start() as a, LedgerService(url, port=0).start() as b:
        ports = (a.address[1], b.address[1])

        def upload(eui: bytes) -> list[tuple[int, str]]:
            out = []
            with ThreadPoolExecutor(2) as pool:
                for batch in chains[eui]:
                    got = list(pool.map(lambda p, batch=batch: _post(p, _wire(batch)), ports))
                    out += [(code, r.get("refused", "")) for code, r in got]
            return out

        with ThreadPoolExecutor(4) as pool:
            results = dict(zip(chains, pool.map(upload, chains), strict=True))
    for got in results.values():
        taken = [x for x in got if x[0] == 200]
        assert len(taken) == 8 and all(x[0] in (200, 409) for x in got), got
        assert {reason for code, reason in got if code == 409} == {"replayed"}, got
    with Ledger(url) as led:
        for eui, chain in chains.items():
            rows = led.db.execute("SELECT seq, hash FROM batches WHERE eui = ? ORDER BY seq",
                                  (eui.hex().upper(),)).fetchall()
            assert [(seq, bytes(h)) for seq, h in rows] == [(i, c.hash()) for i, c in enumerate(chain)]


def test_uploads_are_taken_in_order_and_refused_with_their_reason(service):
    s, key = service
    port = s.address[1]
    batches, _ = _chain(key, [3, 0, 5, 2])
    assert _post(port, _wire(batches[0])) == (200, {"ok": True, "gateway_eui": EUI.hex().upper(), "seq": 0,
                                                    "records": 3})
    code, body = _post(port, _wire(batches[0]))
    assert (code, body["refused"]) == (409, "replayed")
    code, body = _post(port, _wire(batches[2]))
    assert (code, body["refused"]) == (409, "out_of_order")
    for b in batches[1:]:
        assert _post(port, _wire(b))[0] == 200
    # a record dropped in transit, a body cut, another key's batch
    cut = _wire(_chain(key, [2])[0][0])[:-53]
    code, body = _post(port, cut)
    assert (code, body["refused"]) == (409, "count_mismatch")
    code, body = _post(port, b"not a batch")
    assert (code, body["refused"]) == (400, "unreadable") and "header" in body["error"]
    other, _ = _chain(Ed25519PrivateKey.generate(), [1])
    assert _post(port, _wire(other[0]))[1]["refused"] == "bad_signature"
    assert _post(port, b"", "/elsewhere")[0] == 404
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/gateways/{EUI.hex()}", timeout=20) as r:
        head = json.loads(r.read())
    assert head == {"gateway_eui": EUI.hex().upper(), "seq": 3, "head": batches[3].hash().hex()}


def test_the_cli_serves_prints_a_line_per_batch_and_stops_on_ctrl_c(tmp_path):
    key = Ed25519PrivateKey.generate()
    ledger = tmp_path / "deep" / "l.sqlite"
    ledger.parent.mkdir()
    with Ledger(ledger) as led:
        led.add_gateway(EUI.hex(), _pub(key).hex())
    port = free_port()
    env = {**os.environ, "COLUMNS": "40"}
    proc = subprocess.Popen([sys.executable, "-m", "loraspot", "ledger", "serve", "--ledger", str(ledger),
                             "--port", str(port)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env, start_new_session=True, preexec_fn=_ctrl_c_stops)
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        assert f"serving on http://127.0.0.1:{port}/batches" in first, first
        batches, _ = _chain(key, [2, 1])
        assert _post(port, _wire(batches[0]))[0] == 200
        assert _post(port, _wire(batches[0]))[0] == 409
        assert proc.stdout.readline().strip() == f"taken: {EUI.hex().upper()} batch 0 (2 records)"
        assert proc.stdout.readline().startswith("refused (127.0.0.1): replayed: batch 0")
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0 and "Traceback" not in err, err
    # the port taken: one line, no traceback
    with LedgerService(ledger, port=0) as busy:
        r = subprocess.run([sys.executable, "-m", "loraspot", "ledger", "serve", "--ledger", str(ledger),
                            "--port", str(busy.address[1])], capture_output=True, text=True, timeout=60)
    assert r.returncode != 0 and "cannot listen there" in r.stderr and "Traceback" not in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr


def test_the_service_anchors_the_ledger_head_now_and_then(tmp_path):
    """`ledger serve --anchor-chain` writes the head after batches were taken (a chain in the
    service's own process here), and logs it; with nothing new it writes nothing more."""
    from loraspot.proofs.anchor import ledger_head

    key = Ed25519PrivateKey.generate()
    ledger = tmp_path / "l.sqlite"
    with Ledger(ledger) as led:
        led.add_gateway(EUI.hex(), _pub(key).hex())
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "loraspot", "ledger", "serve", "--ledger", str(ledger), "--port",
                             str(port), "--anchor-chain", "eth-tester", "--anchor-every", "1"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
                            preexec_fn=_ctrl_c_stops)
    try:
        assert proc.stdout is not None
        assert "serving on" in proc.stdout.readline()
        batches, _ = _chain(key, [2, 3])
        for b in batches:
            assert _post(port, _wire(b))[0] == 200
        lines: list[str] = []
        while not any("(2 batches)" in x for x in lines) and len(lines) < 6:
            lines.append(proc.stdout.readline().strip())
        taken = [x for x in lines if x.startswith("taken")]
        assert taken == [f"taken: {EUI.hex().upper()} batch 0 (2 records)",
                         f"taken: {EUI.hex().upper()} batch 1 (3 records)"], lines
        anchored = [x for x in lines if x.startswith("anchored head ")]
        assert anchored and "(2 batches)" in anchored[-1], lines  # (one after the first batch, if it came between)
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0 and "Traceback" not in err, err
    with Ledger(ledger) as led:
        rows = led.db.execute("SELECT head, batches FROM anchors ORDER BY id").fetchall()
        head = ledger_head(led)[0]
    assert rows[-1] == (head, 2) and len(rows) == len(anchored)  # nothing new after it: no more anchors
    assert head.hex() in anchored[-1]


def test_a_dropped_database_connection_is_a_try_again_then_made_again(postgres_server):
    """The PostgreSQL server ends the service's session (a restart, an administrator): the upload
    that finds it gone is answered 503 (the hotspot keeps the batch and sends it again), the
    service goes on, and the next upload is taken on a new connection."""
    import psycopg

    url = postgres_server.new_database()
    key = Ed25519PrivateKey.generate()
    batches, _ = _chain(key, [2, 3])
    with Ledger(url) as led:
        led.add_gateway(EUI.hex(), _pub(key).hex())
    with LedgerService(url, port=0).start() as s:
        port = s.address[1]
        assert _post(port, _wire(batches[0]))[0] == 200
        with psycopg.connect(url, autocommit=True) as admin:
            ended = admin.execute("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                                  "WHERE datname = current_database() AND pid <> pg_backend_pid()").fetchone()
        assert ended == (1,)  # the service's one session
        code, body = _post(port, _wire(batches[1]))
        assert code == 503 and "the ledger's database" in body["error"], body
        assert _post(port, _wire(batches[1]))[0] == 200
