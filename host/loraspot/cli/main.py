"""`loraspot` command line: thin commands over library functions; errors become exit codes here."""

from __future__ import annotations

import json
import sys

import click
from rich.console import Console
from rich.markup import escape

from loraspot import __version__
from loraspot.errors import LoraspotError
from loraspot.store import database_errors


class Ctx:
    def __init__(self, as_json: bool):
        self.json = as_json
        from loraspot.cli import ui

        self.out = ui.console()
        self.err = ui.console(stderr=True)

    def emit(self, obj: object) -> None:
        """Machine-readable output: one JSON document (or line) on stdout."""
        click.echo(json.dumps(obj, sort_keys=True))


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="loraspot")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts instead of tables.")
@click.pass_context
def cli(ctx: click.Context, as_json: bool) -> None:
    """Flash, provision and monitor ESP32 + LoRa boards running loraspot."""
    ctx.obj = Ctx(as_json)


def _register() -> None:
    from loraspot.cli import decode, demo, device, flash, inventory, ledger, listen, monitor, ports, setup, sim

    for module in (ports, device, sim, decode, inventory, demo, listen, flash, monitor, setup, ledger):
        module.register(cli)


_register()


def _json_first(argv: list[str]) -> list[str]:
    """`--json` is accepted anywhere (`loraspot info --json` as `loraspot --json info`), except
    after a `--` that ends the options."""
    end = argv.index("--") if "--" in argv else len(argv)
    if "--json" not in argv[:end]:
        return argv
    return ["--json", *(a for i, a in enumerate(argv) if not (a == "--json" and i < end))]


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; return the exit code (library errors are mapped to messages, not tracebacks)."""
    argv = _json_first(list(sys.argv[1:] if argv is None else argv))
    try:
        cli.main(args=argv, prog_name="loraspot", standalone_mode=False)
    except LoraspotError as e:
        return _error(str(e), e.exit_code)
    # Expected failures outside the project's own errors: a file the user named that cannot be
    # read or written, a database that is not one. One line each; a traceback is left for bugs.
    except OSError as e:
        where = f"{e.filename}: " if e.filename else ""
        return _error(f"{where}{e.strerror or e}", 2)
    except UnicodeDecodeError as e:
        return _error(f"a file is not text where text was expected ({e.reason} at byte {e.start})", 2)
    except database_errors() as e:  # SQLite's, and PostgreSQL's when its driver is loaded
        return _error(f"database: {str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__}", 6)
    except click.exceptions.Abort:
        return 130
    except click.ClickException as e:
        e.show()
        return e.exit_code
    except KeyboardInterrupt:
        return 130
    return 0


def _error(message: str, code: int) -> int:
    # the message is text, not markup: "loraspot[sim]" or a path with brackets must print as it is
    Console(stderr=True, soft_wrap=True).print(f"[bold red]error:[/] {escape(message)}", highlight=False)
    return code


def run() -> None:
    sys.exit(main())
