"""Atomic file writes: temp file in the same folder, fsync, rename. Nothing half-written survives."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any


@contextlib.contextmanager
def atomic_open(path: str | Path, mode: str = "w", encoding: str | None = "utf-8") -> Iterator[IO[Any]]:
    """Open a temp file next to `path`; on success rename it over `path`, on error delete it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    # mkstemp creates 0600; give the final file the usual permissions (0666 less the umask).
    os.chmod(tmp, 0o666 & ~_umask())
    kwargs = {} if "b" in mode else {"encoding": encoding}
    try:
        with os.fdopen(fd, mode, **kwargs) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def cache_root() -> Path:
    """`$EMBEDOPS_CACHE` or ~/.cache/embedops: exports, calibration ranges and embedding caches live here."""
    return Path(os.environ.get("EMBEDOPS_CACHE") or Path.home() / ".cache" / "embedops")


def file_sha256(path: str | Path) -> str:
    """SHA-256 of a file, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _read_umask_proc() -> int | None:
    """The process umask from /proc/self/status (Linux >= 4.7), or None where that is not available."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    return None


def _flip_umask() -> int:
    # Setting and restoring is the only portable read, but between the two calls every file another thread creates
    # gets mode 0666: done once at import only, where /proc is absent.
    mask = os.umask(0)
    os.umask(mask)
    return mask


_PROC_UMASK_AT_IMPORT = _read_umask_proc()
_HAS_PROC_UMASK = _PROC_UMASK_AT_IMPORT is not None
_IMPORT_UMASK: int = _PROC_UMASK_AT_IMPORT if _PROC_UMASK_AT_IMPORT is not None else _flip_umask()


def _umask() -> int:
    """The process umask, read without changing it (re-read on Linux, so a later `os.umask` call is honoured)."""
    if _HAS_PROC_UMASK:
        mask = _read_umask_proc()
        if mask is not None:
            return mask
    return _IMPORT_UMASK


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write text atomically."""
    with atomic_open(path, "w") as fh:
        fh.write(text)


def atomic_write_json(path: str | Path, obj: Any) -> None:
    """Write JSON atomically, pretty-printed."""
    atomic_write_text(path, json.dumps(obj, indent=2, ensure_ascii=False, default=str) + "\n")


def replace_dir(src: str | Path, dest: str | Path) -> None:
    """Move the finished folder `src` to `dest`, replacing what was there (removed only after the swap)."""
    src, dest = Path(src), Path(dest)
    if dest.exists():
        old = dest.with_name(f".{dest.name}.old")
        shutil.rmtree(old, ignore_errors=True)
        os.replace(dest, old)
        os.replace(src, dest)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(src, dest)


@contextlib.contextmanager
def atomic_dir(path: str | Path) -> Iterator[Path]:
    """Build a directory under a temp name and rename it into place only when the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        yield tmp
        replace_dir(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def fsync_dir(folder: str | Path) -> None:
    """Flush a folder's entries (a rename inside it) to disk."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def pid_alive(pid: int) -> bool:
    """Whether a process with this id exists (one of another user counts): tells a dead writer's leftovers apart."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
