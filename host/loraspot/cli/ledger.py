"""loraspot ledger: receipt batches checked into a ledger, inclusion proofs out of it, and proofs
checked offline (docs/proofs.md)."""

from __future__ import annotations

import json
from pathlib import Path

import click
import platformdirs

from loraspot.cli import options
from loraspot.errors import LoraspotError
from loraspot.proofs.ledger import Ledger, LedgerError, Refused, verify_proof
from loraspot.proofs.receipts import Batch
from loraspot.proofs.witness import ENVIRONMENTS, TOLERANCE_DB
from loraspot.store import where


class BadInput(LoraspotError):
    exit_code = 2


def default_ledger() -> Path:
    return Path(platformdirs.user_data_dir("loraspot")) / "ledger.sqlite"


LEDGER = click.option("--ledger", "ledger_path", type=options.StoreTarget(), envvar="LORASPOT_LEDGER",
                      default=default_ledger, show_default="the user's data folder",
                      help="The ledger: an SQLite file, or a PostgreSQL server's postgresql://USER@HOST/DB "
                           "(also LORASPOT_LEDGER).")


def _made(target: Path | str) -> None:
    """A ledger about to be opened for writing: a file's folder made (a server's database is)."""
    if isinstance(target, Path):
        target.parent.mkdir(parents=True, exist_ok=True)


def _existing(target: Path | str) -> None:
    """A ledger only read: a file that is not there is said so, not made."""
    if isinstance(target, Path) and not target.exists():
        raise LedgerError(f"{target}: no ledger there")


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
@options.inventory("The inventory whose hotspots' identity keys the ledger trusts (default: the user's).")
@click.pass_obj
def gateways_cmd(ctx, ledger_path: Path | str, inventory: Path | str | None) -> None:
    """Trust the identity keys of the inventory's hotspots (made on each board at provisioning)."""
    from loraspot.provision.inventory import Inventory

    with Inventory(inventory) as inv:
        found = [(d.gateway_eui, d.identity) for d in inv.devices() if d.gateway_eui and d.identity]
    _made(ledger_path)
    with Ledger(ledger_path) as led:
        for eui, pub in found:
            led.add_gateway(eui, pub)
    if ctx.json:
        ctx.emit({"gateways": [e for e, _ in found]})
    else:
        ctx.out.print(f"{len(found)} gateway identities in {where(ledger_path)}", highlight=False)


@ledger_group.command("ingest")
@LEDGER
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.pass_obj
def ingest_cmd(ctx, ledger_path: Path | str, files: tuple[Path, ...]) -> None:
    """Check batches (JSON lines, as hotspots send them) into the ledger; each is taken or refused
    with the reason, and the exit code says whether any was refused."""
    results = []
    _made(ledger_path)
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


@ledger_group.command("serve")
@LEDGER
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8780, show_default=True, type=click.IntRange(0, 65535),
              help="TCP port (a hotspot's ledger_server_port).")
@options.inventory("Trust the identity keys of this inventory's hotspots first (as `ledger gateways`).",
                   envvar=False)
@click.option("--mqtt", "mqtt_url", default=None, metavar="mqtt://HOST:PORT",
              help="Also take the batches hotspots on the MQTT backhaul publish to this broker.")
@click.option("--mqtt-prefix", default="eu868", show_default=True, help="Topic prefix of the hotspots' MQTT topics.")
@click.option("--anchor-chain", default=None, metavar="URL",
              help="Also write the ledger's head to this chain now and then (as `ledger anchor --chain`).")
@click.option("--anchor-every", default=3600.0, show_default=True, type=click.FloatRange(min=1),
              help="Seconds between anchors (only when something new was taken).")
@click.option("--anchor-key-file", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="The sending account's private key (hex), as `ledger anchor --key-file`.")
@click.option("--challenge-every", default=0.0, show_default=True, type=click.FloatRange(min=0),
              help="Seconds between challenges to each hotspot (a nonce with the answer to its upload, "
                   "which it beacons with); 0: none.")
@click.pass_obj
def serve_cmd(ctx, ledger_path: Path | str, host: str, port: int, inventory: Path | str | None, mqtt_url: str | None,
              mqtt_prefix: str, anchor_chain: str | None, anchor_every: float, anchor_key_file: Path | None,
              challenge_every: float) -> None:
    """Take the batches hotspots upload (their ledger_server setting) or publish (the MQTT
    backhaul, with --mqtt): each checked into the ledger or refused with its reason, one line
    each. Ctrl-C stops."""
    import sys

    from loraspot.proofs.service import LedgerService

    if inventory is not None:
        ctx.invoke(gateways_cmd, ledger_path=ledger_path, inventory=inventory)
    _made(ledger_path)

    anchorer = None
    if anchor_chain is not None:
        from loraspot.proofs.anchor import Anchorer, connect

        anchorer = Anchorer(connect(anchor_chain), anchor_key_file)

    def log(r: dict) -> None:
        if ctx.json:
            click.echo(json.dumps(r))
        elif r["peer"] == "anchor":
            a = r.get("anchor")
            click.echo(f"anchored head {a['head']} ({a['batches']} batches) in transaction {a['tx']}" if a
                       else f"anchor failed: {r['error']}")
        elif r["ok"]:
            click.echo(f"taken: {r['gateway_eui']} batch {r['seq']} ({r['records']} records)")
        else:
            click.echo(f"refused ({r['peer']}): {r['error']}")
        sys.stdout.flush()

    try:
        service = LedgerService(ledger_path, host, port, log, mqtt=mqtt_url, mqtt_prefix=mqtt_prefix)
    except OSError as e:
        raise LedgerError(f"{host}:{port}: cannot listen there ({e.strerror or e})") from None
    if not ctx.json:
        also = f" and {mqtt_url} ({mqtt_prefix}/gateway/+/event/receipts)" if mqtt_url else ""
        click.echo(f"loraspot ledger serving on http://{host}:{service.address[1]}/batches{also} "
                   f"({where(ledger_path)}); Ctrl-C stops")
        sys.stdout.flush()
    if anchorer is not None:
        service.anchor_every(anchorer, anchor_every)
    if challenge_every:
        service.challenge_every(challenge_every)
    try:
        service.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        service.close()


@ledger_group.command("pull")
@LEDGER
@options.port("url")
@click.option("--baud", type=click.IntRange(300, 5_000_000), default=115200, show_default=True,
              help="Console baud rate.")
@options.inventory("Inventory with the board's admin key, for a locked board (default: the user's).")
@click.pass_obj
def pull_cmd(ctx, ledger_path: Path | str, url: str, baud: int, inventory: Path | str | None) -> None:
    """Take the batches a hotspot holds over its console (one without a ledger service, or cut off
    from it) into the ledger; each one the ledger has leaves the board, a refused one stays."""
    from loraspot.cli.device import _connect_signed
    from loraspot.proofs.receipts import batch_from_bytes

    _made(ledger_path)
    client, _ = _connect_signed(url, baud, inventory)
    results = []
    try:
        with Ledger(ledger_path) as led:
            for seq in client.request("receipts.batch")["held"]:
                data = b""
                while True:
                    piece = client.request("receipts.batch", {"seq": seq, "offset": len(data)})
                    data += bytes.fromhex(piece["data"])
                    if len(data) >= piece["size"] or not piece["data"]:
                        break
                try:
                    batch = batch_from_bytes(data)
                    led.ingest(batch)
                    r = {"seq": seq, "ok": True, "records": batch.header.count}
                except Refused as e:
                    r = {"seq": seq, "ok": e.reason == "replayed", "reason": e.reason, "error": str(e)}
                except ValueError as e:
                    r = {"seq": seq, "ok": False, "reason": "unreadable", "error": str(e)}
                if r["ok"]:  # the ledger has it: it leaves the board
                    client.request("receipts.taken", {"seq": seq})
                results.append(r)
    finally:
        client.close()
    if ctx.json:
        ctx.emit(results)
    else:
        for r in results:
            if not r["ok"]:
                text = f"batch {r['seq']}: refused, {r['error']} (kept on the board)"
            elif "records" in r:
                text = f"batch {r['seq']}: taken ({r['records']} records)"
            else:
                text = f"batch {r['seq']}: in the ledger already"
            ctx.out.print(text, highlight=False, markup=False)
        if not results:
            ctx.out.print("no batch held on the board", highlight=False)
    refused = sum(not r["ok"] for r in results)
    if refused:
        raise LedgerError(f"{refused} of {len(results)} batches refused")


@ledger_group.command("anchor")
@LEDGER
@click.option("--chain", required=True, metavar="URL",
              help="An Ethereum-compatible JSON-RPC node (http(s)://), or eth-tester for a chain in this process.")
@click.option("--key-file", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="A file holding the sending account's private key (hex); else the node's first unlocked account.")
@click.pass_obj
def anchor_cmd(ctx, ledger_path: Path | str, chain: str, key_file: Path | None) -> None:
    """Write the ledger's head (it commits to every batch taken) to the chain as a transaction's
    data; nothing is written when nothing was taken since the last anchor."""
    from loraspot.proofs.anchor import Anchorer, connect

    _existing(ledger_path)
    w3 = connect(chain)
    with Ledger(ledger_path) as led:
        got = Anchorer(w3, key_file).anchor(led)
    if ctx.json:
        ctx.emit(got or {"anchored": False})
    elif got is None:
        ctx.out.print("nothing new to anchor since the last anchor", highlight=False)
    else:
        ctx.out.print(f"anchored head {got['head']} ({got['batches']} batches) in transaction {got['tx']}, "
                      f"block {got['block']} of chain {got['chain_id']}", highlight=False, markup=False)


@ledger_group.command("anchors")
@LEDGER
@click.option("--chain", default=None, metavar="URL", help="Also check each anchor is on this chain.")
@click.pass_obj
def anchors_cmd(ctx, ledger_path: Path | str, chain: str | None) -> None:
    """The anchors written so far (and, with --chain, whether the chain holds each one), and how
    many tries to write one failed."""
    from loraspot.proofs.anchor import check, connect

    _existing(ledger_path)
    with Ledger(ledger_path) as led:
        rows = led.db.execute("SELECT head, batches, chain_id, tx, block, anchored_at FROM anchors "
                              "ORDER BY id").fetchall()
        failures = led.db.execute("SELECT count(*) FROM anchor_failures").fetchone()[0]
    w3 = connect(chain) if chain else None
    out = []
    for head, batches, chain_id, tx, block, at in rows:
        a = {"head": head.hex(), "batches": batches, "chain_id": chain_id, "tx": tx, "block": block, "at": at}
        if w3 is not None:
            a["on_chain"] = check(w3, tx, head)
        out.append(a)
    if ctx.json:
        ctx.emit({"anchors": out, "failures": failures})
        return
    for a in out:
        held = "" if "on_chain" not in a else ("; on the chain" if a["on_chain"] else "; NOT on the chain")
        ctx.out.print(f"block {a['block']}: {a['batches']} batches, head {a['head']}, tx {a['tx']}{held}",
                      highlight=False, markup=False)
    ctx.out.print(f"{len(out)} anchors, {failures} failed tries", highlight=False)
    if w3 is not None and not all(a["on_chain"] for a in out):
        raise LedgerError("an anchor is not on the chain")


@ledger_group.command("prove")
@LEDGER
@click.option("--frame", required=True, help="The frame's PHYPayload, hex.")
@click.pass_obj
def prove_cmd(ctx, ledger_path: Path | str, frame: str) -> None:
    """The inclusion proofs of a frame: one per hotspot that heard it (JSON; give it to `ledger
    verify` with the gateway's public key)."""
    _existing(ledger_path)
    with Ledger(ledger_path) as led:
        proofs = led.prove(_hex(frame, "--frame"))
    if not proofs:
        raise LedgerError("no batch in the ledger holds this frame")
    click.echo(json.dumps(proofs, indent=1))


@ledger_group.command("track")
@click.argument("dev_eui")
@LEDGER
@click.option("--frames", "frames_path", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="The network server's frames: what `loraspot listen --json` printed (JSON lines).")
@click.pass_obj
def track_cmd(ctx, dev_eui: str, ledger_path: Path | str, frames_path: Path) -> None:
    """A tracker's positions (its GPS uplinks among the frames), each with the hotspots whose signed
    batches prove the frame was heard, checked with their identity keys; the exit code says whether
    any position has no proof."""
    import base64

    eui = _hex(dev_eui, "DEVEUI", 8).hex().upper()
    _existing(ledger_path)
    try:
        lines = frames_path.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise BadInput(f"{frames_path}: cannot read it ({getattr(e, 'strerror', None) or e})") from None
    rows = []
    with Ledger(ledger_path) as led:
        for n, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                f = json.loads(line)
                mine = isinstance(f, dict) and f.get("type") == "uplink" and str(f.get("dev_eui", "")).upper() == eui
                gps = [d["value"] for d in f.get("decoded") or [] if d.get("name") == "gps"] if mine else []
                phy = base64.b64decode(f["phy"], validate=True) if gps else b""
            except (ValueError, KeyError, TypeError, AttributeError):
                raise BadInput(f"{frames_path}:{n}: not a frame as `loraspot listen --json` prints it") from None
            for pos in gps:
                proven, when = [], None
                for proof in led.prove(phy):
                    key = led.public_key(proof["gateway_eui"])
                    try:
                        rec = verify_proof(proof, key, phy) if key is not None else None
                    except LedgerError:
                        rec = None
                    if rec is not None:
                        proven.append(proof["gateway_eui"])
                        when = when or rec.time_ms or None
                rows.append({"fcnt": f.get("fcnt"), "lat": pos["lat"], "lon": pos["lon"], "alt": pos["alt"],
                             "time_ms": when, "proven_by": sorted(proven), "phy": phy.hex()})

    def text(r: dict) -> str:
        by = f"heard by {', '.join(r['proven_by'])}: proof holds" if r["proven_by"] else "NO PROOF"
        return f"fcnt {r['fcnt']}: {r['lat']:.4f}, {r['lon']:.4f}, {r['alt']} m; {by}"

    _report(ctx, rows, text, f"no GPS uplink of {eui} in {frames_path}", lambda r: not r["proven_by"],
            "positions have no proof in the ledger")


def _report(ctx, rows: list[dict], text, empty: str, failed, what: str) -> None:
    """rows as JSON or a line each (text(row)); LedgerError when there are none (saying `empty`) or
    when any failed (failed(row)): "N of M <what>"."""
    if ctx.json:
        ctx.emit(rows)
    else:
        for r in rows:
            ctx.out.print(text(r), highlight=False, markup=False)
    if not rows:
        raise LedgerError(empty)
    bad = sum(bool(failed(r)) for r in rows)
    if bad:
        raise LedgerError(f"{bad} of {len(rows)} {what}")


@ledger_group.command("witnesses")
@LEDGER
@click.option("--frames", "frames_path", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="The network server's frames (`loraspot listen --json`), where the beacons are.")
@click.option("--environment", type=click.Choice(sorted(ENVIRONMENTS)), default="open", show_default=True,
              help="The path-loss exponent: open 2.7, suburban 3.0, urban 3.5.")
@click.option("--tolerance-db", default=TOLERANCE_DB, show_default=True, type=click.FloatRange(min=0),
              help="How far a reported RSSI may be from the model's before the link is flagged.")
@click.pass_obj
def witnesses_cmd(ctx, ledger_path: Path | str, frames_path: Path, environment: str, tolerance_db: float) -> None:
    """Judge the hotspots' beacons and the witnesses of them in the ledger: positions against the
    path-loss model, time, replays, duplicates, beacons never sent, hotspots witnessing
    themselves. The exit code says whether any was flagged."""
    from loraspot.proofs.witness import beacons_in, judge

    _existing(ledger_path)
    try:
        beacons = beacons_in(frames_path)
    except (OSError, UnicodeDecodeError) as e:
        raise BadInput(f"{frames_path}: cannot read it ({getattr(e, 'strerror', None) or e})") from None
    except (ValueError, KeyError, TypeError) as e:
        raise BadInput(f"{frames_path}: not frames as `loraspot listen --json` prints them ({e})") from None
    with Ledger(ledger_path) as led:
        found = [j.as_dict() for j in judge(led, beacons, environment, tolerance_db)]

    def text(j: dict) -> str:
        verdict = "ok" if j["ok"] else "FLAGGED " + ", ".join(j["flags"])
        if j["witness"] is None:
            return f"beacon {j['beacon']}: {verdict}"
        model = f", expected {j['expected_rssi']} dBm at {j['distance_m']} m" if j["expected_rssi"] is not None else ""
        return f"  heard by {j['witness']}: RSSI {j['rssi']} dBm{model}: {verdict}"

    _report(ctx, found, text, f"no beacon in {frames_path}", lambda j: not j["ok"], "beacons and witnesses flagged")


@ledger_group.command("verify")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--key", "key_hex", default=None, help="The gateway's public identity key, hex (else --inventory).")
@options.inventory("An inventory holding the gateway's identity key.", envvar=False)
@click.option("--frame", default=None, help="The frame's PHYPayload, hex: also check the proof is of this frame.")
@click.pass_obj
def verify_cmd(ctx, file: Path, key_hex: str | None, inventory: Path | str | None, frame: str | None) -> None:
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
        out.append({"gateway_eui": eui, "ok": True, "time_ms": rec.time_ms, "freq": rec.freq,
                    "sf": rec.spreading_factor, "time_source": "gps" if rec.gps_time else "ntp", "sent": rec.sent,
                    "rssi": rec.rssi, "snr": rec.snr_tenths / 10})
    if ctx.json:
        ctx.emit(out)
    else:
        for r in out:
            what = "sent" if r["sent"] else "heard"
            when = f"{r['time_ms']} ms UTC ({r['time_source'].upper()} time)" if r["time_ms"] else "an unknown time"
            ctx.out.print(f"{r['gateway_eui']}: {what} at {when} on {r['freq']} Hz SF{r['sf']}, "
                          f"RSSI {r['rssi']} dBm, SNR {r['snr']} dB: proof holds", highlight=False, markup=False)


def register(cli: click.Group) -> None:
    cli.add_command(ledger_group)
