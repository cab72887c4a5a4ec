"""A loop run's state on disk: which steps are done and what each produced, so a rerun resumes."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from embedops._io import atomic_write_json
from embedops.errors import EmbedopsError, InputError

STEPS = ("pairs", "train", "gate", "register", "embed", "experiment", "decide")


class LoopBusyError(EmbedopsError):
    """Another process is running this loop folder."""


class LoopState:
    """`<run>/state.json`: {"steps": {step: outputs}, "status": ..., "params": ...}; one writer at a time."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        self.path = self.folder / "state.json"
        self.data: dict[str, Any] = {"steps": {}, "status": "running", "params": {}}
        if self.path.exists():
            try:
                self.data = json.loads(self.path.read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:
                raise InputError(f"loop state is unreadable ({exc})", where=str(self.path),
                                 hint="move the run folder aside and start a new run") from None

    @contextlib.contextmanager
    def locked(self) -> Iterator[LoopState]:
        """Hold the run's OS lock for a whole run (a second `loop run` on the folder fails fast)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.folder / "run.lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise LoopBusyError("another loop run holds this folder", where=str(self.folder)) from None
            yield self
        finally:
            os.close(fd)

    def done(self, step: str) -> bool:
        """True when `step` finished in this run (its outputs are recorded)."""
        return step in self.data["steps"]

    def output(self, step: str) -> dict[str, Any]:
        """What a finished step recorded."""
        return self.data["steps"][step]

    def record(self, step: str, outputs: dict[str, Any], *, status: str | None = None) -> None:
        """Mark `step` done with its outputs, atomically (a crash leaves the previous state file)."""
        if step not in STEPS:
            raise ValueError(f"unknown loop step {step!r}")
        self.data["steps"][step] = outputs
        if status:
            self.data["status"] = status
        atomic_write_json(self.path, self.data)

    def set_status(self, status: str, **extra: Any) -> None:
        """Record the run's overall status (running, refused, testing, promoted, kept)."""
        self.data["status"] = status
        self.data.update(extra)
        atomic_write_json(self.path, self.data)

    @property
    def status(self) -> str:
        """The run's overall status."""
        return str(self.data.get("status", "running"))
