"""`embedops init` (write a commented starter project file) and `embedops check` (measure the criteria)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from embedops.cli._common import console, open_project, project_encoder
from embedops.errors import InputError


def init_command(
    path: Annotated[Path, typer.Argument(help="Where to write the project file.")] = Path("embedops.yaml"),
    name: Annotated[str, typer.Option(help="Project name.")] = "my-search",
    use_case: Annotated[str, typer.Option(help="semantic_search, recommendation, deduplication, classification")]
    = "semantic_search",
    data: Annotated[str, typer.Option(help="Path of the corpus file.")] = "data/corpus.jsonl",
    retrieval: Annotated[str | None, typer.Option(help="BEIR folder to evaluate retrieval on.")] = None,
    sts: Annotated[str | None, typer.Option(help="STS file to evaluate similarity on.")] = None,
    force: Annotated[bool, typer.Option(help="Overwrite an existing file.")] = False,
) -> None:
    """Write a commented starter `embedops.yaml`."""
    from embedops._io import atomic_write_text
    from embedops.config import load_config
    from embedops.config.starter import render_starter

    if use_case not in ("semantic_search", "recommendation", "deduplication", "classification"):
        raise InputError(f"unknown use case {use_case!r}")
    if path.exists() and not force:
        raise InputError("file exists", where=str(path), hint="pass --force to overwrite")
    text = render_starter(name=name, use_case=use_case, data_path=data,
                          retrieval=retrieval or "null", sts=sts or "null")
    atomic_write_text(path, text)
    load_config(path)  # the starter must itself be valid
    console.print(f"wrote {path}; edit it, then run `embedops check {path}`")


def check_command(
    path: Annotated[Path, typer.Argument(help="Project file (or its folder).")] = Path("embedops.yaml"),
    model: Annotated[str | None, typer.Option(help="Override the model in the project file.")] = None,
) -> None:
    """Measure every success criterion and print a pass/fail table; exit 1 when one fails."""
    project = open_project(path)
    config = project.config
    criteria = config.criteria.parsed()
    if not criteria:
        console.print("no success criteria in the project file (criteria.success); nothing to check")
        return
    encoder = project_encoder(project, model)
    results = project.check(encoder, show_progress=True)
    table = Table(title=f"{config.name}: success criteria ({encoder.name})", title_justify="left")
    for col in ("criterion", "measured", "result", "note"):
        table.add_column(col)
    styles = {"pass": "[green]pass[/]", "fail": "[bold red]FAIL[/]", "not measured": "[yellow]not measured[/]"}
    for r in results:
        table.add_row(str(r.criterion), "" if r.value is None else f"{r.value:.4g}", styles[r.status], r.note)
    console.print(table)
    failed = [r for r in results if r.status == "fail"]
    if failed:
        console.print(f"[bold red]{len(failed)} criterion(s) failed[/]")
        raise typer.Exit(1)
    console.print("[green]all measured criteria pass[/]")


def register(app: typer.Typer) -> None:
    """Add `init` and `check`."""
    app.command("init")(init_command)
    app.command("check")(check_command)
