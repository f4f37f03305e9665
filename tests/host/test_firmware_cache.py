"""The MicroPython image cache: `firmware add` reads chip and version from the image and records its
SHA-256; `firmware fetch` downloads the release over HTTPS (from a loopback server here) and refuses a
file whose SHA-256 differs from the pinned one or, without one, from the first download's; flash
fetches what the cache lacks and refuses another MicroPython release before writing; a cached image
changed on disk is refused when used."""

from __future__ import annotations

import datetime
import hashlib
import http.server
import ipaddress
import json
import ssl
import threading

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from loraspot import boards
from loraspot.errors import ImageError
from loraspot.flash import espimage, firmware, flasher


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("LORASPOT_CACHE", str(tmp_path / "cache"))
    return tmp_path


def _self_signed(folder):
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


@pytest.fixture
def https_dir(tmp_path, monkeypatch):
    """A loopback HTTPS server for a folder, with a self-signed certificate that this process
    trusts through SSL_CERT_FILE (as OpenSSL reads it)."""
    root = tmp_path / "www"
    root.mkdir()
    cert, key = _self_signed(tmp_path)
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *a, **kw):
            super().__init__(*a, directory=str(root), **kw)

        def log_message(self, *a):
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield root, f"https://127.0.0.1:{srv.server_address[1]}"
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


def _index(cache, monkeypatch, images: dict):
    index = cache / "releases.json"
    index.write_text(json.dumps({"images": images}))
    monkeypatch.setenv(firmware.INDEX_ENV, str(index))


def test_fetch_checks_the_pinned_sha256(cache, https_dir, monkeypatch):
    root, base = https_dir
    img = espimage.placeholder(boards.get("lilygo-t3-s3"))
    (root / "s3.bin").write_bytes(img)
    _index(cache, monkeypatch, {"ESP32_GENERIC_S3": {"version": "v1.29.0", "url": f"{base}/s3.bin",
                                                     "sha256": hashlib.sha256(img).hexdigest()}})
    entry = firmware.fetch("lilygo-t3-s3")
    assert entry["chip"] == "esp32s3" and entry["trust"] == "pinned"
    assert firmware.cached_image(boards.get("lilygo-t3-s3")) == img

    (root / "s3.bin").write_bytes(img + b"\0")  # the server now serves something else
    with pytest.raises(ImageError, match="SHA-256 mismatch"):
        firmware.fetch("lilygo-t3-s3")
    with pytest.raises(ImageError, match="no pinned release"):
        firmware.fetch("ttgo-lora32-v1")
    _index(cache, monkeypatch, {"ESP32_GENERIC_S3": {"version": "v1", "url": "https://127.0.0.1:9/x",
                                                     "sha256": "00" * 32}})
    with pytest.raises(ImageError, match="cannot download"):
        firmware.fetch("lilygo-t3-s3")


def test_without_a_pinned_digest_the_first_download_is_trusted_and_recorded(cache, https_dir, monkeypatch):
    """Trust on first use: the digest is recorded and shown; a later download of the same URL with
    other bytes is refused; plain HTTP and a server whose certificate is not trusted are refused."""
    root, base = https_dir
    img = espimage.placeholder(boards.get("lilygo-t3-s3"), project="micropython")
    (root / "s3.bin").write_bytes(img)
    _index(cache, monkeypatch, {"ESP32_GENERIC_S3": {"version": "v1.29.0", "url": f"{base}/s3.bin",
                                                     "sha256": None}})
    first = firmware.fetch("lilygo-t3-s3")
    assert first["trust"] == "first use" and first["sha256"] == hashlib.sha256(img).hexdigest()
    assert first["url"] == f"{base}/s3.bin"
    assert firmware.fetch("lilygo-t3-s3")["trust"] == "recorded at first use"  # the same bytes again
    (root / "s3.bin").write_bytes(img + b"\0")  # other bytes behind the same URL
    with pytest.raises(ImageError, match=f"expected {first['sha256']}"):
        firmware.fetch("lilygo-t3-s3")
    assert firmware.cached_image(boards.get("lilygo-t3-s3")) == img  # the first one is kept

    _index(cache, monkeypatch, {"ESP32_GENERIC_S3": {"version": "v1.29.0", "url": base.replace("https", "http"),
                                                     "sha256": None}})
    with pytest.raises(ImageError, match="over HTTPS only"):
        firmware.fetch("lilygo-t3-s3")
    monkeypatch.delenv("SSL_CERT_FILE")  # the test server's certificate is no longer trusted
    _index(cache, monkeypatch, {"ESP32_GENERIC": {"version": "v1.29.0", "url": f"{base}/s3.bin", "sha256": None}})
    with pytest.raises(ImageError, match=r"cannot download.*CERTIFICATE_VERIFY_FAILED"):
        firmware.fetch("ttgo-lora32-v1")


def test_flash_fetches_an_image_the_cache_lacks_and_refuses_another_release(cache, https_dir, monkeypatch):
    root, base = https_dir
    profile = boards.get("lilygo-t3-s3")
    img = espimage.placeholder(profile, project="micropython")
    (root / "s3.bin").write_bytes(img)
    _index(cache, monkeypatch, {"ESP32_GENERIC_S3": {"version": "v1.29.0", "url": f"{base}/s3.bin",
                                                     "sha256": None}})
    assert firmware.ensure_cached(profile)["sha256"] == hashlib.sha256(img).hexdigest()
    assert firmware.ensure_cached(profile) is None  # cached now: nothing downloaded
    assert flasher.load_firmware(profile, None)[0] == img
    old = cache / "ESP32_GENERIC_S3-20260406-v1.28.0.bin"
    old.write_bytes(espimage.placeholder(profile, version="v1.28.0", project="micropython"))
    with pytest.raises(ImageError, match=r"v1\.28\.0; this loraspot is built and tested for MicroPython 1\.29"):
        flasher.build_bundle(profile, old)


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


def test_deploy_refuses_a_board_of_another_micropython_before_writing():
    from loraspot.flash.deploy import DeployError, check_runtime

    want = firmware.target()
    assert want == {"micropython": "1.29", "mpy": "6.3"}
    check_runtime({"micropython": "1.29.0", "mpy": "6.3"})
    check_runtime({})  # firmware too old to say: the deploy replaces it
    with pytest.raises(DeployError, match=r"runs MicroPython 1\.28\.0; this bundle is built and tested for 1\.29"):
        check_runtime({"micropython": "1.28.0", "mpy": "6.3"})
    with pytest.raises(DeployError, match=r"loads \.mpy 6\.2; this bundle is bytecode 6\.3"):
        check_runtime({"micropython": "1.29.0", "mpy": "6.2"})


def test_the_manifest_records_what_the_bundle_is_built_for():
    from loraspot.flash import image

    assert json.loads(image.manifest_bytes({"main.py": b"x"}))["build"] == firmware.target()
