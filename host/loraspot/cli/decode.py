from __future__ import annotations

import click

from loraspot.cli import ui
from loraspot.errors import LoraspotError
from loraspot.lorawan import lpp as cayenne
from loraspot.lorawan.decode import DecodeError, decode, parse_input


class BadFrame(LoraspotError):
    exit_code = 2


def _key(value: str | None, name: str, size: int = 16) -> bytes | None:
    if value is None:
        return None
    try:
        b = bytes.fromhex(value.replace(" ", "").replace(":", ""))
    except ValueError:
        raise click.BadParameter("expected hex", param_hint=name) from None
    if len(b) != size:
        raise click.BadParameter(f"expected {size} bytes ({2 * size} hex digits), got {len(b)}", param_hint=name)
    return b


def _print(ctx, obj: dict, indent: int = 0) -> None:
    pad = "  " * indent
    for k, v in obj.items():
        if isinstance(v, dict):
            ctx.out.print(f"{pad}{k}:", highlight=False)
            _print(ctx, v, indent + 1)
        elif isinstance(v, list) and v and isinstance(v[0], dict):
            ctx.out.print(f"{pad}{k}:", highlight=False)
            for item in v:
                ctx.out.print(f"{pad}  - " + ui.human(item), highlight=False, markup=False)
        else:
            ctx.out.print(f"{pad}{k}: {ui.human(v)}", highlight=False, markup=False)


@click.command("decode")
@click.argument("frame")
@click.option("--appkey", help="AppKey (hex): verifies joins, decrypts a Join-Accept.")
@click.option("--nwkskey", help="NwkSKey (hex): verifies a data frame's MIC, decrypts FPort 0.")
@click.option("--appskey", help="AppSKey (hex): decrypts the application payload.")
@click.option("--devnonce", help="DevNonce of the Join-Request (4 hex digits): derive the session keys.")
@click.option("--lpp", is_flag=True, help="Decode the application payload as Cayenne LPP (loraspot nodes send it).")
@click.pass_obj
def decode_cmd(ctx, frame: str, appkey: str | None, nwkskey: str | None, appskey: str | None,
               devnonce: str | None, lpp: bool) -> None:
    """Decode a LoRaWAN frame given as hex or base64 (as network servers and forwarders show it)."""
    nonce = None
    if devnonce is not None:
        try:
            nonce = int(devnonce, 16).to_bytes(2, "little")
        except (ValueError, OverflowError):
            raise click.BadParameter("expected 4 hex digits", param_hint="--devnonce") from None
    try:
        result = decode(parse_input(frame), _key(appkey, "--appkey"), _key(nwkskey, "--nwkskey"),
                        _key(appskey, "--appskey"), nonce)
    except DecodeError as e:
        raise BadFrame(f"cannot decode: {e}") from None
    if lpp:
        if "payload" not in result or not result.get("f_port"):
            raise BadFrame("--lpp needs an application payload (FPort > 0) and --appskey to decrypt it")
        try:
            result["lpp"] = [{"channel": v["channel"], "name": v["name"], "value": v["value"], "unit": v["unit"]}
                             for v in cayenne.decode(bytes.fromhex(result["payload"]))]
        except cayenne.LppError as e:
            raise BadFrame(str(e)) from None
    if ctx.json:
        ctx.emit(result)
    else:
        _print(ctx, result)


def register(cli: click.Group) -> None:
    cli.add_command(decode_cmd)
