"""Labels for a batch (`loraspot labels`): per board its name, DevEUI or gateway EUI, a QR code and
its pairing code, on A4 sheets (PDF or PNG) a hardware maker prints and sticks on the boxes.

A node's QR code is the LoRa Alliance TR005 device identification code, as The Things Stack reads
it (pkg/qrcodegenerator/qrcode/enddevices/lora_alliance_tr005.go in TheThingsNetwork/lorawan-stack):
``LW:D0:<JoinEUI>:<DevEUI>:<ProfileID>`` (EUIs and the 4-byte profile ID, VendorID then ModelID, in
upper-case hex) then optional ``:S<serial number>`` (here the board's MAC) and ``:P<proprietary>``,
where the AppKey goes only when asked (a label is not a safe place for a key). A hotspot's QR code
holds its gateway EUI (TR005 covers end devices only).

The pairing code is the passphrase of the board's set-up access point: made once per board when it
is provisioned, kept sealed in the inventory like its keys, printed on its label."""

from __future__ import annotations

from pathlib import Path

from loraspot.errors import LoraspotError
from loraspot.provision.inventory import Device, Inventory, hex_id, pairing_code

DPI = 300
PAGE = (2480, 3508)  # A4 at 300 dpi
COLUMNS, ROWS = 2, 6
MARGIN = 90


class LabelError(LoraspotError):
    exit_code = 2


def tr005(join_eui: str, dev_eui: str, profile_id: str = "00000000", serial: str | None = None,
          app_key: bytes | None = None) -> str:
    """The TR005 QR code content of an end device."""
    profile = hex_id(profile_id, 8, "profile ID (VendorID + ModelID)", LabelError)
    text = f"LW:D0:{hex_id(join_eui, 16, 'JoinEUI', LabelError)}:{hex_id(dev_eui, 16, 'DevEUI', LabelError)}:{profile}"
    if serial:
        text += f":S{serial}"
    if app_key is not None:
        text += f":P{app_key.hex().upper()}"
    return text


def label_data(inv: Inventory, d: Device, profile_id: str, with_app_key: bool) -> dict:
    pairing = pairing_code(inv, d.dev_eui)
    if d.role == "hotspot":
        eui = d.gateway_eui or d.dev_eui
        return {"name": d.name or eui, "lines": [f"Gateway EUI {eui}", f"MAC {d.mac or '-'}"], "qr": eui,
                "pairing": pairing, "dev_eui": d.dev_eui}
    key = None
    if with_app_key:
        if "app_key" not in inv.secret_kinds(d.dev_eui):
            raise LabelError(f"{d.dev_eui} has no AppKey in the inventory")
        key = inv.secret(d.dev_eui, "app_key")
    join = d.join_eui or "0000000000000000"
    return {"name": d.name or d.dev_eui, "lines": [f"DevEUI {d.dev_eui}", f"JoinEUI {join}", f"MAC {d.mac or '-'}"],
            "qr": tr005(join, d.dev_eui, profile_id, d.mac, key), "pairing": pairing, "dev_eui": d.dev_eui}


def render(labels: list[dict], out: Path) -> list[Path]:
    """Draw the labels on A4 pages: out.pdf (all pages) or out.png (out-2.png ... for more pages)."""
    from loraspot.extras import need

    segno = need("segno", "labels", "loraspot labels")
    need("PIL", "labels", "loraspot labels")
    from PIL import Image, ImageDraw, ImageFont

    if out.suffix.lower() not in (".pdf", ".png"):
        raise LabelError(f"{out}: give a .pdf or .png file")
    big, small = ImageFont.load_default(size=54), ImageFont.load_default(size=38)
    cell_w = (PAGE[0] - 2 * MARGIN) // COLUMNS
    cell_h = (PAGE[1] - 2 * MARGIN) // ROWS
    pages = []
    per_page = COLUMNS * ROWS
    for start in range(0, len(labels), per_page):
        page = Image.new("L", PAGE, 255)
        draw = ImageDraw.Draw(page)
        for i, lab in enumerate(labels[start:start + per_page]):
            x = MARGIN + (i % COLUMNS) * cell_w
            y = MARGIN + (i // COLUMNS) * cell_h
            draw.rectangle((x + 10, y + 10, x + cell_w - 10, y + cell_h - 10), outline=160, width=3)  # cut line
            qr = segno.make(lab["qr"], error="m")
            side = cell_h - 80
            scale = max(1, int(side // qr.symbol_size(scale=1, border=4)[0]))
            img = _qr_image(qr, scale)
            page.paste(img, (x + 40, y + (cell_h - img.size[1]) // 2))
            tx = x + 60 + img.size[0]
            ty = y + 60
            draw.text((tx, ty), lab["name"][:18], font=big, fill=0)
            ty += 90
            for line in lab["lines"]:
                draw.text((tx, ty), line, font=small, fill=0)
                ty += 52
            draw.text((tx, ty + 20), f"Pairing {lab['pairing']}", font=small, fill=0)
        pages.append(page)
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix.lower() == ".pdf":
        pages[0].save(out, save_all=True, append_images=pages[1:], resolution=DPI)
        return [out]
    written = []
    for n, page in enumerate(pages, 1):
        path = out if n == 1 else out.with_name(f"{out.stem}-{n}{out.suffix}")
        page.save(path, dpi=(DPI, DPI))
        written.append(path)
    return written


def _qr_image(qr, scale: int):
    import io

    from PIL import Image

    buf = io.BytesIO()
    qr.save(buf, kind="png", scale=scale, border=4)
    buf.seek(0)
    return Image.open(buf).convert("L")
