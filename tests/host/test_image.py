"""Flash images: partition table in ESP-IDF's binary format, littlefs and ROMFS that MicroPython
mounts."""

from __future__ import annotations

import json

import pytest
from loraspot import boards
from loraspot.errors import ImageError
from loraspot.flash import image
from loraspot.flash.mpy import compiled_firmware

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
    # the virtual board's image is built with ROMFS: the library goes there, the rest to littlefs
    profile = boards.get("virtual")
    flash = tmp_path / "flash.bin"
    image.create_flash_image(flash, profile, image.app_files(profile, {"name": "from-host"}))
    assert flash.stat().st_size == profile["flash"]["size"]
    vfs = image.find_vfs(flash)
    assert (vfs.offset, vfs.size) == tuple(profile["flash"]["partitions"]["vfs"])
    rom = image.find_romfs(flash)
    assert rom is not None and (rom.offset, rom.size) == tuple(profile["flash"]["partitions"]["romfs"])
    head = flash.read_bytes()[rom.offset : rom.offset + 16]
    script = tmp_path / "mount.py"
    script.write_text(
        "import vfs, os, json\n"
        "from _vflash import FlashPartition\n"
        f"p = FlashPartition(open({str(flash)!r}, 'r+b'), {vfs.offset}, {vfs.size})\n"
        "vfs.mount(vfs.VfsLfs2(p), '/m')\n"
        f"f = open({str(flash)!r}, 'rb'); f.seek({rom.offset})\n"
        f"vfs.mount(vfs.VfsRom(f.read({image.romfs_length(head)})), '/r')\n"
        "print(json.dumps(sorted(os.listdir('/m'))))\n"
        "print(json.dumps(sorted(os.listdir('/r/lib/spot'))))\n"
        "print(open('/m/config.json').read())\n"
        "with open('/m/written.txt', 'w') as f: f.write('by micropython')\n"
        "vfs.umount('/m')\n"
    )
    proc = run_micropython(script, heap="512K")  # the ROMFS (source here) is read into the heap
    assert proc.returncode == 0, proc.stdout + proc.stderr
    top, spot, cfg = proc.stdout.splitlines()[:3]
    assert json.loads(top) == ["app.json", "board.json", "boot.py", "config.json", "main.py"]
    assert "app.py" in json.loads(spot) and "console.py" in json.loads(spot)
    assert json.loads(cfg) == {"name": "from-host"}
    # and what MicroPython wrote reads back on the host
    fs = image.read_vfs(flash)
    with fs.open("written.txt", "r") as f:
        assert f.read() == "by micropython"
    assert (ROOT / "firmware" / "main.py").read_bytes() == fs.open("main.py", "rb").read()


def test_library_in_littlefs_without_a_romfs_partition(tmp_path):
    profile = boards.get("heltec-wifi-lora32-v3")
    flash = tmp_path / "flash.bin"
    image.create_flash_image(flash, profile, image.app_files(profile))
    assert image.find_romfs(flash) is None
    fs = image.read_vfs(flash)
    assert "app.py" in fs.listdir("lib/spot")


def test_romfs_too_big_for_its_partition_is_refused():
    with pytest.raises(ImageError, match="ROMFS image needs"):
        image.build_romfs({"lib/a.bin": bytes(8192)}, 4096)
    data = image.build_romfs({"lib/a.bin": b"x" * 300}, 4096)
    assert image.romfs_length(data + b"\xff" * 100) == len(data)
    assert image.romfs_length(b"\xff" * 16) == 0


def test_code_in_romfs_leaves_the_heap_to_the_application(tmp_path):
    """The same bytecode imported from littlefs and from the ROMFS: from the ROMFS it runs in
    place, so importing the LoRaWAN stack takes far less heap."""
    profile = boards.get("virtual")
    files = image.app_files(profile, mpy_dir=compiled_firmware(ROOT / ".venv" / "mpy-cache"))
    flash = tmp_path / "flash.bin"
    image.create_flash_image(flash, profile, files)
    rom = image.find_romfs(flash)
    assert rom is not None
    data = flash.read_bytes()
    length = image.romfs_length(data[rom.offset : rom.offset + 16])
    lib = tmp_path / "lib"
    for name, content in files.items():
        if name.startswith("lib/"):
            (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
            (tmp_path / name).write_bytes(content)
    used = {}
    for where in ("rom", "lfs"):
        script = tmp_path / f"{where}.py"
        script.write_text(
            "import gc, sys, vfs\n"
            f"if {where == 'rom'}:\n"
            f"    f = open({str(flash)!r}, 'rb'); f.seek({rom.offset})\n"
            f"    vfs.mount(vfs.VfsRom(f.read({length})), '/r'); sys.path[:] = ['/r/lib', '.frozen']\n"
            f"else:\n    sys.path[:] = [{str(lib)!r}, '.frozen']\n"
            "gc.collect(); before = gc.mem_free()\n"
            "import spot.lorawan.stack\n"
            "gc.collect(); print(before - gc.mem_free())\n"
        )
        proc = run_micropython(script, heap="512K")
        assert proc.returncode == 0, proc.stdout + proc.stderr
        used[where] = int(proc.stdout.split()[-1])
    assert used["rom"] < 0.75 * used["lfs"], used


@pytest.mark.parametrize("name", ["/lib/spot/hotspot/core.mpy", "/rom/lib/spot/" + "x" * 150 + ".mpy"])
def test_a_modules_source_name_is_rewritten_as_mpy_cross_would_write_it(tmp_path, name):
    """with_source_name gives the same bytes as mpy-cross -s NAME (a name long enough to need a
    two-byte length too)."""
    from loraspot.flash.mpy import compile_file, with_source_name

    src = tmp_path / "m.py"
    src.write_text("def f():\n    raise ValueError('x')\n")
    compile_file(src, tmp_path / "a.mpy", "m.py")
    compile_file(src, tmp_path / "b.mpy", name)
    rewritten = with_source_name((tmp_path / "a.mpy").read_bytes(), name)
    assert rewritten == (tmp_path / "b.mpy").read_bytes()
    assert rewritten != (tmp_path / "a.mpy").read_bytes()
    with pytest.raises(ImageError, match="version 6"):
        with_source_name(b"M\x05\x00\x1f", name)
