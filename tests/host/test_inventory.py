"""Inventory: secrets round trip, encrypted at rest, wrong master key refused, migrations; every
test against an SQLite file and a PostgreSQL server (`inventory` fixture), and moving one to the
other."""

from __future__ import annotations

import os
import sqlite3

import pytest
from loraspot.provision.inventory import ENV_KEY, Inventory, InventoryError, key_file, master_key
from loraspot.store import Store, is_url

EUI = "70B3D57ED0000001"


@pytest.fixture(autouse=True)
def _no_env_key(monkeypatch):
    monkeypatch.delenv(ENV_KEY, raising=False)


TABLES = ("meta", "devices", "secrets", "key_prints", "selftests")


def stored(target) -> bytes:
    """Everything the database holds of an inventory, as bytes: the files of an SQLite one, every
    row of every table (and its schema version) on a server."""
    if not is_url(target):
        return b"".join(p.read_bytes() for p in sorted(target.parent.iterdir())
                        if p.name.startswith(target.name) and not p.name.endswith(".key"))
    store = Store(target)
    try:
        out = repr(store.execute("SELECT version FROM inventory_schema").fetchall())
        for table in TABLES:
            for row in store.execute(f"SELECT * FROM {table} ORDER BY 1"):
                out += repr([bytes(v).hex() if isinstance(v, (bytes, memoryview)) else v for v in row])
        return out.encode()
    finally:
        store.close()


def test_round_trip_and_never_in_clear(inventory, tmp_path):
    path = inventory
    appkey = bytes.fromhex("98929b92c49edba9676d646d3b612456")
    with Inventory(path) as inv:
        inv.add_device(EUI, join_eui="0000000000000000", name="node-1", board="heltec-wifi-lora32-v3")
        inv.set_secret(EUI, "app_key", appkey)
        inv.set_secret(EUI, "wifi_password", b"hunter2-secret")
        assert inv.secret(EUI, "app_key") == appkey
        assert inv.secret_kinds(EUI) == ["app_key", "wifi_password"]
    with Inventory(path) as inv:  # the key file created on first use opens it again
        assert inv.secret("70:B3:D5:7E:D0:00:00:01", "app_key") == appkey
        assert inv.device(EUI).name == "node-1"
    assert oct(key_file(path).stat().st_mode & 0o777) == "0o600"
    if is_url(path):  # a server's key file: in the user's data folder, named without the password
        assert key_file(path).parent == tmp_path / "user-data" / "loraspot" / "keys"
    blob = stored(path)
    assert b"node-1" in blob  # what is not secret is there to be seen
    for needle in (appkey, appkey.hex().encode(), appkey.hex().upper().encode(), appkey.hex().lower().encode(),
                   b"hunter2", b"hunter2".hex().encode()):
        assert needle not in blob


def test_wrong_master_key_is_refused_and_changes_nothing(inventory, monkeypatch):
    path = inventory
    monkeypatch.setenv(ENV_KEY, "11" * 32)
    with Inventory(path) as inv:
        inv.add_device(EUI)
        inv.set_secret(EUI, "app_key", bytes(16))
    before = stored(path)
    monkeypatch.setenv(ENV_KEY, "22" * 32)
    with pytest.raises(InventoryError, match="wrong master key"):
        Inventory(path)
    assert stored(path) == before
    monkeypatch.setenv(ENV_KEY, "xyz")
    with pytest.raises(InventoryError, match="64 hex digits"):
        Inventory(path)


def test_tampered_secret_and_swapped_rows_detected(inventory):
    path = inventory
    with Inventory(path) as inv:
        inv.add_device(EUI)
        inv.add_device("70B3D57ED0000002")
        inv.set_secret(EUI, "app_key", b"A" * 16)
        inv.set_secret("70B3D57ED0000002", "app_key", b"B" * 16)
        # move one device's sealed key onto the other: the associated data binds it to its row
        inv.db.execute("UPDATE secrets SET nonce = (SELECT nonce FROM secrets WHERE dev_eui = ?), sealed = "
                       "(SELECT sealed FROM secrets WHERE dev_eui = ?) WHERE dev_eui = ?",
                       ("70B3D57ED0000002", "70B3D57ED0000002", EUI))
        with pytest.raises(InventoryError, match="altered"):
            inv.secret(EUI, "app_key")


def test_key_file_readable_by_others_refused(inventory, tmp_path):
    path = inventory
    Inventory(path).close()
    os.chmod(key_file(path), 0o644)
    with pytest.raises(InventoryError, match="chmod 600"):
        Inventory(path)
    os.chmod(key_file(path), 0o600)
    key_file(path).rename(tmp_path / "kept.key")  # a key lost: said, and no new one is made for it
    with pytest.raises(InventoryError, match="no master key"):
        Inventory(path)
    (tmp_path / "kept.key").rename(key_file(path))
    Inventory(path).close()
    other = tmp_path / "other.sqlite.key"
    other.write_text("ab" * 32)
    other.chmod(0o600)
    assert master_key(tmp_path / "other.sqlite", create=False) == bytes([0xAB]) * 32
    with pytest.raises(InventoryError, match="no master key"):
        master_key(tmp_path / "none.sqlite", create=False)


def test_schema_migrations_and_newer_schema_refused(inventory):
    from loraspot.provision.inventory import MIGRATIONS

    path = inventory
    with Inventory(path) as inv:
        v = inv.schema_version()
        assert v == len(MIGRATIONS)
        inv.add_selftest("a4cf12000001", "virtual", True, [{"check": "radio", "ok": True}], at=5.0)
        inv.add_selftest("a4cf12000001", "virtual", False, [], at=2.0)
        assert [t["at"] for t in inv.selftests("A4CF12000001")] == [2.0, 5.0]
    with Inventory(path) as inv:  # reopening migrates nothing twice
        assert inv.schema_version() == v
    store = Store(path)
    store.execute("PRAGMA user_version = ?".replace("?", str(v + 1)) if not is_url(path) else
                  "UPDATE inventory_schema SET version = version + 1")
    store.close()
    with pytest.raises(InventoryError, match="newer loraspot"):
        Inventory(path)


def test_an_inventory_made_by_the_previous_release_is_migrated(tmp_path):
    """A file whose schema stopped at an older version (as an earlier loraspot left it) gets the
    missing migrations, its rows kept."""
    from loraspot.provision.inventory import MIGRATIONS
    from loraspot.store import statements

    path = tmp_path / "old.sqlite"
    db = sqlite3.connect(path, isolation_level=None)
    for n in range(5):
        for statement in statements(MIGRATIONS[n]):
            db.execute(statement)
    db.execute("PRAGMA user_version = 5")
    db.execute("INSERT INTO devices (dev_eui, created_at, updated_at, mac) VALUES (?, 1, 1, 'A4CF12000001')", (EUI,))
    db.close()
    with Inventory(path) as inv:
        assert inv.schema_version() == len(MIGRATIONS)
        assert inv.device(EUI).mac == "A4CF12000001" and inv.device(EUI).identity is None


def test_bad_input(inventory):
    with Inventory(inventory) as inv:
        with pytest.raises(InventoryError, match="16 hex digits"):
            inv.add_device("1234")
        with pytest.raises(InventoryError, match="not in the inventory"):
            inv.set_secret(EUI, "app_key", bytes(16))
        inv.add_device(EUI)
        with pytest.raises(InventoryError, match="unknown secret kind"):
            inv.set_secret(EUI, "pin", b"1")
        with pytest.raises(InventoryError, match="no app_key"):
            inv.secret(EUI, "app_key")


def test_cli_lists_devices_with_kcvs_never_keys(inventory, capsys):
    import json

    from loraspot.cli.main import main
    from loraspot.lorawan.crypto import key_check_value

    path = inventory
    key = bytes.fromhex("98929b92c49edba9676d646d3b612456")
    with Inventory(path) as inv:
        inv.add_device(EUI, name="node-1")
        inv.set_secret(EUI, "app_key", key)
    assert main(["--json", "devices", "--inventory", str(path), "list"]) == 0
    out = capsys.readouterr().out
    (row,) = json.loads(out)
    assert row["dev_eui"] == EUI and row["name"] == "node-1" and row["state"] == "registered"
    assert row["secrets"] == {"app_key": key_check_value(key)}
    assert key.hex() not in out
    assert main(["devices", "--inventory", str(path), "show", "node-1"]) == 0
    out = capsys.readouterr().out
    assert key_check_value(key) in out and key.hex().upper() not in out.upper()
    assert main(["--json", "devices", "--inventory", str(path), "show", EUI, "--reveal-keys"]) == 0
    assert json.loads(capsys.readouterr().out)["secrets"] == {"app_key": key.hex().upper()}
    os.environ[ENV_KEY] = "33" * 32
    try:
        assert main(["devices", "--inventory", str(path), "list"]) == 6
        assert "wrong master key" in capsys.readouterr().err
    finally:
        del os.environ[ENV_KEY]


@pytest.mark.parametrize("argv", [
    ["devices", "--inventory", "{p}", "list"],
    ["devices", "--inventory", "{p}", "show", "node-1"],
    ["devices", "--inventory", "{p}", "export", "--format", "csv"],
    ["devices", "--inventory", "{p}", "backup", "{d}/copy.sqlite"],
    ["devices", "--inventory", "{p}", "set-ota", "node-1", "127.0.0.1:8266"],
    ["deploy", "--all-ota", "--inventory", "{p}"],
], ids=lambda a: " ".join(a[0:4:3] if a[0] == "devices" else a[:2]))
def test_a_mistyped_inventory_is_an_error_not_a_new_one(tmp_path, capsys, monkeypatch, argv):
    """A command that reads or changes what an inventory holds, given a file that is not there
    (a typo), says so in one line and makes nothing: no empty inventory, no key file."""
    from loraspot.cli.main import main

    monkeypatch.delenv(ENV_KEY, raising=False)
    path = tmp_path / "inventroy.sqlite"
    assert main([a.format(p=path, d=tmp_path) for a in argv]) == 6
    err = capsys.readouterr().err
    assert f"{path}: no inventory there" in err and len(err.strip().splitlines()) == 1, err
    assert sorted(tmp_path.iterdir()) == []


def test_no_two_devices_share_an_eui_mac_or_key(inventory):
    with Inventory(inventory) as inv:
        inv.register(EUI, "a4:cf:12:00:00:01", role="node", board="virtual")
        with pytest.raises(InventoryError, match="already belongs to the board with MAC A4CF12000001"):
            inv.register(EUI, "a4:cf:12:00:00:02")
        with pytest.raises(InventoryError, match="MAC A4CF12000001 is already in the inventory"):
            inv.register("70B3D57ED0000009", "A4CF12000001")
        inv.register("70B3D57ED0000002", "a4cf12000002", role="hotspot", gateway_eui="A4CF12FFFE000002")
        with pytest.raises(InventoryError, match="gateway EUI A4CF12FFFE000002 already belongs"):
            inv.register("70B3D57ED0000003", "a4cf12000003", gateway_eui="A4CF12FFFE000002")
        golden = bytes(range(16))
        inv.set_secret(EUI, "app_key", golden)
        inv.set_secret(EUI, "app_key", golden)  # the same device again: fine
        with pytest.raises(InventoryError, match="already the app_key of 70B3D57ED0000001"):
            inv.set_secret("70B3D57ED0000002", "app_key", golden)
        with pytest.raises(InventoryError, match="already the app_key"):
            inv.set_secret("70B3D57ED0000002", "nwk_key", golden)
        assert inv.secret_kinds("70B3D57ED0000002") == []  # the refused write left nothing
        inv.set_secret(EUI, "app_key", bytes(16))  # replaced: the old key is free again
        inv.set_secret("70B3D57ED0000002", "app_key", golden)
        inv.update(EUI, state="provisioned", fw="0.1.0")
        with pytest.raises(InventoryError, match="unknown state"):
            inv.update(EUI, state="bogus")
        d = inv.by_mac("A4-CF-12-00-00-01")
        assert d is not None and d.state == "provisioned" and d.role == "node" and d.fw == "0.1.0"
        assert "app_key" not in repr(d.public()) and golden.hex() not in repr(d.public())


def test_backup_is_a_complete_database(inventory, tmp_path):
    with Inventory(inventory) as inv:
        for i in range(20):
            inv.register(f"70B3D57ED00000{i:02X}", f"A4CF120000{i:02X}")
            inv.set_secret(f"70B3D57ED00000{i:02X}", "app_key", os.urandom(16))
        inv.backup(tmp_path / "copy.sqlite")
        with pytest.raises(InventoryError, match="exists"):
            inv.backup(tmp_path / "copy.sqlite")
        key = inv._key
    with Inventory(tmp_path / "copy.sqlite", key=key) as copy:
        assert len(copy.devices()) == 20 and len(copy.secret(f"70B3D57ED00000{19:02X}", "app_key")) == 16
        assert copy.db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert copy.by_mac("A4CF120000" + f"{7:02X}").dev_eui == f"70B3D57ED00000{7:02X}"


def test_processes_opening_the_same_new_inventory_at_once_all_succeed(inventory, tmp_path):
    """`sim world` writes an inventory while `listen` (another process) reads it the moment the file
    appears: both may create the schema and the key check at once; each is done once, and every
    opener gets a working inventory with the same key."""
    import subprocess
    import sys

    key = "5a" * 32
    code = ("import sys\nfrom loraspot.provision.inventory import Inventory\n"
            "with Inventory(sys.argv[1]) as inv:\n    inv.add_device('70B3D57ED0000001')\n")
    for trial in range(6):
        path = tmp_path / f"inv{trial}.sqlite" if not is_url(inventory) else inventory
        if is_url(inventory) and trial:
            break  # one new database on the server: its first opening is the one that races
        procs = [subprocess.Popen([sys.executable, "-c", code, str(path)], env=dict(os.environ, **{ENV_KEY: key}),
                                  stderr=subprocess.PIPE, text=True) for _ in range(6)]
        errors = [p.communicate(timeout=60)[1] for p in procs]
        assert [p.returncode for p in procs] == [0] * 6, errors
        with Inventory(path, key=bytes.fromhex(key)) as inv:
            assert inv.schema_version() > 0 and [d.dev_eui for d in inv.devices()] == ["70B3D57ED0000001"]


def test_an_identity_key_belongs_to_one_device(inventory):
    pub = "AB" * 32
    with Inventory(inventory) as inv:
        inv.register(EUI, "a4cf12000001", role="hotspot", gateway_eui="A4CF12FFFE000001")
        inv.register("70B3D57ED0000002", "a4cf12000002", role="hotspot", gateway_eui="A4CF12FFFE000002")
        inv.update(EUI, identity=pub)
        assert inv.device(EUI).identity == pub.lower()  # one spelling, whatever was given
        inv.update(EUI, identity=pub.lower())  # the same device again: fine
        with pytest.raises(InventoryError, match=f"identity key {pub.lower()} already belongs to {EUI}"):
            inv.update("70B3D57ED0000002", identity=pub)
        assert inv.device("70B3D57ED0000002").identity is None  # the refused write left nothing
        with pytest.raises(InventoryError, match="identity public key must be 64 hex digits"):
            inv.update(EUI, identity="12" * 31)
    # the constraint is the database's own: a second station writing directly is refused too
    db = Store(inventory)
    for column, value in (("identity", pub.lower()), ("mac", "A4CF12000001"), ("gateway_eui", "A4CF12FFFE000001")):
        with pytest.raises(db.integrity_errors):
            db.execute(f"UPDATE devices SET {column} = ? WHERE dev_eui = ?", (value, "70B3D57ED0000002"))
    db.close()


def _filled(path, n: int = 12) -> dict:
    """An inventory with nodes, a hotspot, every kind of row; what it holds, by DevEUI."""
    with Inventory(path) as inv:
        for i in range(n):
            eui = f"70B3D57ED00001{i:02X}"
            inv.register(eui, f"A4CF120001{i:02X}", role="node", board="virtual", region="EU868", state="provisioned",
                         name=f"node-{i}", freq=868_100_000, sf=7)
            inv.set_secret(eui, "app_key", os.urandom(16))
            inv.set_secret(eui, "admin_key", os.urandom(32))
            inv.set_secret(eui, "pairing_code", b"ABCD-EFGH-JKLM")
            inv.add_selftest(f"A4CF120001{i:02X}", "virtual", i % 3 != 0, [{"check": "radio", "n": i}], at=1000.0 + i)
        inv.register("70B3D57ED00002FF", "A4CF120002FF", role="hotspot", gateway_eui="A4CF12FFFE0002FF",
                     state="locked")
        inv.update("70B3D57ED00002FF", identity="CD" * 32, ota="127.0.0.1:3232")
        inv.set_secret("70B3D57ED00002FF", "wifi_password", b"hunter2-secret")
        return {d.dev_eui: (d.public(), {k: inv.secret(d.dev_eui, k) for k in inv.secret_kinds(d.dev_eui)})
                for d in inv.devices()} | {"selftests": inv.selftests()}


def _held(path, key: bytes | None = None) -> dict:
    with Inventory(path, key=key) as inv:
        return {d.dev_eui: (d.public(), {k: inv.secret(d.dev_eui, k) for k in inv.secret_kinds(d.dev_eui)})
                for d in inv.devices()} | {"selftests": inv.selftests()}


def test_an_inventory_file_migrates_to_postgresql_and_back_with_every_row_and_secret(postgres_server, tmp_path,
                                                                                     capsys):
    """`devices migrate` keeps every row and every secret, sealed under the same master key (the
    server's copy decrypts with it); the server enforces uniqueness as the file did; a backup of
    the server's inventory is an inventory file again."""
    from loraspot.cli.main import main

    source, url = tmp_path / "bench.sqlite", postgres_server.new_database()
    before = _filled(source)
    assert main(["devices", "migrate", "--from", str(source), "--to", url]) == 0
    out = capsys.readouterr()
    assert "13 devices, 37 secrets and 12 self-tests copied" in out.out, out
    assert str(key_file(url)) in out.err.replace("\n", "")
    assert key_file(url).read_text() == key_file(source).read_text()  # the same master key, 0600
    assert oct(key_file(url).stat().st_mode & 0o777) == "0o600"
    assert _held(url) == before
    assert _held(url, key=bytes.fromhex(key_file(source).read_text())) == before
    for needle in (before["70B3D57ED0000100"][1]["app_key"].hex().encode(), b"hunter2"):
        assert needle not in stored(url)  # still sealed on the server
    with Inventory(url) as inv:  # the server refuses what the file refused
        with pytest.raises(InventoryError, match="already the app_key of 70B3D57ED0000100"):
            inv.set_secret("70B3D57ED0000101", "app_key", before["70B3D57ED0000100"][1]["app_key"])
        with pytest.raises(InventoryError, match="MAC A4CF12000100 is already in the inventory"):
            inv.register("70B3D57ED0000999", "A4CF12000100")
    # into an inventory that already holds devices: refused, nothing written
    held = stored(url)
    assert main(["devices", "migrate", "--from", str(source), "--to", url]) == 6
    assert "already holds devices" in capsys.readouterr().err
    assert stored(url) == held
    # and back: the server's backup is an inventory file that opens with the same key
    assert main(["devices", "--inventory", url, "backup", str(tmp_path / "copy.sqlite")]) == 0
    capsys.readouterr()
    assert _held(tmp_path / "copy.sqlite", key=bytes.fromhex(key_file(source).read_text())) == before


def test_migrate_refuses_a_destination_with_another_master_key(postgres_server, tmp_path, capsys):
    from loraspot.cli.main import main

    source, url = tmp_path / "bench.sqlite", postgres_server.new_database()
    _filled(source, 2)
    key_file(url).parent.mkdir(parents=True, exist_ok=True)
    key_file(url).write_text("77" * 32)
    key_file(url).chmod(0o600)
    assert main(["devices", "migrate", "--from", str(source), "--to", url]) == 6
    err = capsys.readouterr().err
    assert "has a master key of its own" in err and len(err.strip().splitlines()) == 1, err
    assert Store(url).execute("SELECT to_regclass('devices')").fetchone()[0] is None  # nothing made there
    assert main(["devices", "migrate", "--from", str(tmp_path / "none.sqlite"), "--to", url]) == 6
    assert "no inventory there" in capsys.readouterr().err


def test_stations_racing_for_one_identity_on_one_server_get_it_once(postgres_server):
    """Several processes register boards at once, half of them claiming MACs, gateway EUIs and keys
    another process claims too: each identity ends up with exactly one device, every refusal is
    said in words, and no row is half-written."""
    import subprocess
    import sys

    url = postgres_server.new_database()
    key = "6b" * 32
    with Inventory(url, key=bytes.fromhex(key)):
        pass
    code = r"""
import sys
from loraspot.provision.inventory import Inventory, InventoryError
station, url = int(sys.argv[1]), sys.argv[2]
ok = refused = 0
with Inventory(url) as inv:
    for i in range(20):
        eui = f"70B3D57E{station:02X}{i:06X}"
        try:
            with inv.transaction():
                inv.register(eui, f"A4CF1200{i:04X}", role="hotspot", gateway_eui=f"A4CF12FFFE{i:06X}")
                inv.set_secret(eui, "admin_key", bytes([i]) * 32)
            ok += 1
        except InventoryError as e:
            assert "already" in str(e), e
            refused += 1
print(ok, refused)
"""
    procs = [subprocess.Popen([sys.executable, "-c", code, str(n), url], env=dict(os.environ, **{ENV_KEY: key}),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for n in range(4)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0] * 4, outs
    counts = [tuple(map(int, o.split())) for o, _ in outs]
    assert sum(ok for ok, _ in counts) == 20 and sum(r for _, r in counts) == 60, counts
    with Inventory(url, key=bytes.fromhex(key)) as inv:
        devices = inv.devices()
        assert len(devices) == 20
        assert len({d.mac for d in devices}) == len({d.gateway_eui for d in devices}) == 20
        assert sorted(inv.secret(d.dev_eui, "admin_key")[0] for d in devices) == list(range(20))
