"""Which collection each model version serves: `<collections root>/serving.json`.

A collection is embedded by one model, so promoting a version means serving its collection. The map is kept per
version, not per alias: after `embedops models rollback`, the champion alias points at the old version again and
`collection_for("champion")` answers with the old version's collection, with nothing else to undo.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from embedops._io import atomic_write_json
from embedops.errors import InputError

FILE = "serving.json"


class ServingMap:
    """Model version ref (`name@vN`) -> the collection that serves it (name and folder); one writer at a time."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        self.path = self.root / FILE

    def read(self) -> dict[str, Any]:
        """{"versions": {ref: {"collection", "path", "at"}}} (empty when nothing was recorded yet)."""
        if not self.path.is_file():
            return {"versions": {}}
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise InputError(f"serving map is unreadable ({exc})", where=str(self.path),
                             hint="fix the JSON or remove the file and pass --champion-collection") from None
        if not isinstance(data, dict) or not isinstance(data.get("versions"), dict):
            raise InputError("serving map is damaged: expected {\"versions\": {...}}", where=str(self.path))
        return data

    def get(self, ref: str) -> dict[str, Any] | None:
        """The collection recorded for a version, or None."""
        return self.read()["versions"].get(ref)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / f".{FILE}.lock", "a") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def set(self, ref: str, collection: str, path: str | Path | None = None) -> dict[str, Any]:
        """Record that `collection` (at `path`) serves version `ref` (atomic; the latest record wins).

        Recording the same collection again without a path keeps the folder already known for it.
        """
        entry = {"collection": collection, "path": None if path is None else str(Path(path).resolve()),
                 "at": datetime.now(UTC).isoformat(timespec="seconds")}
        with self._locked():
            data = self.read()
            old = data["versions"].get(ref) or {}
            if path is None and old.get("collection") == collection:
                entry["path"] = old.get("path")
            data["versions"][ref] = entry
            atomic_write_json(self.path, data)
        return entry
