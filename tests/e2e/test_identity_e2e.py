"""The board's identity key (docs/proofs.md): provisioning a hotspot makes an Ed25519 key pair on
the board, from its own RNG and 32 bytes from the host, and keeps the public key in the inventory
and the plain CSV export; provisioning again keeps it; the private key never leaves the board.
It is read here as someone with the board and a serial cable could (from its flash), to look for
it in everything our tools showed or saved: serial traffic, CLI output, exports and a backup."""

from __future__ import annotations

import base64
import json

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from loraspot import device
from loraspot.cli.main import main
from loraspot.errors import DeviceError
from loraspot.flash import image as fsimage
from loraspot.provision import provision
from loraspot.provision.inventory import Inventory
from loraspot.sim.medium import Medium

pytestmark = pytest.mark.e2e


def _forms(secret: bytes) -> list[bytes]:
    return [secret, secret.hex().encode(), secret.hex().upper().encode(), base64.b64encode(secret),
            base64.b64encode(secret).rstrip(b"=")]


def _seed_on_the_flash(path) -> bytes:
    fs = fsimage.read_vfs(path)  # kept while its file is read (littlefs frees its buffers with it)
    with fs.open("/secrets.json", "r") as f:
        return bytes.fromhex(json.loads(f.read())["identity_key"])


def test_a_hotspot_gets_an_identity_that_never_leaves_it(make_board, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("LORASPOT_MASTER_KEY", "3c" * 32)
    inv = tmp_path / "inv.sqlite"
    seen = bytearray()
    with Medium() as medium:
        h = make_board(medium=medium.address)
        h.board.uart.add_sink(seen.extend)
        url = h.info["url"]
        opts = provision.Options(role="hotspot", reboot=False, server="udp://127.0.0.1:1700")
        (res,) = provision.provision_many([url], opts, inv)
        assert res.ok, res.error
        with Inventory(inv) as db:
            pub = db.device(res.dev_eui).identity
        assert pub is not None and len(pub) == 64

        # the board's own key, as its flash holds it, is the pair of the inventory's public key
        seed = _seed_on_the_flash(h.board.opts.flash)
        derived = Ed25519PrivateKey.from_private_bytes(seed).public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        assert derived.hex() == pub

        client, _ = device.connect(url)
        with client:
            out = client.request("keys.identity")
            assert out == {"public": pub, "made": False}
            listed = client.request("keys.list")["keys"]
            assert listed["identity_key"] == "set"
            for kind in ("identity_key", "identity_pub"):  # made on the board only, never set from outside
                with pytest.raises(DeviceError, match="unknown key kind"):
                    client.request("keys.set", {"kind": kind, "value": "00" * 32})
            with pytest.raises(DeviceError, match="at least 16 bytes"):
                client.request("keys.identity", {"entropy": "00" * 8})
            seen.extend(json.dumps(listed).encode())

        # provisioning again (new keys) keeps the identity: the chain of its receipts goes on
        again_opts = provision.Options(role="hotspot", reboot=False, server="udp://127.0.0.1:1700", force=True)
        (again,) = provision.provision_many([url], again_opts, inv)
        assert again.ok, again.error
        with Inventory(inv) as db:
            assert db.device(res.dev_eui).identity == pub
        assert _seed_on_the_flash(h.board.opts.flash) == seed

        # locked: making another identity (or reading it) needs the admin key's signature
        assert main(["lock", "--port", url, "--inventory", str(inv)]) == 0
        client, _ = device.connect(url)
        with client:
            for args in ({}, {"entropy": "11" * 32, "replace": True}):
                with pytest.raises(DeviceError, match="auth"):
                    client.request("keys.identity", args)
        assert _seed_on_the_flash(h.board.opts.flash) == seed

        for args in (["devices", "--inventory", str(inv), "list"], ["devices", "--inventory", str(inv), "show",
                                                                       res.dev_eui],
                     ["devices", "--inventory", str(inv), "export", "--format", "csv"]):
            assert main(["--json", *args]) == 0
            text = capsys.readouterr().out
            seen.extend(text.encode())
        assert pub in text  # the plain export carries the public key
        # the serial line up to here; a backup then reads the whole flash through the chip's ROM
        # loader, as esptool read-flash does (which is why a key in plain flash is readable by anyone
        # with the board: docs/proofs.md), and leaves the secrets out of the file it writes
        seen = bytes(seen)
        assert main(["--json", "backup", "--baud", "2000000", "--port", url, str(tmp_path / "b.bin")]) == 0
        capsys.readouterr()
    backup = (tmp_path / "b.bin").read_bytes()
    assert len(seen) > 1000 and len(backup) > 1000000
    for form in _forms(seed):
        assert form not in seen and form not in backup
