"""Shared CLI helpers: consoles, quiet model loading, result tables."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from embedops._console import console, err_console, quiet_libraries

__all__ = ["ConfigOpt", "console", "err_console", "metrics_table", "open_project",
           "project_encoder", "quiet_libraries"]


ConfigOpt = Annotated[Path | None, typer.Option("--config", "-c",
                                               help="embedops.yaml: its model, registry and sections apply.")]


def open_project(config: Path | None = None, *, registry: Path | None = None, batch_size: int | None = None):
    """The `Project` every command goes through: the file when given, else the embedded defaults."""
    from embedops.project import Project

    project = Project.from_options(config, registry=registry)
    if batch_size is not None:
        project.config.model.batch_size = batch_size
    return project


def project_encoder(project, model: str | None = None, backend: str | None = None, quantization: str | None = None,
                    **options: Any):
    """The project's encoder (or `model`, resolved against the project's registry), loaded with a spinner."""
    quiet_libraries()
    args = () if model is None else (model,)
    label = model or project.config.model.name
    with err_console.status(f"loading model {label} ({backend or project.config.model.backend})"):
        return project.load_encoder(*args, backend=backend, quantization=quantization, **options)


def metrics_table(title: str, rows: Iterable[tuple[str, Any]]) -> Table:
    """A two-column table of metric name and value."""
    table = Table(title=title, title_justify="left")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for name, value in rows:
        table.add_row(name, f"{value:.4f}" if isinstance(value, float) else str(value))
    return table
