"""Output files written whole or not at all, and the temp files of killed writers cleaned up on the next run.

A writer holds an exclusive `flock` on its temp file from creation to rename, so another run can tell a live
writer's temp file (lock refused) from one a killed process left behind (lock granted): only the latter is removed.
A kill cannot release a lock it never took, and the kernel drops the locks of a dead process, so no pid guessing.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from embedops._io import _umask

try:  # POSIX; elsewhere temp files are only removed by the writer itself
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]


def temp_prefix(path: Path) -> str:
    """Name prefix of the temp files written for `path` (the same as `embedops._io.atomic_open` uses)."""
    return f".{path.name}."


def remove_stale_temps(path: str | Path) -> list[Path]:
    """Delete temp files of `path` that no live writer holds; returns what was removed."""
    path = Path(path)
    removed: list[Path] = []
    if fcntl is None or not path.parent.is_dir():
        return removed
    prefix = temp_prefix(path)
    for candidate in path.parent.iterdir():
        name = candidate.name
        if not (name.startswith(prefix) and name.endswith(".tmp")) or not candidate.is_file():
            continue
        try:
            fd = os.open(candidate, os.O_RDONLY)
        except OSError:
            continue  # gone meanwhile
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                continue  # a live writer holds it
            with contextlib.suppress(FileNotFoundError):
                candidate.unlink()
                removed.append(candidate)
        finally:
            os.close(fd)
    return removed


@contextlib.contextmanager
def atomic_output(path: str | Path, mode: str = "w", encoding: str | None = "utf-8") -> Iterator[IO[Any]]:
    """Write a temp file beside `path` under a lock; fsync and rename it over `path` on success, delete it on
    any error (a kill leaves it for `remove_stale_temps`)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=temp_prefix(path), suffix=".tmp", dir=path.parent)
    try:
        if fcntl is not None:
            fcntl.flock(fd, fcntl.LOCK_EX)
        os.chmod(tmp, 0o666 & ~_umask())
        kwargs = {} if "b" in mode else {"encoding": encoding}
        # closefd=False: the descriptor (and its lock) outlives the file object until the rename is done.
        with os.fdopen(fd, mode, closefd=False, **kwargs) as fh:
            yield fh
            fh.flush()
            os.fsync(fd)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    finally:
        os.close(fd)

