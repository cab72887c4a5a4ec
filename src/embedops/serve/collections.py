"""The served collections: names mapped to folders the operator configured or the server created under its root.

No request names a path: a request names a collection, and the name is checked before it becomes a folder under
the root, so no endpoint reaches an arbitrary server path.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any

from embedops.serve.errors import APIError
from embedops.serve.models import ModelPool
from embedops.serve.settings import check_collection_name

log = logging.getLogger("embedops.serve")


class CollectionRegistry:
    """Open collections by name; their encoders are the pool's workers, so queries join the batches."""

    def __init__(self, project: Any, pool: ModelPool, root: Path):
        self.project = project
        self.pool = pool
        self.root = root
        self._lock = threading.Lock()
        self._paths: dict[str, Path] = {}
        self._open: dict[str, Any] = {}

    def load(self, configured: dict[str, str]) -> None:
        """Open the configured collections and those already under the root; load their models (blocking)."""
        for name, path in configured.items():
            self._paths[name] = self.project.config.resolve(path)
        from embedops.index.sqlite_store import DB_NAME

        if self.root.is_dir():
            for folder in sorted(self.root.iterdir()):
                if (folder / DB_NAME).is_file() and folder.name not in self._paths:
                    try:
                        check_collection_name(folder.name)
                    except ValueError:
                        continue
                    self._paths[folder.name] = folder
        for name in list(self._paths):
            col = self._open_one(name)
            col.encoder  # noqa: B018 - load and warm the model now, so /ready means ready

    def _open_one(self, name: str) -> Any:
        from embedops.index import Collection

        with self._lock:
            col = self._open.get(name)
            if col is None:
                col = Collection.open(self._paths[name], loader=self.pool.encoder_for_spec)
                self._open[name] = col
                log.info("collection open", extra={"collection": name, "documents": len(col)})
        return col

    def names(self) -> list[str]:
        """Served collection names."""
        with self._lock:
            return sorted(self._paths)

    def get(self, name: str) -> Any:
        """The collection called `name`; 404 if there is none."""
        with self._lock:
            known = name in self._paths
        if not known:
            raise APIError(404, f"the collection {name!r} does not exist", code="collection_not_found",
                           param="name")
        return self._open_one(name)

    def create(self, name: str, model: str | None, spec: dict[str, Any]) -> Any:
        """A new empty collection under the root for a served model (409 if the name is taken)."""
        from embedops.index import Collection

        check_collection_name(name)
        served = self.pool.get(model)
        index_spec = self.project.index_spec(**spec)
        with self._lock:
            if name in self._paths or (self.root / name).exists():
                raise APIError(409, f"the collection {name!r} already exists", code="collection_exists",
                               param="name")
            self.root.mkdir(parents=True, exist_ok=True)
            col = Collection.create(self.root / name, served.worker, spec=index_spec)
            self._paths[name] = self.root / name
            self._open[name] = col
        log.info("collection created", extra={"collection": name, "model": served.id})
        return col

    def model_id(self, col: Any) -> str:
        """The served id of the model a collection was built with."""
        fingerprint = col.model.get("fingerprint")
        for served in self.pool.models():
            if served.fingerprint == fingerprint:
                return served.id
        return str(col.model.get("name"))

    def close(self) -> None:
        """Close every open collection (waits for background refreshes, saves checkpoints)."""
        with self._lock:
            cols, self._open = list(self._open.items()), {}
        for name, col in cols:
            try:
                col.close()
            except Exception:  # noqa: BLE001 - close the others even if one fails
                log.exception("closing collection %s failed", name)
