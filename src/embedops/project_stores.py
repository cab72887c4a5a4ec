"""The external-store half of `Project`: collections in Milvus or Qdrant (`index.store`, `--store`), migrations.

A mixin so `project.py` stays one concept per file. With `index.store: faiss` (the default) nothing here runs: a
collection is the folder `index.path`. With an engine URL, the same calls (`create_collection`, `build_collection`,
`open_collection`, `index`, `search`, `recommend`) work on the collection named by the path's last part in that
engine, so one project file moves from a laptop to a cluster by changing `index.store`.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from embedops.errors import ConfigError, InputError


class StoresMixin:
    """Remote collections and migrations; needs `self.config`, `self._lock`, `self._collections`, `self.encoder`."""

    config: Any
    _lock: threading.RLock
    _collections: dict[Any, Any]
    encoder: Any
    index_spec: Callable[..., Any]
    encoder_from_spec: Callable[[dict[str, Any]], Any]

    def store_url(self, store: str | None = None):
        """The parsed store URL: `store` (a CLI --store, relative folders against the working directory), else
        `index.store` (relative folders against the project file)."""
        from embedops.config.store_url import StoreURLError, parse_store_url

        text = store if store is not None else self.config.index.store
        try:
            url = parse_store_url(text)
        except StoreURLError as exc:
            if store is None:
                raise ConfigError(str(exc), where="index.store") from exc
            raise InputError(str(exc), where="--store") from exc
        if url.engine == "qdrant" and not url.remote and url.path != ":memory:":
            folder = Path(url.path).expanduser()
            if not folder.is_absolute():
                folder = Path(folder).absolute() if store is not None else self.config.resolve(folder)
            url = url.with_path(str(folder))
        return url

    def collection_name(self, path: str | Path | None = None) -> str:
        """A collection's name in an external store: the last part of `path` (default `index.path`)."""
        name = Path(str(path or self.config.index.path)).name
        if not name:
            raise InputError("the collection path has no name", where=str(path))
        return name

    def _remote_key(self, url: Any, name: str) -> tuple[str, str, str]:
        return ("store", url.redacted() + str(url.path or ""), name)

    def _remote_collection(self, action: str, url: Any, path: str | Path | None, **options: Any):
        """create / build / open a collection in an external store, shared per (store, name) like a folder."""
        from embedops.index import stores

        name = self.collection_name(path)
        key = self._remote_key(url, name)
        if action == "open":
            if options.get("read_only"):  # as for a folder: a handle of its own, which the caller closes
                return stores.open_collection(url, name, loader=options.get("loader") or self.encoder_from_spec,
                                              read_only=True)
            with self._lock:
                col = self._collections.get(key)
                if col is None:
                    col = stores.open_collection(url, name, loader=options.get("loader") or self.encoder_from_spec)
                    self._collections[key] = col
            return col
        encoder = options.pop("encoder", None) or self.encoder
        spec = options.pop("spec", None) or self.index_spec()
        if action == "create":
            col = stores.create_collection(url, name, encoder, spec=spec, overwrite=options.get("overwrite", False))
        else:
            col = stores.build_collection(url, name, encoder, options["documents"], vectors=options.get("vectors"),
                                          spec=spec, overwrite=options.get("overwrite", False),
                                          batch_size=self.config.model.batch_size,
                                          show_progress=options.get("show_progress", False))
        with self._lock:
            old = self._collections.pop(key, None)
            self._collections[key] = col
        if old is not None and old is not col:
            with contextlib.suppress(Exception):  # replaced in the engine: nothing of it is left to flush
                old.close()
        return col

    def migrate_collection(self, source: str | Path, target: str | Path | None = None, *,
                           source_store: str | None = "faiss", target_store: str | None = None,
                           overwrite: bool = False, batch_size: int = 1000,
                           progress: Callable[[int, int], None] | None = None) -> dict[str, Any]:
        """Copy collection `source` (a folder, or a name in `source_store`) to `target` in `target_store`
        (default `index.store`), checked by count and checksum, published only when whole (index/migrate.py)."""
        from embedops.index.migrate import migrate

        src_url = self.store_url(source_store)
        dst_url = self.store_url(target_store)
        source_ref = str(self.config.resolve(source)) if src_url.engine == "faiss" else self.collection_name(source)
        target = target if target is not None else self.collection_name(source)
        target_ref = str(self.config.resolve(target)) if dst_url.engine == "faiss" else self.collection_name(target)
        # A collection this project holds open is closed first: the published one replaces it.
        key = Path(target_ref).resolve() if dst_url.engine == "faiss" else self._remote_key(dst_url, target_ref)
        with self._lock:
            old = self._collections.pop(key, None)
        if old is not None:
            old.close()
        return migrate(src_url, source_ref, dst_url, target_ref, overwrite=overwrite, batch_size=batch_size,
                       progress=progress)
