"""Flash images: partition table in ESP-IDF's binary format, littlefs that MicroPython mounts."""

from __future__ import annotations

import json

import pytest
from loraspot import boards
from loraspot.errors import ImageError
from loraspot.flash import image

from tests.conftest import ROOT, run_micropython


def test_partition_table_round_trip_and_md5():
    parts = image.partitions_for(boards.get("heltec-wifi-lora32-v3"))
    raw = image.encode_partition_table(parts)
    assert len(raw) == image.TABLE_MAX and raw[:2] == b"\xaa\x50"
    assert image.decode_partition_table(raw) == parts
    assert [p.label for p in parts] == ["nvs", "phy_init", "factory", "vfs"]
    bad = bytearray(raw)
    bad[4] ^= 0xFF
    with pytest.raises(ImageError, match="MD5"):
        image.decode_partition_table(bytes(bad))
    with pytest.raises(ImageError, match="no partition table"):
        image.decode_partition_table(b"\xff" * 64)


def test_flash_image_mounts_in_micropython(tmp_path):
    profile = boards.get("virtual")
    flash = tmp_path / "flash.bin"
    image.create_flash_image(flash, profile, image.app_files(profile, {"name": "from-host"}))
    assert flash.stat().st_size == profile["flash"]["size"]
    vfs = image.find_vfs(flash)
    assert (vfs.offset, vfs.size) == tuple(profile["flash"]["partitions"]["vfs"])
    script = tmp_path / "mount.py"
    script.write_text(
        "import vfs, os, json\n"
        "from _vflash import FlashPartition\n"
        f"p = FlashPartition(open({str(flash)!r}, 'r+b'), {vfs.offset}, {vfs.size})\n"
        "vfs.mount(vfs.VfsLfs2(p), '/m')\n"
        "print(json.dumps(sorted(os.listdir('/m'))))\n"
        "print(json.dumps(sorted(os.listdir('/m/lib/spot'))))\n"
        "print(open('/m/config.json').read())\n"
        "with open('/m/written.txt', 'w') as f: f.write('by micropython')\n"
        "vfs.umount('/m')\n"
    )
    proc = run_micropython(script)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    top, spot, cfg = proc.stdout.splitlines()[:3]
    assert json.loads(top) == ["board.json", "boot.py", "config.json", "lib", "main.py"]
    assert "app.py" in json.loads(spot) and "console.py" in json.loads(spot)
    assert json.loads(cfg) == {"name": "from-host"}
    # and what MicroPython wrote reads back on the host
    fs = image.read_vfs(flash)
    with fs.open("written.txt", "r") as f:
        assert f.read() == "by micropython"
    assert (ROOT / "firmware" / "main.py").read_bytes() == fs.open("main.py", "rb").read()
