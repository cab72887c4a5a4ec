"""Locks for one writer and many readers.

- `RWLock`: readers share it; a writer holds it alone, and only for the short publish step (SQLite commit, FAISS
  add, snapshot swap), because FAISS indexes are mutated in place by `add` and searches must not overlap an add.
- `WriteLock`: the writer mutex. A re-entrant lock inside the process plus `fcntl.flock` on a lock file in the
  collection folder, so two processes (a server and a CLI `index add`) never write one collection at once. A build
  with overwrite swaps a new folder in under this lock; a writer that then gets the lock finds the lock file it
  holds is no longer the one at the path, and is refused instead of writing into the replaced folder.
- `NullLock`: what a read-only collection uses instead (it never writes, so it never locks or creates a file).
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator
from pathlib import Path

from embedops.errors import InputError

try:  # POSIX; elsewhere only the in-process lock applies
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

LOCK_NAME = "write.lock"


class FolderReplaced(InputError):
    """The collection folder was swapped for a new build since this process opened it."""


class RWLock:
    """Shared for readers, exclusive for one writer; a waiting writer holds back new readers (no starvation).

    Not re-entrant: a thread must not take the read side twice (a writer waiting in between would deadlock it).
    """

    __slots__ = ("_cond", "_readers", "_waiting", "_writing")

    def __init__(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._readers = 0
        self._waiting = 0
        self._writing = False

    def acquire_read(self) -> None:
        """Enter as a reader (waits while a writer holds or waits for the lock)."""
        with self._cond:
            while self._writing or self._waiting:
                self._cond.wait()
            self._readers += 1

    def release_read(self) -> None:
        """Leave as a reader."""
        with self._cond:
            self._readers -= 1
            if not self._readers and self._waiting:
                self._cond.notify_all()

    def acquire_write(self) -> None:
        """Enter alone: waits for running readers to leave."""
        with self._cond:
            self._waiting += 1
            try:
                while self._writing or self._readers:
                    self._cond.wait()
            finally:
                self._waiting -= 1
            self._writing = True

    def release_write(self) -> None:
        """Leave as the writer and wake everyone waiting."""
        with self._cond:
            self._writing = False
            self._cond.notify_all()

    @contextlib.contextmanager
    def read(self) -> Iterator[None]:
        """`with lock.read():` (the hot search path calls acquire/release directly)."""
        self.acquire_read()
        try:
            yield
        finally:
            self.release_read()

    @contextlib.contextmanager
    def write(self) -> Iterator[None]:
        """`with lock.write():` for the publish step."""
        self.acquire_write()
        try:
            yield
        finally:
            self.release_write()


class WriteLock:
    """One writer per collection across threads (re-entrant mutex) and processes (flock on `write.lock`)."""

    def __init__(self, folder: Path):
        self.path = Path(folder) / LOCK_NAME
        self._mutex = threading.RLock()
        self._fd: int | None = None
        self._depth = 0

    def __enter__(self) -> WriteLock:
        self._mutex.acquire()
        try:
            if self._depth == 0 and fcntl is not None:
                if self._fd is None:
                    self._fd = self._open()
                fcntl.flock(self._fd, fcntl.LOCK_EX)
                if self._replaced():
                    fcntl.flock(self._fd, fcntl.LOCK_UN)
                    raise FolderReplaced("the collection was replaced (built again with overwrite) since it was "
                                         "opened", where=str(self.path.parent),
                                         hint="open it again to write to the new one")
        except BaseException:
            self._mutex.release()
            raise
        self._depth += 1
        return self

    def __exit__(self, *exc: object) -> None:
        self._depth -= 1
        try:
            if self._depth == 0 and self._fd is not None:
                fcntl.flock(self._fd, fcntl.LOCK_UN)
        finally:
            self._mutex.release()

    def _open(self) -> int:
        try:
            return os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise InputError(f"cannot open the write lock: {exc.strerror}", where=str(self.path),
                             hint="a folder without write access can only be read: open it with read_only=True "
                                  "(--read-only)") from exc

    def _replaced(self) -> bool:
        """Whether the folder at our path is no longer the one whose lock file we hold."""
        try:
            here = os.stat(self.path)
        except FileNotFoundError:
            return True
        held = os.fstat(self._fd)
        return (here.st_dev, here.st_ino) != (held.st_dev, held.st_ino)

    def close(self) -> None:
        """Release the lock file descriptor."""
        with self._mutex:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None


class NullLock:
    """The write lock of a read-only collection: nothing to exclude, no file to create."""

    def __enter__(self) -> NullLock:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def close(self) -> None:
        """Nothing to release."""
