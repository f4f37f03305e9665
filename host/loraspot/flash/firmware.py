"""The MicroPython image cache: official images kept by image name (the board profile's
`image.name`, e.g. ESP32_GENERIC_S3) with the SHA-256 recorded when they entered the cache and
checked every time one is used. Images enter by `firmware add FILE` or `firmware fetch --board X`,
which downloads the release pinned for that image name in a release index (URL, version, SHA-256)
and refuses a download whose SHA-256 differs from the pinned one."""

from __future__ import annotations

import hashlib
import json
import os
import urllib.error
import urllib.request
from pathlib import Path

from loraspot import boards, resources
from loraspot.errors import ImageError
from loraspot.flash import espimage

INDEX_ENV = "LORASPOT_FIRMWARE_INDEX"  # a release index to use instead of the packaged one


def cache_folder() -> Path:
    return resources.cache_dir() / "firmware"


def _cache_index() -> dict:
    path = cache_folder() / "index.json"
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as e:
        raise ImageError(f"the firmware cache index {path} is unreadable ({e}); remove it and add the images "
                         "again") from None


def _write_index(index: dict) -> None:
    folder = cache_folder()
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / "index.json.tmp"
    tmp.write_text(json.dumps(index, indent=1, sort_keys=True))
    tmp.replace(folder / "index.json")


def image_names() -> dict[str, list[dict]]:
    """Image name -> the board profiles that use it."""
    out: dict[str, list[dict]] = {}
    for p in boards.all_boards().values():
        out.setdefault(p["image"]["name"], []).append(p)
    return out


def add(path: Path, name: str | None = None, expect_sha256: str | None = None) -> dict:
    """Put an image into the cache under its image name (given, or the known image name its file
    name starts with); the chip and version are read from the image. Returns the cache entry."""
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        raise ImageError(f"cannot read {path}: {e.strerror}") from None
    names = image_names()
    if name is None:
        stem = Path(path).name
        candidates = sorted((n for n in names if stem.startswith(n + "-") or stem.startswith(n + ".")), key=len)
        if not candidates:
            known = ", ".join(sorted(names))
            raise ImageError(f"cannot tell the image name from '{stem}': give --name (one of {known})")
        name = candidates[-1]
    if name not in names:
        raise ImageError(f"no board profile uses the image name {name!r} (known: {', '.join(sorted(names))})")
    fw = espimage.read_firmware(data)
    chips = {p["chip"] for p in names[name]}
    if fw.chip not in chips:
        raise ImageError(f"{Path(path).name} is an {espimage.chip_name(fw.chip)} image; {name} boards have an "
                         f"{', '.join(espimage.chip_name(c) for c in sorted(chips))}")
    digest = hashlib.sha256(data).hexdigest()
    if expect_sha256 and digest != expect_sha256.lower():
        raise ImageError(f"SHA-256 mismatch for {Path(path).name}: pinned {expect_sha256}, file has {digest}")
    folder = cache_folder()
    folder.mkdir(parents=True, exist_ok=True)
    fname = f"{name}-{fw.version or 'unknown'}.bin"
    tmp = folder / (fname + ".tmp")
    tmp.write_bytes(data)
    tmp.replace(folder / fname)
    entry = {"file": fname, "sha256": digest, "chip": fw.chip, "version": fw.version, "size": len(data)}
    index = _cache_index()
    index[name] = entry
    _write_index(index)
    return {"name": name, **entry}


def cached_image(profile: dict) -> bytes:
    """The cached image for a board profile, its SHA-256 checked against the recorded one."""
    name = profile["image"]["name"]
    entry = _cache_index().get(name)
    if entry is None:
        raise ImageError(f"no MicroPython image for {profile['id']} ({name}) in the cache: run "
                         f"`loraspot firmware fetch --board {profile['id']}` or `loraspot firmware add FILE`, "
                         "or give --image FILE")
    path = cache_folder() / entry["file"]
    try:
        data = path.read_bytes()
    except OSError:
        raise ImageError(f"the cached image {path} is missing: add or fetch it again") from None
    if hashlib.sha256(data).hexdigest() != entry["sha256"]:
        raise ImageError(f"the cached image {path} does not match its recorded SHA-256 (changed or corrupt): "
                         "add or fetch it again")
    return data


def listing() -> list[dict]:
    return [{"name": k, **v} for k, v in sorted(_cache_index().items())]


def release_index() -> dict:
    """The pinned releases: image name -> {"version", "url", "sha256"}."""
    src = os.environ.get(INDEX_ENV)
    path = Path(src) if src else Path(__file__).with_name("releases.json")
    try:
        return json.loads(path.read_text())["images"]
    except (OSError, ValueError, KeyError) as e:
        raise ImageError(f"cannot read the release index {path}: {e}") from None


def fetch(board_id: str, timeout: float = 60.0) -> dict:
    """Download the release pinned for a board's image name and add it to the cache."""
    profile = boards.get(board_id)
    name = profile["image"]["name"]
    rel = release_index().get(name)
    if rel is None:
        raise ImageError(f"no pinned release for {name} ({board_id}): download it yourself and "
                         "`loraspot firmware add FILE`")
    if not rel.get("sha256"):
        raise ImageError(f"the release of {name} has no pinned SHA-256: download {rel['url']}, check it, and "
                         "`loraspot firmware add FILE`")
    try:
        with urllib.request.urlopen(rel["url"], timeout=timeout) as r:
            data = r.read()
    except (urllib.error.URLError, OSError) as e:
        raise ImageError(f"cannot download {rel['url']}: {getattr(e, 'reason', e)} (offline?)") from None
    folder = cache_folder()
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f"{name}.download"
    tmp.write_bytes(data)
    try:
        return add(tmp, name, rel["sha256"])
    finally:
        tmp.unlink(missing_ok=True)
