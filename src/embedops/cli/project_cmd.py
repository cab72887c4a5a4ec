"""`embedops init` (write a commented starter project file) and `embedops check` (measure the criteria)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import typer
from rich.table import Table

from embedops.cli._common import console, open_project, project_encoder, resolve_model_early
from embedops.config.checks import writable_target
from embedops.errors import InputError

# `embedops check` exit codes (also in its help): 1 a criterion failed, 3 one could not be measured.
EXIT_FAILED, EXIT_NOT_MEASURED = 1, 3


def init_command(
    path: Annotated[Path, typer.Argument(help="Where to write the project file.")] = Path("embedops.yaml"),
    name: Annotated[str, typer.Option(help="Project name.")] = "my-search",
    use_case: Annotated[Literal["semantic_search", "recommendation", "deduplication", "classification"],
                        typer.Option(help="semantic_search, recommendation, deduplication or classification.")]
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

    writable_target(path, "PATH")
    if path.exists() and not force:
        raise InputError("file exists", where=str(path), hint="pass --force to overwrite")
    text = render_starter(name=name, use_case=use_case, data_path=data,
                          retrieval=retrieval or "null", sts=sts or "null")
    atomic_write_text(path, text)
    load_config(path)  # the starter must itself be valid
    console.print(f"wrote {path}; edit it, then run `embedops check {path}`")


def check_command(
    path: Annotated[Path, typer.Argument(exists=True, help="Project file (or its folder).")]
    = Path("embedops.yaml"),
    model: Annotated[str | None, typer.Option(help="Override the model in the project file.")] = None,
) -> None:
    """Measure every success criterion and print a table; exit 0 when all are measured and pass, 1 when one fails,
    3 when one could not be measured (no data for it), 2 for a bad project file."""
    project = open_project(path)
    config = project.config
    criteria = config.criteria.parsed()
    if not criteria:
        console.print("no success criteria in the project file (criteria.success); nothing to check")
        return
    resolve_model_early(project, model)
    data = project.criteria_data()  # missing or empty evaluation data is refused before the model loads
    encoder = project_encoder(project, model)
    results = project.check(encoder, show_progress=True, data=data)
    table = Table(title=f"{config.name}: success criteria ({encoder.name})", title_justify="left")
    for col in ("criterion", "measured", "result", "note"):
        table.add_column(col, no_wrap=col != "note")  # a verdict is never split over lines
    styles = {"pass": "[green]pass[/]", "fail": "[bold red]FAIL[/]", "not measured": "[yellow]not measured[/]"}
    for r in results:
        table.add_row(str(r.criterion), "" if r.value is None else f"{r.value:.4g}", styles[r.status], r.note)
    console.print(table)
    failed = [r for r in results if r.status == "fail"]
    unmeasured = [r for r in results if r.status == "not measured"]
    if failed:
        console.print(f"[bold red]{len(failed)} criterion(s) failed[/]"
                      + (f"; {len(unmeasured)} not measured" if unmeasured else ""))
        raise typer.Exit(EXIT_FAILED)
    if unmeasured:
        console.print(f"[bold yellow]{len(unmeasured)} criterion(s) not measured[/]: "
                      + "; ".join(f"{r.criterion} ({r.note})" for r in unmeasured))
        raise typer.Exit(EXIT_NOT_MEASURED)
    console.print("[green]all criteria measured and pass[/]")


def register(app: typer.Typer) -> None:
    """Add `init` and `check`."""
    app.command("init")(init_command)
    app.command("check")(check_command)
