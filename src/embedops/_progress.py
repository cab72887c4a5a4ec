"""One rich progress bar style for every long step (encoding, indexing, preparing, evaluating).

Bars go to stderr (stdout stays for results and pipes) and only to a terminal: in a pipe, a log file or under
`embedops -q` they are not drawn at all.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from embedops._console import err_console, is_quiet


def progress_visible() -> bool:
    """True when a bar would be drawn: stderr is a terminal and output is not quiet."""
    return err_console.is_terminal and not is_quiet()


def start_progress(enabled: bool, total: int | None, label: str):
    """A started (Progress, task id) pair, or None when progress is off; stop it with `progress.stop()`.

    `total` None draws a count without a bar end (n/?), for steps whose size is known only at the end.
    """
    if not enabled or not progress_visible():
        return None
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                        TimeRemainingColumn(), console=err_console)
    task = progress.add_task(label, total=total)
    progress.start()
    return progress, task


@contextlib.contextmanager
def status(message: str) -> Iterator[None]:
    """A spinner on stderr for a step without counts (loading a model); nothing when not drawn."""
    if not progress_visible():
        yield
        return
    with err_console.status(message):
        yield
