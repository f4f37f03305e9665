from __future__ import annotations

import json

import click

from loraspot.cli.device import INVENTORY


@click.command("setup")
@click.option("--url", default=None, metavar="URL",
              help="The set-up page, with this computer on the board's access point (default http://192.168.4.1/).")
@click.option("--port", default=None, help="A running virtual board's port: its access point through the sim's air.")
@click.option("--pairing-code", default=None, help="The access point's passphrase (default: from the inventory).")
@click.option("--wifi-ssid", default=None, help="The Wi-Fi network the board joins.")
@click.option("--wifi-password", default=None, help="Its password (never shown again).")
@click.option("--server", default=None, help="The backhaul server (network server or MQTT broker host).")
@click.option("--region", default=None, help="The LoRaWAN region (EU868, US915, ...).")
@INVENTORY
@click.pass_obj
def setup_cmd(ctx, url, port, pairing_code, wifi_ssid, wifi_password, server, region, inventory) -> None:
    """Set a board's Wi-Fi, server and region through its set-up access point (a board without
    Wi-Fi, or after a 5 s press of its button with the display on). A locked board's change is
    signed with its admin key from the inventory."""
    from loraspot import setup

    values = {k: v for k, v in (("wifi_ssid", wifi_ssid), ("wifi_password", wifi_password), ("server", server),
                                ("region", region)) if v is not None}
    if url and port:
        raise setup.SetupError("give --url or --port, not both")
    page = setup.virtual_page(port, pairing_code, inventory) if port else setup.Page(url=url)
    out = setup.apply(page, values, inventory)
    if ctx.json:
        click.echo(json.dumps({"event": "setup", **out}))
    else:
        click.echo(f"set {', '.join(out.get('applied', []))}; the board restarts and joins its network")


def register(cli: click.Group) -> None:
    cli.add_command(setup_cmd)
