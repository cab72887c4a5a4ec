"""A loop run's state on disk: which steps are done and what each produced, so a rerun resumes."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from embedops._io import atomic_write_json
from embedops.errors import EmbedopsError, InputError

STEPS = ("pairs", "train", "gate", "register", "embed", "experiment", "decide")
# A run in one of these is over: a rerun on its folder does nothing (start a new run in a new folder).
FINAL = ("refused", "promoted", "kept")


class LoopBusyError(EmbedopsError):
    """Another process is running this loop folder."""


class LoopState:
    """`<run>/state.json`: {"steps": {step: outputs}, "status": ..., "params": ...}; one writer at a time."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        self.path = self.folder / "state.json"
        self.data: dict[str, Any] = {"steps": {}, "status": "running", "params": {}}
        self._load()

    def _load(self) -> None:
        if self.path.exists():
            try:
                data = json.loads(self.path.read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:
                raise InputError(f"loop state is unreadable ({exc})", where=str(self.path),
                                 hint="move the run folder aside and start a new run") from None
            if not isinstance(data, dict) or not isinstance(data.get("steps"), dict):
                raise InputError("loop state is damaged: expected {\"steps\": {...}, ...}", where=str(self.path),
                                 hint="move the run folder aside and start a new run")
            self.data = data

    @property
    def exists(self) -> bool:
        """True when the folder holds a run (its state file)."""
        return self.path.is_file()

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
            self._load()  # what the previous holder wrote, not what was read before the lock
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
        self.data.setdefault("finished_at", {})[step] = time.time()
        if status:
            self.data["status"] = status
        atomic_write_json(self.path, self.data)

    def save(self) -> None:
        """Write the state as it is now (atomically)."""
        atomic_write_json(self.path, self.data)

    def set_status(self, status: str, **extra: Any) -> None:
        """Record the run's overall status (running, refused, testing, promoted, kept)."""
        self.data["status"] = status
        self.data.update(extra)
        atomic_write_json(self.path, self.data)

    def add_check(self, check: dict[str, Any]) -> None:
        """Append one look at a running experiment (kept in the state, newest last)."""
        self.data.setdefault("checks", []).append({"at": time.time(), **check})
        atomic_write_json(self.path, self.data)

    @property
    def status(self) -> str:
        """The run's overall status."""
        return str(self.data.get("status", "running"))

    @property
    def finished(self) -> bool:
        """True when the run is over (refused, promoted or kept)."""
        return self.status in FINAL


def unfinished_runs(root: str | Path) -> list[Path]:
    """Run folders under `root` whose run is not over (oldest first by name), e.g. killed or testing."""
    root = Path(root)
    if not root.is_dir():
        return []
    out = []
    for folder in sorted(p for p in root.iterdir() if (p / "state.json").is_file()):
        try:
            if not LoopState(folder).finished:
                out.append(folder)
        except InputError:
            continue  # a damaged run is reported when someone opens it by name, not picked up silently
    return out
