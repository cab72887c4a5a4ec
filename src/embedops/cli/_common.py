"""Shared CLI helpers: consoles, quiet model loading, result tables."""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any

from rich.console import Console
from rich.table import Table

console = Console()
err_console = Console(stderr=True)


def quiet_libraries() -> None:
    """Silence library chatter (weight-loading bars, deprecation notes) so our own output is readable."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    try:
        import transformers

        transformers.logging.set_verbosity_error()
        transformers.logging.disable_progress_bar()
    except ImportError:  # pragma: no cover
        pass


def load_encoder_quietly(model: str | None, backend: str = "torch", **options: Any):
    """Load an encoder with a spinner and without library noise."""
    from embedops.models import load_encoder

    quiet_libraries()
    with err_console.status(f"loading model {model or 'default'} ({backend})"):
        return load_encoder(model, backend=backend, **options)


def metrics_table(title: str, rows: Iterable[tuple[str, Any]]) -> Table:
    """A two-column table of metric name and value."""
    table = Table(title=title, title_justify="left")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for name, value in rows:
        table.add_row(name, f"{value:.4f}" if isinstance(value, float) else str(value))
    return table
