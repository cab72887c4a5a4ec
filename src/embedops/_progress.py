"""One rich progress bar style for every long step (encoding, indexing)."""

from __future__ import annotations


def start_progress(enabled: bool, total: int, label: str):
    """A started (Progress, task id) pair, or None when progress is off; stop it with `progress.stop()`."""
    if not enabled:
        return None
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                        TimeRemainingColumn())
    task = progress.add_task(label, total=total)
    progress.start()
    return progress, task
