"""Inventory: secrets round trip, encrypted at rest, wrong master key refused, migrations."""

from __future__ import annotations

import os
import sqlite3

import pytest
from loraspot.provision.inventory import ENV_KEY, Inventory, InventoryError, master_key

EUI = "70B3D57ED0000001"


@pytest.fixture(autouse=True)
def _no_env_key(monkeypatch):
    monkeypatch.delenv(ENV_KEY, raising=False)


def test_round_trip_and_never_in_clear(tmp_path):
    path = tmp_path / "inv.sqlite"
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
    key_file = path.with_name(path.name + ".key")
    assert oct(key_file.stat().st_mode & 0o777) == "0o600"
    blob = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.name.startswith("inv.sqlite") and p != key_file)
    for needle in (appkey, appkey.hex().encode(), appkey.hex().upper().encode(), b"hunter2"):
        assert needle not in blob


def test_wrong_master_key_is_refused_and_changes_nothing(tmp_path, monkeypatch):
    path = tmp_path / "inv.sqlite"
    monkeypatch.setenv(ENV_KEY, "11" * 32)
    with Inventory(path) as inv:
        inv.add_device(EUI)
        inv.set_secret(EUI, "app_key", bytes(16))
    before = path.read_bytes()
    monkeypatch.setenv(ENV_KEY, "22" * 32)
    with pytest.raises(InventoryError, match="wrong master key"):
        Inventory(path)
    assert path.read_bytes() == before
    monkeypatch.setenv(ENV_KEY, "xyz")
    with pytest.raises(InventoryError, match="64 hex digits"):
        Inventory(path)


def test_tampered_secret_and_swapped_rows_detected(tmp_path):
    path = tmp_path / "inv.sqlite"
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


def test_key_file_readable_by_others_refused(tmp_path):
    path = tmp_path / "inv.sqlite"
    Inventory(path).close()
    key_file = path.with_name(path.name + ".key")
    os.chmod(key_file, 0o644)
    with pytest.raises(InventoryError, match="chmod 600"):
        Inventory(path)
    os.chmod(key_file, 0o600)
    other = path.with_name("other.sqlite.key")
    other.write_text("ab" * 32)
    other.chmod(0o600)
    assert master_key(tmp_path / "other.sqlite", create=False) == bytes([0xAB]) * 32
    with pytest.raises(InventoryError, match="no master key"):
        master_key(tmp_path / "none.sqlite", create=False)


def test_schema_migrations_and_newer_schema_refused(tmp_path):
    path = tmp_path / "inv.sqlite"
    with Inventory(path) as inv:
        v = inv.schema_version()
        assert v >= 1
    with Inventory(path) as inv:  # reopening migrates nothing twice
        assert inv.schema_version() == v
    db = sqlite3.connect(path)
    db.execute(f"PRAGMA user_version = {v + 1}")
    db.commit()
    db.close()
    with pytest.raises(InventoryError, match="newer loraspot"):
        Inventory(path)


def test_bad_input(tmp_path):
    with Inventory(tmp_path / "inv.sqlite") as inv:
        with pytest.raises(InventoryError, match="16 hex digits"):
            inv.add_device("1234")
        with pytest.raises(InventoryError, match="not in the inventory"):
            inv.set_secret(EUI, "app_key", bytes(16))
        inv.add_device(EUI)
        with pytest.raises(InventoryError, match="unknown secret kind"):
            inv.set_secret(EUI, "pin", b"1")
        with pytest.raises(InventoryError, match="no app_key"):
            inv.secret(EUI, "app_key")


def test_cli_lists_devices_with_kcvs_never_keys(tmp_path, capsys):
    import json

    from loraspot.cli.main import main
    from loraspot.lorawan.crypto import key_check_value

    path = tmp_path / "inv.sqlite"
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


def test_no_two_devices_share_an_eui_mac_or_key(tmp_path):
    with Inventory(tmp_path / "inv.sqlite") as inv:
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


def test_backup_is_a_complete_database(tmp_path):
    with Inventory(tmp_path / "inv.sqlite") as inv:
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


def test_processes_opening_the_same_new_inventory_at_once_all_succeed(tmp_path):
    """`sim world` writes an inventory while `listen` (another process) reads it the moment the file
    appears: both may create the schema and the key check at once; each is done once, and every
    opener gets a working inventory with the same key."""
    import subprocess
    import sys

    key = "5a" * 32
    code = ("import sys\nfrom loraspot.provision.inventory import Inventory\n"
            "with Inventory(sys.argv[1]) as inv:\n    inv.add_device('70B3D57ED0000001')\n")
    for trial in range(6):
        path = tmp_path / f"inv{trial}.sqlite"
        procs = [subprocess.Popen([sys.executable, "-c", code, str(path)], env=dict(os.environ, **{ENV_KEY: key}),
                                  stderr=subprocess.PIPE, text=True) for _ in range(6)]
        errors = [p.communicate(timeout=60)[1] for p in procs]
        assert [p.returncode for p in procs] == [0] * 6, errors
        with Inventory(path, key=bytes.fromhex(key)) as inv:
            assert inv.schema_version() > 0 and [d.dev_eui for d in inv.devices()] == ["70B3D57ED0000001"]


def test_an_identity_key_belongs_to_one_device(tmp_path):
    pub = "AB" * 32
    with Inventory(tmp_path / "inv.sqlite") as inv:
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
    db = sqlite3.connect(tmp_path / "inv.sqlite")
    with pytest.raises(sqlite3.IntegrityError):
        db.execute("UPDATE devices SET identity = ? WHERE dev_eui = ?", (pub.lower(), "70B3D57ED0000002"))
    db.close()
