"""loraspot ledger: receipt batches checked into a ledger, inclusion proofs out of it, and proofs
checked offline (docs/proofs.md)."""

from __future__ import annotations

import json
from pathlib import Path

import click
import platformdirs

from loraspot.errors import LoraspotError
from loraspot.proofs.ledger import Ledger, LedgerError, Refused, verify_proof
from loraspot.proofs.receipts import Batch


class BadInput(LoraspotError):
    exit_code = 2


def default_ledger() -> Path:
    return Path(platformdirs.user_data_dir("loraspot")) / "ledger.sqlite"


LEDGER = click.option("--ledger", "ledger_path", type=click.Path(dir_okay=False, path_type=Path),
                      default=default_ledger, show_default="the user's data folder",
                      help="The ledger's SQLite file.")


def _hex(value: str, what: str, size: int | None = None) -> bytes:
    try:
        b = bytes.fromhex(value.strip().replace(":", ""))
    except ValueError:
        raise BadInput(f"{what} must be hex") from None
    if size is not None and len(b) != size:
        raise BadInput(f"{what} must be {size} bytes ({2 * size} hex digits), got {len(b)}")
    return b


@click.group("ledger")
def ledger_group() -> None:
    """Receipt batches signed by hotspots: check them into a ledger, prove a frame was heard."""


@ledger_group.command("gateways")
@LEDGER
@click.option("--inventory", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="The inventory whose hotspots' identity keys the ledger trusts.")
@click.pass_obj
def gateways_cmd(ctx, ledger_path: Path, inventory: Path | None) -> None:
    """Trust the identity keys of the inventory's hotspots (made on each board at provisioning)."""
    from loraspot.provision.inventory import Inventory

    with Inventory(inventory) as inv:
        found = [(d.gateway_eui, d.identity) for d in inv.devices() if d.gateway_eui and d.identity]
    ledger_path.parent.mkdir(parents=True, exist_ok=True)
    with Ledger(ledger_path) as led:
        for eui, pub in found:
            led.add_gateway(eui, pub)
    if ctx.json:
        ctx.emit({"gateways": [e for e, _ in found]})
    else:
        ctx.out.print(f"{len(found)} gateway identities in {ledger_path}", highlight=False)


@ledger_group.command("ingest")
@LEDGER
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.pass_obj
def ingest_cmd(ctx, ledger_path: Path, files: tuple[Path, ...]) -> None:
    """Check batches (JSON lines, as hotspots send them) into the ledger; each is taken or refused
    with the reason, and the exit code says whether any was refused."""
    results = []
    ledger_path.parent.mkdir(parents=True, exist_ok=True)
    with Ledger(ledger_path) as led:
        for path in files:
            for n, line in enumerate(path.read_text().splitlines(), 1):
                if not line.strip():
                    continue
                where = f"{path}:{n}"
                try:
                    batch = Batch.from_json(json.loads(line))
                except ValueError as e:  # json's errors included
                    results.append({"at": where, "ok": False, "reason": "unreadable", "error": str(e)})
                    continue
                eui = batch.header.gateway_eui.hex().upper()
                try:
                    led.ingest(batch)
                    results.append({"at": where, "ok": True, "gateway_eui": eui, "seq": batch.header.seq,
                                    "records": batch.header.count})
                except Refused as e:
                    results.append({"at": where, "ok": False, "gateway_eui": eui, "seq": batch.header.seq,
                                    "reason": e.reason, "error": str(e)})
    if ctx.json:
        ctx.emit(results)
    else:
        for r in results:
            text = (f"{r['at']}: taken, {r['gateway_eui']} batch {r['seq']} ({r['records']} records)" if r["ok"]
                    else f"{r['at']}: refused, {r['error']}")
            ctx.out.print(text, highlight=False, markup=False)
    refused = sum(not r["ok"] for r in results)
    if refused:
        raise LedgerError(f"{refused} of {len(results)} batches refused")


@ledger_group.command("prove")
@LEDGER
@click.option("--frame", required=True, help="The frame's PHYPayload, hex.")
@click.pass_obj
def prove_cmd(ctx, ledger_path: Path, frame: str) -> None:
    """The inclusion proofs of a frame: one per hotspot that heard it (JSON; give it to `ledger
    verify` with the gateway's public key)."""
    if not ledger_path.exists():
        raise LedgerError(f"{ledger_path}: no ledger there")
    with Ledger(ledger_path) as led:
        proofs = led.prove(_hex(frame, "--frame"))
    if not proofs:
        raise LedgerError("no batch in the ledger holds this frame")
    click.echo(json.dumps(proofs, indent=1))


@ledger_group.command("verify")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--key", "key_hex", default=None, help="The gateway's public identity key, hex (else --inventory).")
@click.option("--inventory", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="An inventory holding the gateway's identity key.")
@click.option("--frame", default=None, help="The frame's PHYPayload, hex: also check the proof is of this frame.")
@click.pass_obj
def verify_cmd(ctx, file: Path, key_hex: str | None, inventory: Path | None, frame: str | None) -> None:
    """Check inclusion proofs offline (`ledger prove`'s output): each record was in a batch the
    gateway signed."""
    try:
        proofs = json.loads(file.read_text())
    except ValueError as e:
        raise BadInput(f"{file}: not JSON ({e})") from None
    proofs = proofs if isinstance(proofs, list) else [proofs]
    keys: dict[str, bytes] = {}
    key = _hex(key_hex, "--key", 32) if key_hex is not None else None
    if key is None:
        if inventory is None:
            raise BadInput("give the gateway's public key (--key) or an inventory that holds it (--inventory)")
        from loraspot.provision.inventory import Inventory

        with Inventory(inventory) as inv:
            keys = {d.gateway_eui: bytes.fromhex(d.identity) for d in inv.devices() if d.gateway_eui and d.identity}
    phy = _hex(frame, "--frame") if frame is not None else None
    out = []
    for p in proofs:
        eui = str(p.get("gateway_eui", "")) if isinstance(p, dict) else ""
        k = key if key is not None else keys.get(eui.upper())
        if k is None:
            raise LedgerError(f"no identity key for gateway {eui or '?'}: give --key or --inventory")
        rec = verify_proof(p if isinstance(p, dict) else {}, k, phy)
        out.append({"gateway_eui": eui, "ok": True, "time_ms": rec.time_ms, "freq": rec.freq, "sf": rec.sf,
                    "rssi": rec.rssi, "snr": rec.snr_tenths / 10})
    if ctx.json:
        ctx.emit(out)
    else:
        for r in out:
            ctx.out.print(f"{r['gateway_eui']}: heard at {r['time_ms']} ms UTC on {r['freq']} Hz SF{r['sf']}, "
                          f"RSSI {r['rssi']} dBm, SNR {r['snr']} dB: proof holds", highlight=False, markup=False)


def register(cli: click.Group) -> None:
    cli.add_command(ledger_group)
