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
    """Served collection names -> folders; every open, create, search and recommend goes through the `Project`
    (which shares one open collection per folder), with the pool's workers as the encoders, so queries join the
    batches."""

    def __init__(self, project: Any, pool: ModelPool, root: Path):
        self.project = project
        self.pool = pool
        self.root = root
        self._lock = threading.Lock()
        self._paths: dict[str, Path] = {}
        self._open: dict[str, Any] = {}  # name -> the Project's collection, to close on shutdown

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
        with self._lock:
            col = self._open.get(name)
            if col is None:
                col = self.project.open_collection(self._paths[name], loader=self.pool.encoder_for_spec)
                self._open[name] = col
                log.info("collection open", extra={"collection": name, "documents": len(col)})
        return col

    def path(self, name: str) -> Path:
        """The folder of a served collection; 404 if there is none (never shown to clients)."""
        with self._lock:
            path = self._paths.get(name) or self._discover(name)
        if path is None:
            raise APIError(404, f"the collection {name!r} does not exist", code="collection_not_found",
                           param="name")
        return path

    def _discover(self, name: str) -> Path | None:
        """A collection another process built under the root since start-up (e.g. `embedops loop run`'s challenger
        collection) is served by its folder name without a restart; the name is checked before it becomes a path."""
        from embedops.index.sqlite_store import DB_NAME

        try:
            check_collection_name(name)
        except ValueError:
            return None
        folder = self.root / name
        if not (folder / DB_NAME).is_file():
            return None
        self._paths[name] = folder
        log.info("collection found under the root", extra={"collection": name})
        return folder

    def search(self, name: str, query: str, k: int, filter: Any, *, mode: str, fusion: str,
               query_vector: Any = None) -> list[Any]:
        """Text search through `Project.search` (blocking); `query_vector` when the route embedded it already."""
        self._open_one(name)  # opened with the pool's loader before the Project could open it with its own
        return self.project.search(query, k, filter, mode=mode, fusion=fusion, path=self.path(name),
                                   query_vector=query_vector)

    def recommend(self, name: str, positive: list[str], negative: list[str], k: int, filter: Any) -> list[Any]:
        """Recommendations through `Project.recommend` (blocking)."""
        self._open_one(name)
        return self.project.recommend(positive, negative, k, filter, path=self.path(name))

    def names(self) -> list[str]:
        """Served collection names (with any built under the root by another process since start-up)."""
        with self._lock:
            if self.root.is_dir():
                for folder in self.root.iterdir():
                    if folder.name not in self._paths:
                        self._discover(folder.name)
            return sorted(self._paths)

    def get(self, name: str) -> Any:
        """The collection called `name` (the Project's open collection); 404 if there is none."""
        self.path(name)
        return self._open_one(name)

    def create(self, name: str, model: str | None, spec: dict[str, Any]) -> Any:
        """A new empty collection under the root for a served model, by `Project.create_collection` (409 if the
        name is taken)."""
        check_collection_name(name)
        served = self.pool.get(model)
        index_spec = self.project.index_spec(**spec)
        with self._lock:
            if name in self._paths or (self.root / name).exists():
                raise APIError(409, f"the collection {name!r} already exists", code="collection_exists",
                               param="name")
            self.root.mkdir(parents=True, exist_ok=True)
            col = self.project.create_collection(self.root / name, encoder=served.worker, spec=index_spec)
            self.pool.pin(served)  # its vectors are in this model's space: promotions never take it away
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
        """Close every served collection (waits for background refreshes, saves checkpoints); one failing does not
        keep the others open. The Project's own close() then finds them closed."""
        with self._lock:
            cols, self._open = list(self._open.items()), {}
        for name, col in cols:
            try:
                col.close()
            except Exception:  # noqa: BLE001 - close the others even if one fails
                log.exception("closing collection %s failed", name)
