"""One background thread per collection for maintenance the write calls must not run inline.

Jobs are named (`rebuild`, `keyword`, `checkpoint`); scheduling a job already pending does nothing, so a burst of
writes costs one keyword refresh, not one per write. The thread starts when a job is scheduled and ends when none is
left, so an idle or forgotten collection holds no thread. A failed job is logged and re-raised by the next `wait()`.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)

# A rebuild also builds the new epoch's keyword index, so running it first makes a pending keyword refresh a no-op.
ORDER = ("rebuild", "keyword", "checkpoint")


class BackgroundError(RuntimeError):
    """A background job failed; raised by `wait()` with the job's own exception as its cause."""


class BackgroundWorker:
    """Runs named jobs one at a time on a lazily started daemon thread."""

    def __init__(self, name: str):
        self.name = name
        self._cond = threading.Condition()
        self._pending: dict[str, Callable[[], Any]] = {}
        self._running: str | None = None
        self._thread: threading.Thread | None = None
        self._error: tuple[str, BaseException] | None = None
        self._closed = False

    def schedule(self, job: str, fn: Callable[[], Any]) -> None:
        """Queue `fn` under `job` unless that job is already pending; ignored after close."""
        with self._cond:
            if self._closed or job in self._pending:
                return
            self._pending[job] = fn
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name=f"embedops-index:{self.name}",
                                                daemon=True)
                self._thread.start()

    def _next(self) -> tuple[str, Callable[[], Any]] | None:
        with self._cond:
            for job in ORDER + tuple(self._pending):
                if job in self._pending:
                    self._running = job
                    return job, self._pending.pop(job)
            self._thread = None
            self._cond.notify_all()
            return None

    def _loop(self) -> None:
        while (item := self._next()) is not None:
            job, fn = item
            try:
                fn()
            except BaseException as exc:  # noqa: BLE001 - kept for wait(); a daemon thread has no caller
                log.exception("background %s of %s failed", job, self.name)
                with self._cond:
                    self._error = (job, exc)
            finally:
                with self._cond:
                    self._running = None
                    self._cond.notify_all()

    def wait(self, timeout: float | None = None, *, raise_errors: bool = True) -> bool:
        """Block until no job is pending or running; False on timeout. Re-raises a failed job's error once."""
        with self._cond:
            done = self._cond.wait_for(lambda: not self._pending and self._running is None, timeout)
            error, self._error = self._error, None
        if error is not None and raise_errors:
            job, exc = error
            raise BackgroundError(f"background {job} of {self.name} failed: {exc}") from exc
        return done

    def state(self) -> dict[str, Any]:
        """Pending and running job names (cheap, for info())."""
        with self._cond:
            return {"running": self._running, "pending": [j for j in ORDER if j in self._pending]}

    def close(self) -> None:
        """Finish queued work, then refuse new jobs."""
        self.wait(raise_errors=False)
        with self._cond:
            self._closed = True
