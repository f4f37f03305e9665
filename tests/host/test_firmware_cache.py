"""The MicroPython image cache: `firmware add` reads chip and version from the image and records its
SHA-256; `firmware fetch` downloads the pinned release (from a loopback HTTP server here) and refuses
a file whose SHA-256 differs; a cached image changed on disk is refused when used."""

from __future__ import annotations

import hashlib
import http.server
import json
import threading

import pytest
from loraspot import boards
from loraspot.errors import ImageError
from loraspot.flash import espimage, firmware


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("LORASPOT_CACHE", str(tmp_path / "cache"))
    return tmp_path


@pytest.fixture
def http_dir(tmp_path):
    root = tmp_path / "www"
    root.mkdir()

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *a, **kw):
            super().__init__(*a, directory=str(root), **kw)

        def log_message(self, *a):
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield root, f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()
    srv.server_close()


def test_add_reads_chip_and_version_and_checks_hash_on_use(cache):
    s3 = boards.get("lilygo-t3-s3")
    img = espimage.placeholder(s3)
    f = cache / "ESP32_GENERIC_S3-20261122-v1.29.0.bin"
    f.write_bytes(img)
    entry = firmware.add(f)
    assert entry["name"] == "ESP32_GENERIC_S3" and entry["chip"] == "esp32s3" and entry["version"] == "v1.29.0"
    assert entry["sha256"] == hashlib.sha256(img).hexdigest()
    assert firmware.cached_image(s3) == img
    assert firmware.cached_image(boards.get("heltec-wifi-lora32-v3")) == img  # same image name
    with pytest.raises(ImageError, match="no MicroPython image for ttgo-lora32-v1"):
        firmware.cached_image(boards.get("ttgo-lora32-v1"))
    # An ESP32 image under an ESP32-S3 image name is refused.
    (cache / "x.bin").write_bytes(espimage.placeholder(boards.get("virtual")))
    with pytest.raises(ImageError, match="is an ESP32 image"):
        firmware.add(cache / "x.bin", "ESP32_GENERIC_S3")
    with pytest.raises(ImageError, match="give --name"):
        firmware.add(cache / "x.bin")
    # Changed on disk after it was added: refused when used.
    cached = firmware.cache_folder() / entry["file"]
    cached.write_bytes(img[:-1] + bytes([img[-1] ^ 1]))
    with pytest.raises(ImageError, match="does not match its recorded SHA-256"):
        firmware.cached_image(s3)


def test_fetch_checks_the_pinned_sha256(cache, http_dir, monkeypatch):
    root, base = http_dir
    img = espimage.placeholder(boards.get("lilygo-t3-s3"))
    (root / "s3.bin").write_bytes(img)
    index = cache / "releases.json"
    index.write_text(json.dumps({"images": {"ESP32_GENERIC_S3": {
        "version": "v1.29.0", "url": f"{base}/s3.bin", "sha256": hashlib.sha256(img).hexdigest()}}}))
    monkeypatch.setenv(firmware.INDEX_ENV, str(index))
    entry = firmware.fetch("lilygo-t3-s3")
    assert entry["chip"] == "esp32s3" and firmware.cached_image(boards.get("lilygo-t3-s3")) == img

    (root / "s3.bin").write_bytes(img + b"\0")  # the server now serves something else
    with pytest.raises(ImageError, match="SHA-256 mismatch"):
        firmware.fetch("lilygo-t3-s3")
    with pytest.raises(ImageError, match="no pinned release"):
        firmware.fetch("ttgo-lora32-v1")
    index.write_text(json.dumps({"images": {"ESP32_GENERIC_S3": {"version": "v1", "url": "http://127.0.0.1:9/x",
                                                                  "sha256": "00" * 32}}}))
    with pytest.raises(ImageError, match="cannot download"):
        firmware.fetch("lilygo-t3-s3")


def test_broken_images_are_refused(cache):
    img = bytearray(espimage.placeholder(boards.get("virtual")))
    with pytest.raises(ImageError, match="invalid header: 0xffffffff"):
        espimage.read_firmware(b"\xff" * 64)
    img[0x40] ^= 1  # a bit flipped in the bootloader
    with pytest.raises(ImageError, match=r"checksum|SHA-256"):
        espimage.read_firmware(bytes(img))


@pytest.mark.parametrize("board", ["virtual", "lilygo-t3-s3"])
def test_placeholder_with_a_code_segment_is_a_valid_image(board):
    profile = boards.get(board)
    code = bytes(range(256)) * 400
    img = espimage.placeholder(profile, code)
    fw = espimage.read_firmware(img, profile["chip"])
    assert fw.project == espimage.PLACEHOLDER_PROJECT and fw.version == "v1.29.0"
    assert code in img and len(img) > len(espimage.placeholder(profile)) + len(code)
