"""Locks for one writer and many readers.

- `RWLock`: readers share it; a writer holds it alone, and only for the short publish step (SQLite commit, FAISS
  add, snapshot swap), because FAISS indexes are mutated in place by `add` and searches must not overlap an add.
- `WriteLock`: the writer mutex. A re-entrant lock inside the process plus `fcntl.flock` on a lock file in the
  collection folder, so two processes (a server and a CLI `index add`) never write one collection at once.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator
from pathlib import Path

try:  # POSIX; elsewhere only the in-process lock applies
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

LOCK_NAME = "write.lock"


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
                    self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
                fcntl.flock(self._fd, fcntl.LOCK_EX)
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

    def close(self) -> None:
        """Release the lock file descriptor."""
        with self._mutex:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None
