"""`loraspot flash`, `firmware`, `backup`, `restore`, `deploy`: thin commands over loraspot.flash."""

from __future__ import annotations

import sys
from pathlib import Path

import click
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn

from loraspot import boards
from loraspot.cli import options, ui
from loraspot.errors import LoraspotError
from loraspot.flash import firmware, flasher
from loraspot.provision.provision import EraseGuard


def _ask_board(ctx, target: flasher.Target) -> str:
    if len(target.candidates) == 1:
        return target.candidates[0]
    choices = target.candidates or sorted(boards.all_boards())
    if not sys.stdin.isatty() or ctx.json:
        raise LoraspotError(f"{target.port}: cannot tell the board ({', '.join(choices)}): give --board")
    return click.prompt(f"Which board is on {target.port}?", type=click.Choice(choices))


@click.command("flash")
@options.ports()
@click.option("--all", "every", is_flag=True, help="Flash every detected board.")
@options.board()
@click.option("--image", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="MicroPython image file (default: the cached image for the board).")
@click.option("--config", "config_file", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="Initial config (JSON) put into the app bundle.")
@click.option("--baud", type=click.Choice(["921600", "460800", "115200"]), default=None,
              help="Highest baud rate to try (default 921600, falling back to lower ones).")
@click.option("--force", is_flag=True,
              help="Flash a board the inventory knows as provisioned (its keys and config are erased).")
@options.inventory("Inventory that knows the boards (default: the user's).")
@click.pass_obj
def flash_cmd(ctx, ports: tuple[str, ...], every: bool, board_id: str | None, image: Path | None,
              config_file: Path | None, baud: str | None, force: bool, inventory: Path | str | None) -> None:
    """Write MicroPython and the loraspot app to one or more boards, in parallel, in one esptool session each."""
    config = flasher.load_config(config_file) if config_file else None
    targets = flasher.resolve_targets(list(ports), every, board_id)
    chosen = {t.port: _ask_board(ctx, t) for t in targets}
    if image is None:  # the pinned release for each kind of board, downloaded if the cache has none yet
        for bid in sorted(b for b in set(chosen.values()) if not boards.get(b)["image"].get("placeholder")):
            fetched = firmware.ensure_cached(boards.get(bid))
            if fetched:
                ctx.err.print(f"fetched MicroPython {fetched['version']} for {bid} ({fetched['name']}): "
                              f"sha256 {fetched['sha256']} ({fetched['trust']})", highlight=False)
    bundles: dict[str, flasher.Bundle] = {}
    by_board: dict[str, flasher.Bundle] = {}
    for port, bid in chosen.items():
        if bid not in by_board:
            by_board[bid] = flasher.build_bundle(boards.get(bid), image, config)
        bundles[port] = by_board[bid]
    bauds = tuple(b for b in flasher.BAUDS if not baud or b <= int(baud))
    order = [t.port for t in targets]
    with Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TimeRemainingColumn(),
                  console=ctx.err, disable=ctx.json, transient=False) as bar:
        tasks = {p: bar.add_task(f"{p} ({chosen[p]})", total=bundles[p].size) for p in order}

        def progress(port: str, cur: int, total: int, what: str) -> None:
            bar.update(tasks[port], completed=cur, total=total)

        guard = EraseGuard(inventory, force)
        results = flasher.flash_many(order, bundles, progress, bauds, guard)
    for eui in guard.record([r.mac for r in results if r.ok]):
        ctx.err.print(f"{eui}: erased; the inventory now says `registered`: provision it again", highlight=False)
    if ctx.json:
        ctx.emit([r.as_dict() for r in results])
    else:
        table = ui.table("port", "board", "MAC", "result", "seconds", "baud")
        for r in results:
            table.add_row(r.port, r.board, r.mac or "-", "[green]ok[/]" if r.ok else f"[red]failed[/]: {r.error}",
                          f"{r.seconds:.1f}", str(r.baud or "-"))
        ui.print_table(ctx.out, table)
    failed = [r for r in results if not r.ok]
    if failed:
        raise flasher.FlashError(f"{len(failed)} of {len(results)} boards failed; fix the cause and run again")


@click.group("firmware")
def firmware_group() -> None:
    """MicroPython images in the local cache."""


@firmware_group.command("add")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--name", default=None, help="Image name (a board profile's image.name); default: from the file name.")
@click.option("--sha256", default=None, help="Refuse the file unless it has this SHA-256.")
@click.pass_obj
def firmware_add(ctx, file: Path, name: str | None, sha256: str | None) -> None:
    """Put an official MicroPython image into the cache (chip and version read from it)."""
    entry = firmware.add(file, name, sha256)
    if ctx.json:
        ctx.emit(entry)
    else:
        ctx.out.print(f"added {entry['name']} {entry['version']} ({entry['chip']}), sha256 {entry['sha256']}")


@firmware_group.command("fetch")
@click.option("--board", "board_id", required=True, help="Board profile whose image to download.")
@click.pass_obj
def firmware_fetch(ctx, board_id: str) -> None:
    """Download the pinned MicroPython release for a board (SHA-256 checked) into the cache."""
    entry = firmware.fetch(board_id)
    if ctx.json:
        ctx.emit(entry)
    else:
        ctx.out.print(f"fetched {entry['name']} {entry['version']}, sha256 {entry['sha256']} ({entry['trust']})")


@firmware_group.command("list")
@click.pass_obj
def firmware_list(ctx) -> None:
    """Images in the cache."""
    rows = firmware.listing()
    if ctx.json:
        ctx.emit(rows)
        return
    table = ui.table("name", "version", "chip", "size", "sha256")
    for r in rows:
        table.add_row(r["name"], r["version"], r["chip"], str(r["size"]), r["sha256"])
    ui.print_table(ctx.out, table) if rows else ctx.out.print("the firmware cache is empty")


SESSION_BAUD = click.option(
    "--baud", type=click.Choice(["2000000", "921600", "460800", "115200"]), default=None,
    help="Highest baud rate to try (default 921600, falling back to lower ones); 2000000 where the USB chip has it.")


def _bauds(baud: str | None) -> tuple[int, ...]:
    top = int(baud) if baud else flasher.BAUDS[0]
    return (top, *(b for b in flasher.BAUDS if b < top))


def _bar(ctx, what: str) -> Progress:
    return Progress(TextColumn(what), BarColumn(), DownloadColumn(), TimeRemainingColumn(), console=ctx.err,
                    disable=ctx.json, transient=False)


@click.command("backup")
@options.port()
@click.option("--include-secrets", is_flag=True,
              help="Keep the keys (NVS, the secrets store) and the lock in the backup: keep the file safe.")
@SESSION_BAUD
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.pass_obj
def backup_cmd(ctx, port: str, include_secrets: bool, baud: str | None, file: Path) -> None:
    """Save the board's whole flash to FILE (without its keys unless --include-secrets)."""
    flasher.check_writable(file)  # before anything is shown or the board touched
    with _bar(ctx, f"{port}: reading") as bar:
        task = bar.add_task("read", total=None)
        res = flasher.backup(port, file, _bauds(baud), include_secrets=include_secrets,
                             progress=lambda cur, n: bar.update(task, completed=cur, total=n))
    if ctx.json:
        ctx.emit({**res.as_dict(), "left_out": [x.removeprefix("left out: ") for x in res.log
                                                if x.startswith("left out: ")]})
        return
    ctx.out.print(f"saved {res.written} bytes of {res.port} to {file}", highlight=False)
    left = [x.removeprefix("left out: ") for x in res.log if x.startswith("left out: ")]
    if left:
        ctx.out.print(f"left out: {', '.join(left)}. A board restored from this file has its config and app "
                      "but no keys: run `loraspot provision --force` on it (new keys, for the network server too); "
                      "--include-secrets keeps them", highlight=False)
    elif include_secrets:
        ctx.err.print(f"[yellow]warning:[/] {file} holds the board's keys in clear: keep it safe", highlight=False)


@click.command("restore")
@options.port()
@SESSION_BAUD
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.pass_obj
def restore_cmd(ctx, port: str, baud: str | None, file: Path) -> None:
    """Write a backup made by `loraspot backup` back to the board (verified)."""
    with _bar(ctx, f"{port}: writing") as bar:
        task = bar.add_task("write", total=None)
        res = flasher.restore(port, file, _bauds(baud),
                              progress=lambda cur, n: bar.update(task, completed=cur, total=n))
    ctx.emit(res.as_dict()) if ctx.json else ctx.out.print(f"restored {res.written} bytes to {res.port}")


@click.command("deploy")
@options.ports(help="Serial port path or URL of a board running loraspot; repeat for several boards.")
@click.option("--all", "every", is_flag=True, help="Every detected board.")
@click.option("--via", type=click.Choice(["console", "mpremote"]), default="console", show_default=True,
              help="console: loraspot's console protocol; mpremote: raw REPL, for stock MicroPython.")
@options.board(help="Board profile (needed with --via mpremote).")
@click.option("--dry-run", is_flag=True, help="Only list the files that would be sent.")
@click.option("--ota", "ota_targets", multiple=True, metavar="HOST[:PORT]",
              help="Over the network instead: a hotspot's update service (config ota_port, default port 3232); "
                   "repeat for several. Signed with the admin key from --inventory.")
@click.option("--all-ota", "all_ota", is_flag=True,
              help="Over the network, every hotspot of --inventory with an update address "
                   "(`loraspot devices set-ota`).")
@options.inventory("Inventory holding the boards' admin keys (for --ota and --all-ota).")
@click.option("--label", default="", help="A name for this release, shown by `loraspot info` (for --ota).")
@click.option("--firmware", "firmware_file", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="With --ota/--all-ota: MicroPython itself, an application image (.app-bin), into the other "
                   "app slot of an ESP32_GENERIC-OTA image, kept once its health check passes.")
@click.option("--canary", "canaries", type=click.IntRange(1), default=None, metavar="N",
              help="Over the network, a staged rollout: the first N boards first; the rest only once these pass "
                   "their health check on the new app; stop at the first failure.")
@click.option("--wave", type=click.IntRange(1), default=None, metavar="N",
              help="With --canary: after the canaries, N boards at a time, each wave checked like them (default: "
                   "all the rest at once).")
@click.option("--health-wait", type=click.FloatRange(1), default=1200.0, show_default=True, metavar="SECONDS",
              help="With --canary: how long a board may take to pass its health check (3 boots of 5 minutes "
                   "each at most, docs/ota.md).")
@click.pass_obj
def deploy_cmd(ctx, ports: tuple[str, ...], every: bool, via: str, board_id: str | None, dry_run: bool,
               ota_targets: tuple[str, ...], all_ota: bool, inventory: Path | str | None, label: str,
               firmware_file: Path | None, canaries: int | None, wave: int | None, health_wait: float) -> None:
    """Send only the app files that changed, each written atomically, then reboot once; several
    boards in parallel. With --ota, over the network: the board stages the files, switches at its
    next boot and goes back to the previous app by itself if the new one fails its health check."""
    from concurrent.futures import ThreadPoolExecutor

    from loraspot.flash import deploy

    if all_ota:
        if ports or every or ota_targets:
            raise click.UsageError("--all-ota takes the hotspots from the inventory: no --port, --all or --ota with it")
        ota_targets = _inventory_hotspots(ctx, inventory)
    firmware = None
    if firmware_file is not None:
        if not ota_targets:
            raise click.UsageError("--firmware goes over the network: give --ota or --all-ota "
                                   "(by cable: loraspot flash)")
        try:
            firmware = firmware_file.read_bytes()
        except OSError as e:
            raise click.UsageError(f"cannot read {firmware_file}: {e.strerror or e}") from None
    if ota_targets:
        from loraspot.flash import ota

        if ports or every:
            raise click.UsageError("--ota and --port/--all are two ways to reach a board: give one")
        for t in ota_targets:
            ota.parse_target(t)  # every target checked before anything is sent
        targets = list(ota_targets)
    else:
        targets = [t.port for t in flasher.resolve_targets(list(ports), every, None)]
    if via == "mpremote" and not board_id:
        raise click.UsageError("--via mpremote needs --board")
    if wave is not None and canaries is None:
        raise click.UsageError("--wave is a stage of a staged rollout: give --canary N too")
    if canaries is not None:
        if not ota_targets:
            raise click.UsageError("a staged rollout goes over the network: give --ota (several) or --all-ota")
        if dry_run:
            raise click.UsageError("--dry-run shows what one board would get: leave --canary out")
        _rollout(ctx, targets, canaries, wave, firmware, inventory, label, health_wait)
        return

    def one(port: str):
        try:
            if ota_targets:
                from loraspot.flash import ota

                if firmware is not None:
                    return ota.deploy_firmware_ota(port, firmware, inventory=inventory, label=label)
                return ota.deploy_ota(port, inventory=inventory, label=label, dry_run=dry_run)
            if via == "mpremote":
                return deploy.via_mpremote(port, boards.get(board_id or ""))
            return deploy.deploy(port, dry_run=dry_run)
        except LoraspotError as e:
            if len(targets) == 1:
                raise
            return e

    with ThreadPoolExecutor(max_workers=max(1, min(16, len(targets)))) as pool:
        results = list(pool.map(one, targets))
    if ctx.json:
        rows = [{"port": p, "error": str(r)} if isinstance(r, Exception) else r if isinstance(r, dict)
                else r.as_dict() for p, r in zip(targets, results, strict=True)]
        ctx.emit(rows if len(targets) > 1 else rows[0])
    else:
        for port, res in zip(targets, results, strict=True):
            where = f"{port}: " if len(targets) > 1 else ""
            if isinstance(res, Exception):
                ctx.out.print(f"{where}[red]failed[/]: {res}", highlight=False)
            elif isinstance(res, dict):
                ctx.out.print(f"{where}MicroPython ({res['bytes']} bytes) now runs from {res['slot']}, its health "
                              f"check passed, {res['seconds']:.1f} s", highlight=False)
            elif res.sent:
                verb = "would send" if dry_run else "sent"
                ctx.out.print(f"{where}{verb} {len(res.sent)} file(s) ({res.bytes_sent} bytes), {res.unchanged} "
                              f"unchanged, {res.seconds:.1f} s: " + ", ".join(res.sent), highlight=False)
            else:
                ctx.out.print(f"{where}up to date ({res.unchanged} files), {res.seconds:.2f} s", highlight=False)
    failed = [r for r in results if isinstance(r, Exception)]
    if failed:
        raise flasher.FlashError(f"{len(failed)} of {len(results)} boards failed; fix the cause and run again")


def _rollout(ctx, targets: list[str], canaries: int, wave: int | None, firmware: bytes | None,
             inventory: Path | str | None, label: str, health_wait: float) -> None:
    from loraspot.flash import rollout

    def on_stage(name: str, group: list[str]) -> None:
        if not ctx.json:
            ctx.err.print(f"{name}: {', '.join(group)}", highlight=False)

    outcomes = rollout.rollout(targets, canaries, wave, firmware=firmware, inventory=inventory, label=label,
                               health_wait=health_wait, on_stage=on_stage)
    if ctx.json:
        ctx.emit([o.as_dict() for o in outcomes])
    else:
        table = ui.table("board", "stage", "result", "app", "seconds")
        for o in outcomes:
            colour = "green" if o.ok else "dim" if o.result == rollout.UNTOUCHED else "red"
            table.add_row(o.target, o.stage, f"[{colour}]{o.result}[/]", o.app or "-",
                          f"{o.seconds:.0f}" if o.result != rollout.UNTOUCHED else "-")
        ui.print_table(ctx.out, table)
        for o in outcomes:
            if o.detail:
                ctx.err.print(f"{o.target}: {o.detail}", highlight=False, markup=False)
    bad = [o for o in outcomes if not o.ok and o.result != rollout.UNTOUCHED]
    if bad:
        left = sum(o.result == rollout.UNTOUCHED for o in outcomes)
        raise flasher.FlashError(f"rollout stopped at the {bad[0].stage}: {len(bad)} board(s) did not pass "
                                 f"({', '.join(o.target for o in bad)}); {left} left untouched")


def _inventory_hotspots(ctx, inventory: Path | str | None) -> tuple[str, ...]:
    """The update addresses of the inventory's hotspots; the hotspots without one are named."""
    from loraspot.provision.inventory import Inventory

    with Inventory(inventory, existing=True) as inv:
        hotspots = [d for d in inv.devices() if d.role == "hotspot"]
    missing = [d.dev_eui for d in hotspots if not d.ota]
    if missing and not ctx.json:
        ctx.out.print(f"{len(missing)} hotspot(s) without an update address, left out: {', '.join(missing)} "
                      "(loraspot devices set-ota DEVEUI HOST[:PORT])", highlight=False)
    targets = tuple(d.ota for d in hotspots if d.ota)
    if not targets:
        raise flasher.FlashError("no hotspot in the inventory has an update address: "
                                 "loraspot devices set-ota DEVEUI HOST[:PORT]")
    return targets


def register(cli: click.Group) -> None:
    for cmd in (flash_cmd, firmware_group, backup_cmd, restore_cmd, deploy_cmd):
        cli.add_command(cmd)
