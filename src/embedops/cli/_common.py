"""Shared CLI helpers: consoles, quiet model loading, result tables."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Annotated, Any, Literal

import typer
from rich.table import Table

from embedops._console import console, err_console, quiet_libraries
from embedops._progress import status
from embedops.errors import EmbedopsError

__all__ = ["Backend", "ConfigOpt", "Quantization", "checked", "console", "err_console", "metrics_option",
           "metrics_table", "open_project", "project_encoder", "quiet_libraries", "resolve_model_early"]

# Enum-like options are Literal types: typer refuses any other value with the list of valid ones (exit 2).
Backend = Literal["torch", "onnx", "openvino"]
Quantization = Literal["none", "int8"]

ConfigOpt = Annotated[Path | None, typer.Option("--config", "-c", exists=True, dir_okay=True,
                                               help="embedops.yaml (or its folder): its model, registry and "
                                                    "sections apply.")]


def checked(check: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """A typer callback from a check that raises EmbedopsError: the error names the option (exit 2).

    The value passes through unchanged; the command parses it again where it uses it.
    """

    def callback(value: Any) -> Any:
        try:
            check(value)
        except EmbedopsError as exc:
            raise typer.BadParameter(exc.message) from None
        return value

    return callback


def metrics_option(help: str = "Comma-separated metrics, e.g. ndcg@10,recall@100."):
    """A --metrics option checked before any work: unknown metrics and cut-offs below 1 are refused."""
    from embedops.config.checks import retrieval_metrics

    return typer.Option(help=help, callback=checked(retrieval_metrics))


def resolve_model_early(project, model: str | None, where: str = "--model") -> None:
    """Refuse an unknown model name, folder or registry alias before any data is read or written."""
    if model is None:
        return
    import os

    from embedops.errors import ModelError
    from embedops.models import is_image_model, resolve_model

    if is_image_model(model, project.resolver()):  # efficientnet-lite0, timm:..., CLIP: checked when they load
        return
    try:
        source = resolve_model(model, resolver=project.resolver())
    except ModelError as exc:
        raise ModelError(exc.message, where=exc.where or where, hint=exc.hint) from None
    if source.hf_id and os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on"):
        # Offline, a hub id loads only from the local cache: say so now rather than after reading the data.
        from huggingface_hub import try_to_load_from_cache

        if not isinstance(try_to_load_from_cache(source.hf_id, "config.json"), str):
            raise ModelError(f"unknown model {model!r}: not a folder, not in the registry, and not in the local "
                             "Hugging Face cache (HF_HUB_OFFLINE is set)", where=where)


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
    with status(f"loading model {label} ({backend or project.config.model.backend})"):
        return project.load_encoder(*args, backend=backend, quantization=quantization, **options)


def metrics_table(title: str, rows: Iterable[tuple[str, Any]]) -> Table:
    """A two-column table of metric name and value."""
    table = Table(title=title, title_justify="left")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for name, value in rows:
        table.add_row(name, f"{value:.4f}" if isinstance(value, float) else str(value))
    return table
