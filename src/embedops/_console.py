"""Consoles and library-noise control shared by every layer (the CLI, training progress, the demo)."""

from __future__ import annotations

import os

from rich.console import Console

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
