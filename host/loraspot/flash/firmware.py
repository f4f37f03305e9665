"""The MicroPython image cache: official images kept by image name (the board profile's
`image.name`, e.g. ESP32_GENERIC_S3) with the SHA-256 recorded when they entered the cache and
checked every time one is used. Images enter by `firmware add FILE` or `firmware fetch --board X`
(and `flash` fetches when the cache has none), which downloads over HTTPS the release named for
that image in the release index. Trust: a SHA-256 pinned in the index is checked; without one the
digest of the first download is recorded and shown (trust on first use) and every later download
of the same URL must match it (docs/flashing.md)."""

from __future__ import annotations

import hashlib
import json
import os
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit

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


class NotCached(ImageError):
    """No image for this image name in the cache yet."""


def add(path: Path, name: str | None = None, expect_sha256: str | None = None, source: dict | None = None) -> dict:
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
        raise ImageError(f"SHA-256 mismatch for {Path(path).name}: expected {expect_sha256}, file has {digest}")
    folder = cache_folder()
    folder.mkdir(parents=True, exist_ok=True)
    fname = f"{name}-{fw.version or 'unknown'}.bin"
    tmp = folder / (fname + ".tmp")
    tmp.write_bytes(data)
    tmp.replace(folder / fname)
    entry = {"file": fname, "sha256": digest, "chip": fw.chip, "version": fw.version, "size": len(data),
             **(source or {})}
    index = _cache_index()
    index[name] = entry
    _write_index(index)
    return {"name": name, **entry}


def cached_image(profile: dict) -> bytes:
    """The cached image for a board profile, its SHA-256 checked against the recorded one."""
    name = profile["image"]["name"]
    entry = _cache_index().get(name)
    if entry is None:
        raise NotCached(f"no MicroPython image for {profile['id']} ({name}) in the cache: run "
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


def _index_file() -> Path:
    src = os.environ.get(INDEX_ENV)
    return Path(src) if src else Path(__file__).with_name("releases.json")


def release_index() -> dict:
    """The releases: image name -> {"version", "url", "sha256" (null: trust on first use)}."""
    path = _index_file()
    try:
        return json.loads(path.read_text())["images"]
    except (OSError, ValueError, KeyError) as e:
        raise ImageError(f"cannot read the release index {path}: {e}") from None


def target() -> dict:
    """The MicroPython release and .mpy format the app is built and tested for, from the packaged
    release index: {"micropython": "1.29", "mpy": "6.3"}."""
    data = json.loads(Path(__file__).with_name("releases.json").read_text())
    return {"micropython": data["micropython"], "mpy": data["mpy"]}


def ensure_cached(profile: dict, timeout: float = 60.0) -> dict | None:
    """The board's image in the cache, fetched if it is not there yet: the fetch entry (to show
    its digest), or None when the cache had it already."""
    try:
        cached_image(profile)
        return None
    except NotCached:
        return fetch(profile["id"], timeout)


def fetch(board_id: str, timeout: float = 60.0) -> dict:
    """Download the release pinned for a board's image name and add it to the cache."""
    profile = boards.get(board_id)
    name = profile["image"]["name"]
    rel = release_index().get(name)
    if rel is None:
        raise ImageError(f"no pinned release for {name} ({board_id}): download it yourself and "
                         "`loraspot firmware add FILE`")
    url = rel["url"]
    if urlsplit(url).scheme != "https":
        raise ImageError(f"{url}: MicroPython images are downloaded over HTTPS only")
    pinned = rel.get("sha256")
    known = _cache_index().get(name) or {}
    # trust on first use: without a pinned digest, the one recorded at the first download of this
    # URL must come again
    recorded = known.get("sha256") if known.get("url") == url else None
    expect = pinned or recorded
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            data = r.read()
    except (urllib.error.URLError, OSError) as e:
        raise ImageError(f"cannot download {url}: {getattr(e, 'reason', e)} (offline?)") from None
    folder = cache_folder()
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f"{name}.download"
    tmp.write_bytes(data)
    trust = "pinned" if pinned else "recorded at first use" if recorded else "first use"
    try:
        return add(tmp, name, expect, {"url": url, "trust": trust})
    finally:
        tmp.unlink(missing_ok=True)
