"""The `embedops` command. Command groups live in `embedops/cli/<group>_cmd.py`, each with `register(app)`."""

from __future__ import annotations

import importlib
import logging
import os
import pkgutil

import typer
from typer.core import TyperGroup

from embedops.cli._common import err_console
from embedops.errors import EmbedopsError


class _Group(TyperGroup):
    """Root group: any EmbedopsError becomes one clear line on stderr and exit code 2."""

    def invoke(self, ctx):  # noqa: D102 - click API
        try:
            return super().invoke(ctx)
        except EmbedopsError as exc:
            err_console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
            raise typer.Exit(exc.exit_code) from None


app = typer.Typer(
    cls=_Group,
    name="embedops",
    help="Carry an embedding model through its whole life: choose, prepare, evaluate, tune, serve, monitor.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


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
