"""The `embedops` command. Command groups live in `embedops/cli/<group>_cmd.py`, each with `register(app)`.

Exit codes: 0 success, 1 a measured failure (a criterion or quality gate failed), 2 bad input or usage (one
`error: <where>: <what>` line on stderr), 3 `check` could not measure a criterion, 130 interrupted.
"""

from __future__ import annotations

import importlib
import logging
import os
import pkgutil
import sys
from typing import Annotated

import typer
from rich.markup import escape
from typer.core import TyperGroup

from embedops.cli._common import err_console
from embedops.errors import EmbedopsError

try:  # recent typer vendors its own click; older typer uses click itself
    from typer._click import exceptions as _click_errors
except ImportError:  # pragma: no cover
    from click import exceptions as _click_errors


def print_error(where: str | None, what: str) -> None:
    """The one line every refused input gets on stderr: `error: <where>: <what>`."""
    what = " ".join(str(what).replace("Value error, ", "").split())  # one line, whatever the message held
    text = f"{where}: {what}" if where else what
    err_console.print(f"[bold red]error:[/] {escape(text)}", highlight=False, soft_wrap=True, emoji=False)


class _Group(TyperGroup):
    """Root group: an EmbedopsError or a usage error becomes one clear line on stderr and exit code 2."""

    def invoke(self, ctx):  # noqa: D102 - click API
        try:
            return super().invoke(ctx)
        except EmbedopsError as exc:
            print_error(None, str(exc))
            raise typer.Exit(exc.exit_code) from None

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True,  # noqa: D102 - click API
             **extra):
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        try:
            code = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except _click_errors.NoArgsIsHelpError as exc:  # the help was printed already
            sys.exit(exc.exit_code)
        except _click_errors.ClickException as exc:
            ctx = getattr(exc, "ctx", None)
            print_error(ctx.command_path if ctx is not None else "embedops", exc.format_message())
            sys.exit(exc.exit_code)
        except typer.Abort:
            print_error(None, "aborted")
            sys.exit(130)
        sys.exit(code if isinstance(code, int) else 0)


app = typer.Typer(
    cls=_Group,
    name="embedops",
    help="Carry an embedding model through its whole life: choose, prepare, evaluate, tune, serve, monitor.\n\n"
         "Exit codes: 0 success; 1 a criterion or quality gate failed; 2 bad input (one 'error:' line); "
         "3 check could not measure a criterion.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        from embedops import __version__

        typer.echo(f"embedops {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[bool, typer.Option("--version", is_eager=True, callback=_version,
                                          help="Print the version and exit.")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Show library logs (DEBUG) and their "
                                                                  "weight-loading bars.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars or spinners.")] = False,
) -> None:
    """Carry an embedding model through its whole life: choose, prepare, evaluate, tune, serve, monitor."""
    from embedops._console import set_verbosity

    set_verbosity(verbose=verbose, quiet=quiet)


def _register_all() -> None:
    import embedops.cli as pkg

    for info in sorted(pkgutil.iter_modules(pkg.__path__), key=lambda m: m.name):
        if info.name.endswith("_cmd"):
            importlib.import_module(f"embedops.cli.{info.name}").register(app)


_register_all()


def run() -> None:
    """Console entry point."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    app()


if __name__ == "__main__":
    run()
