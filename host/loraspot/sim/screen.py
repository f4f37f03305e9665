"""What a virtual board's display shows, as an image: `loraspot sim screenshot`, and the reference
pictures of the display tests (tests/data/display/)."""

from __future__ import annotations

import json
from pathlib import Path

from loraspot import localports
from loraspot.errors import LoraspotError


class ScreenError(LoraspotError):
    exit_code = 2


def image(rows: bytes, width: int, height: int, scale: int = 1):
    """A Pillow image of the panel: lit pixels light blue on black, as on the common modules."""
    from PIL import Image

    if len(rows) != width * height // 8:
        raise ScreenError(f"a {width}x{height} picture is {width * height // 8} bytes, got {len(rows)}")
    mono = Image.frombytes("1", (width, height), bytes(rows))  # rows of pixels, MSB on the left
    img = Image.new("RGB", (width, height))
    img.paste((140, 210, 255), mask=mono)
    return img.resize((width * scale, height * scale), Image.Resampling.NEAREST) if scale > 1 else img


def rows_of(path: Path) -> tuple[bytes, int, int]:
    """(rows, width, height) of a picture made by image() (any scale): lit where not black."""
    from PIL import Image

    with Image.open(path) as im:
        im = im.convert("L")
        return _downscale(im)


def _downscale(im) -> tuple[bytes, int, int]:
    from PIL import Image

    w, h = im.size
    for width, height in ((128, 64), (128, 32)):
        if w % width == 0 and h % height == 0 and w // width == h // height:
            small = im.resize((width, height), Image.Resampling.NEAREST).point(lambda v: 255 if v else 0).convert("1")
            return small.tobytes(), width, height
    raise ScreenError(f"a {w}x{h} picture is not a 128x64 or 128x32 display at a whole scale")


def board_entry(port: str) -> dict:
    """The running virtual board serving `port` (its pty path or RFC 2217 URL)."""
    for info in localports.announced():
        if port in (info.get("url"), info.get("reset_url")):
            return info
    raise ScreenError(f"{port}: no running virtual board serves this port (loraspot ports lists them)")


def current(port: str) -> tuple[bytes, int, int]:
    from loraspot.sim.parts import screen_file

    info = board_entry(port)
    try:
        shot = json.loads(screen_file(info["serial_number"]).read_text())
    except FileNotFoundError:
        raise ScreenError(f"{port}: the board's display has shown nothing yet (config display true, "
                          "on a board profile with a display)") from None
    except (OSError, ValueError) as e:
        raise ScreenError(f"{port}: the display's picture could not be read: {e}") from None
    return bytes.fromhex(shot["rows"]), shot["width"], shot["height"]
