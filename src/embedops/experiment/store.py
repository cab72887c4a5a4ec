"""Experiments on disk: one `<name>.json` per experiment in a folder, written atomically under a file lock."""

from __future__ import annotations

import contextlib
import fcntl
import json
import threading
from collections.abc import Iterator
from pathlib import Path

from embedops._io import atomic_write_json
from embedops.experiment.definition import Experiment, ExperimentError

_LOCK = ".lock"


class ExperimentStore:
    """A folder of experiment definitions: create, list, get, stop (safe for concurrent writers)."""

    # flock is per open file description, so two threads of one process each opening the lock file would both
    # succeed on some systems; a process-wide lock per folder serialises them first.
    _thread_locks: dict[str, threading.Lock] = {}
    _guard = threading.Lock()

    def __init__(self, root: str | Path):
        self.root = Path(root)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self.root.mkdir(parents=True, exist_ok=True)
        key = str(self.root.resolve())
        with self._guard:
            tlock = self._thread_locks.setdefault(key, threading.Lock())
        with tlock, open(self.root / _LOCK, "a") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def _path(self, name: str) -> Path:
        return self.root / f"{name}.json"

    def _read(self, path: Path) -> Experiment:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ExperimentError(f"cannot read experiment file: {exc}", where=str(path)) from None
        return Experiment.from_dict(data, where=str(path))

    def create(self, experiment: Experiment) -> Experiment:
        """Store a new experiment; a name already taken is refused (it would reset a running test's start)."""
        with self._locked():
            path = self._path(experiment.name)
            if path.exists():
                raise ExperimentError(f"experiment {experiment.name!r} already exists", where=str(path),
                                      hint="stop it and pick a new name")
            atomic_write_json(path, experiment.to_dict())
        return experiment

    def get(self, name: str) -> Experiment:
        """The stored experiment called `name`."""
        path = self._path(name)
        if "/" in name or not path.is_file():
            known = ", ".join(e.name for e in self.list()) or "none"
            raise ExperimentError(f"no experiment called {name!r} (known: {known})", where=str(self.root))
        return self._read(path)

    def list(self) -> list[Experiment]:
        """Every stored experiment, oldest start first."""
        if not self.root.is_dir():
            return []
        found = [self._read(p) for p in sorted(self.root.glob("*.json")) if not p.name.startswith(".")]
        return sorted(found, key=lambda e: (e.started_at, e.name))

    def running(self) -> list[Experiment]:
        """The experiments still running."""
        return [e for e in self.list() if e.status == "running"]

    def stop(self, name: str) -> Experiment:
        """Mark an experiment stopped (its definition and start time are kept for the report)."""
        with self._locked():
            current = self.get(name)
            if current.status == "stopped":
                raise ExperimentError(f"experiment {name!r} is already stopped (at {current.stopped_at})",
                                      where=str(self._path(name)))
            done = current.stopped()
            atomic_write_json(self._path(name), done.to_dict())
        return done
