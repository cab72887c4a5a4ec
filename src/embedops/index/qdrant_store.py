"""`QdrantStore`: a collection in Qdrant (qdrant-client, `pip install embedops[qdrant]`) behind `VectorStore`.

A server (`qdrant+http://host:6333`) or the client's local mode (`qdrant:///folder`, `qdrant://:memory:`): local mode
keeps points in a folder (SQLite) or in memory (`:memory:`, one store per process, kept until the process ends) and
searches by brute force in Python, fine for tens of thousands of points and for tests; one process at a time may
open a folder (the client locks it), so a process shares one client per folder and guards it with a lock (local mode
is not thread-safe).

Points: Qdrant ids are integers or UUIDs, so a document id `d` is stored at uuid5(NAMESPACE, d) with the payload
`{"id": d, "text": ..., "meta": {...}}`; vectors use the DOT distance (inner product, as the FAISS store scores).
Collection metadata holds `embedops.state` and `embedops.types` (JSON strings; a Qdrant server needs collection
metadata, version 1.16 or newer).
"""

from __future__ import annotations

import json
import re
import socket
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from embedops._optional import require
from embedops.config.store_url import StoreURL
from embedops.errors import InputError
from embedops.index.base import Hit, IndexSpec, Record
from embedops.index.filters import Condition
from embedops.index.remote import RemoteStore, StoreUnavailableError, chunks, state_facts
from embedops.index.remote_filters import check_qdrant, qdrant_filter

NAMESPACE = uuid.UUID("6f0c2f6e-5b8a-4b7e-9a51-0c1d2e3f4a5b")
_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]{0,199}$")
_STATE, _TYPES = "embedops.state", "embedops.types"
_BATCH = 512
_REQUEST_BYTES = 16 << 20
_REQUEST_TIMEOUT = 120
_LOCAL: dict[str, tuple[Any, threading.RLock, list[int]]] = {}  # folder -> (client, lock, [users])
_LOCAL_LOCK = threading.Lock()


def point_id(doc_id: str) -> str:
    """The Qdrant point id of a document id."""
    return str(uuid.uuid5(NAMESPACE, doc_id))


def check_name(name: str) -> str:
    """A Qdrant collection name: letters, digits, `_ . -` (at most 200)."""
    if not isinstance(name, str) or not _NAME.match(name) or ".." in name:
        raise InputError(f"invalid Qdrant collection name {name!r}: use letters, digits, '_', '.', '-' (at most "
                         "200, no '..')", where="collection name",
                         hint="the name is the collection path's last part (index.path or the CLI's PATH)")
    return name


class _Guard:
    """A lock for local mode (not thread-safe); nothing for a server client."""

    def __init__(self, lock: threading.RLock | None):
        self.lock = lock

    def __enter__(self) -> None:
        if self.lock is not None:
            self.lock.acquire()

    def __exit__(self, *exc: object) -> None:
        if self.lock is not None:
            self.lock.release()


class QdrantEngine:
    """One Qdrant client (shared per local folder in a process), and the collection-level operations."""

    engine = "qdrant"

    def __init__(self, url: StoreURL):
        require("qdrant_client", "qdrant")
        from qdrant_client import QdrantClient
        from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse

        self.url = url
        self._errors = (ResponseHandlingException, UnexpectedResponse)
        self._local_key: str | None = None
        self._users = 1  # the creator's share; each store opened holds one more
        self._users_lock = threading.Lock()
        if url.remote:
            _probe(url)
            self.client = QdrantClient(url=url.endpoint, api_key=url.options.get("api_key"),
                                       timeout=_REQUEST_TIMEOUT, check_compatibility=False,
                                       prefer_grpc=url.options.get("prefer_grpc", "").lower() in ("1", "true"))
            self._guard = _Guard(None)
            return
        key = url.path if url.path == ":memory:" else str(Path(url.path or "").resolve())
        with _LOCAL_LOCK:
            entry = _LOCAL.get(key)
            if entry is None:
                try:
                    client = QdrantClient(location=":memory:", force_disable_check_same_thread=True) \
                        if key == ":memory:" else QdrantClient(path=key, force_disable_check_same_thread=True)
                except RuntimeError as exc:  # the folder's lock is held by another process
                    raise InputError("the Qdrant local folder is open in another process (local mode allows one "
                                     "process at a time)", where=key,
                                     hint="close the other process, or use a Qdrant server (qdrant+http://...)") \
                        from exc
                entry = _LOCAL[key] = (client, threading.RLock(), [0])
            entry[2][0] += 1
        self.client, lock, _ = entry
        self._guard = _Guard(lock)
        self._local_key = key

    def call(self, what: str, method: str, *args: Any, **kwargs: Any) -> Any:
        """A client call under the local-mode lock; transport and HTTP errors become StoreUnavailableError."""
        try:
            with self._guard:
                return getattr(self.client, method)(*args, **kwargs)
        except self._errors as exc:
            raise StoreUnavailableError(f"Qdrant failed to {what}: {exc}", where=self.url.redacted()) from exc

    def check_name(self, name: str) -> str:
        """Refuse a name Qdrant cannot take."""
        return check_name(name)

    def _aliases(self) -> dict[str, str]:
        return {a.alias_name: a.collection_name for a in self.call("list aliases", "get_aliases").aliases}

    def resolve(self, name: str) -> str | None:
        """The physical collection `name` points at (an alias, or an embedops collection of that name); None."""
        check_name(name)
        physical = self._aliases().get(name)
        if physical is not None:
            return physical
        if self.call("check a collection", "collection_exists", name) and _STATE in self._metadata(name):
            return name
        return None

    def _metadata(self, physical: str) -> dict[str, Any]:
        info = self.call("describe a collection", "get_collection", physical)
        return dict(info.config.metadata or {})

    def state(self, physical: str) -> dict[str, Any]:
        """The recorded state of a physical collection."""
        meta = self._metadata(physical)
        if _STATE not in meta:
            raise InputError(f"Qdrant collection {physical!r} was not made by embedops (no {_STATE} metadata)",
                             where=self.url.redacted())
        state = json.loads(meta[_STATE])
        state["types"] = json.loads(meta.get(_TYPES) or "{}")
        state["physical"] = physical
        return state

    def create_physical(self, physical: str, dimension: int, spec: IndexSpec, facts: dict[str, Any]) -> None:
        """Create an empty physical collection recording `facts`."""
        from qdrant_client import models

        _check_spec(spec)
        state = state_facts(dimension, spec, facts)
        state.pop("types")
        self.call("create a collection", "create_collection", physical,
                  vectors_config=models.VectorParams(size=int(dimension), distance=models.Distance.DOT),
                  hnsw_config=models.HnswConfigDiff(m=spec.hnsw_m, ef_construct=spec.ef_construction),
                  metadata={_STATE: json.dumps(state), _TYPES: "{}"})

    def publish(self, physical: str, name: str, overwrite: bool) -> str | None:
        """Point `name` at `physical` in one request; returns the physical collection it pointed at before."""
        from qdrant_client import models

        old = self.resolve(name)
        if old == name or (old is None and self.call("check a collection", "collection_exists", name)):
            raise InputError(f"a Qdrant collection named {name!r} exists (not an alias embedops can move)",
                             where=self.url.redacted(), hint="delete it or choose another name")
        if old is not None and not overwrite:
            raise InputError(f"collection {name!r} exists", where=self.url.redacted(),
                             hint="choose another name or pass overwrite=True (--overwrite)")
        ops: list[Any] = []
        if old is not None:
            ops.append(models.DeleteAliasOperation(delete_alias=models.DeleteAlias(alias_name=name)))
        ops.append(models.CreateAliasOperation(create_alias=models.CreateAlias(collection_name=physical,
                                                                               alias_name=name)))
        self.call("move the alias", "update_collection_aliases", change_aliases_operations=ops)
        return old

    def drop_physical(self, physical: str) -> None:
        """Delete a physical collection (its aliases go with it)."""
        from qdrant_client import models

        aliases = [a for a, c in self._aliases().items() if c == physical]
        if aliases:
            self.call("drop aliases", "update_collection_aliases", change_aliases_operations=[
                models.DeleteAliasOperation(delete_alias=models.DeleteAlias(alias_name=a)) for a in aliases])
        if self.call("check a collection", "collection_exists", physical):
            self.call("delete a collection", "delete_collection", physical)

    def temporaries(self, name: str) -> list[str]:
        """Physical collections of `name` that no alias points at (left by a killed build or migration)."""
        targeted = set(self._aliases().values())
        names = [c.name for c in self.call("list collections", "get_collections").collections]
        return [c for c in names if c.startswith(f"{name}__eo") and c not in targeted]

    def open(self, name: str, physical: str | None = None) -> QdrantStore:
        """A store on `name` (or directly on a physical collection while it is being filled)."""
        with self._users_lock:
            self._users += 1
        try:
            return QdrantStore(self, name, physical=physical)
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        """Release this engine's share of the client (a local folder is closed with its last user)."""
        with self._users_lock:
            self._users -= 1
            if self._users:
                return
        if self._local_key is None:
            self.client.close()
            return
        if self._local_key == ":memory:":
            return  # the in-memory store lives as long as the process: closing it would lose its collections
        with _LOCAL_LOCK:
            entry = _LOCAL.get(self._local_key)
            if entry is not None:
                entry[2][0] -= 1
                if entry[2][0] == 0:
                    del _LOCAL[self._local_key]
                    with entry[1]:
                        entry[0].close()


class QdrantStore(RemoteStore):
    """A Qdrant collection as a VectorStore (see the module docstring)."""

    engine = "qdrant"

    def __init__(self, engine: QdrantEngine, name: str, *, physical: str | None = None):
        self._engine = engine
        self._pinned = physical
        self._target = physical or name
        super().__init__(engine.url, name)

    def _call(self, what: str, method: str, *args: Any, **kwargs: Any) -> Any:
        return self._engine.call(what, method, *args, **kwargs)

    def _save_types(self, types: dict[str, list[str]]) -> None:
        self._call("record metadata types", "update_collection", self.physical,
                   metadata={_TYPES: json.dumps(types)})

    def _check_translatable(self, conditions: list[Condition]) -> None:
        check_qdrant(conditions, self._types)

    def _write_rows(self, ids: list[str], vectors: np.ndarray, texts: list[str | None],
                    metas: list[dict[str, Any]]) -> None:
        from qdrant_client import models

        part: list[Any] = []
        size = 0
        for i, v, t, m in zip(ids, vectors.tolist(), texts, metas, strict=True):
            part.append(models.PointStruct(id=point_id(i), vector=v, payload={"id": i, "text": t, "meta": m}))
            size += 20 * len(v) + 4 * (len(i) + len(t or "")) + 64  # a bound on the JSON request's bytes
            if len(part) == _BATCH or size > _REQUEST_BYTES:  # a Qdrant server refuses requests above 32 MB
                self._call("upsert", "upsert", self._target, points=part, wait=True)
                part, size = [], 0
        if part:
            self._call("upsert", "upsert", self._target, points=part, wait=True)

    def _existing(self, ids: list[str]) -> set[str]:
        return set(self._fetch(ids, False))

    def _remove(self, ids: list[str]) -> None:
        from qdrant_client import models

        for part in chunks(ids, _BATCH):
            self._call("delete", "delete", self._target,
                       points_selector=models.PointIdsList(points=[point_id(i) for i in part]), wait=True)

    def _fetch(self, ids: list[str], with_vectors: bool) -> dict[str, Record]:
        out: dict[str, Record] = {}
        for part in chunks(ids, _BATCH):
            for p in self._call("read documents", "retrieve", self._target, ids=[point_id(i) for i in part],
                                with_payload=True, with_vectors=with_vectors):
                record = _record(p, with_vectors)
                out[record.id] = record
        return out

    def _count(self) -> int:
        return int(self._call("count", "count", self._target, exact=True).count)

    def _scan_ids(self) -> list[str]:
        return [r.id for batch in self.scan(with_vectors=False) for r in batch]

    def scan(self, batch_size: int = _BATCH, *, with_vectors: bool = True) -> Iterator[list[Record]]:
        """Every document in batches of Records (for migrations and checksums)."""
        offset = None
        while True:
            points, offset = self._call("scan the collection", "scroll", self._target, limit=batch_size,
                                        offset=offset, with_payload=True, with_vectors=with_vectors)
            if points:
                yield [_record(p, with_vectors) for p in points]
            if offset is None:
                return

    def _knn(self, q: np.ndarray, k: int, conditions: list[Condition], exclude: list[str]) -> list[list[Hit]]:
        from qdrant_client import models

        flt = qdrant_filter(conditions)
        if exclude:
            flt = flt or models.Filter()
            flt.must_not = [models.HasIdCondition(has_id=[point_id(i) for i in exclude])]
        params = None  # local mode is exact whatever it is told (and warns when told anything)
        if self.url.remote:
            params = models.SearchParams(exact=True) if self.spec.kind == "flat" else \
                models.SearchParams(hnsw_ef=max(self.spec.ef_search, k))
        requests = [models.QueryRequest(query=row, filter=flt, limit=k, params=params, with_payload=["id"])
                    for row in q.tolist()]
        out: list[list[Hit]] = []
        for part in chunks(requests, 64):
            for response in self._call("search", "query_batch_points", self._target, requests=list(part)):
                out.append([Hit(str(p.payload["id"]), float(p.score)) for p in response.points])
        return out

    def _index_facts(self) -> dict[str, Any]:
        mode = "local (brute force)" if not self.url.remote else ("exact" if self.spec.kind == "flat" else "HNSW")
        return {"kind": mode, "metric": "DOT"}

    def _disconnect(self) -> None:
        self._engine.close()


def _record(point: Any, with_vectors: bool) -> Record:
    payload = point.payload or {}
    vector = np.asarray(point.vector, dtype=np.float32) if with_vectors else None
    return Record(str(payload["id"]), payload.get("text"), dict(payload.get("meta") or {}), vector)


def _check_spec(spec: IndexSpec) -> None:
    if spec.kind == "ivfpq":
        raise InputError("Qdrant has no IVF-PQ index", where="index.kind", hint="use kind auto, hnsw or flat")
    if spec.vectors != "float32":
        raise InputError(f"vectors={spec.vectors} is a FAISS setting; Qdrant collections here store float32",
                         where="index.vectors")


def _probe(url: StoreURL) -> None:
    """Fail within the URL's timeout when nothing answers at host:port (the client would wait for minutes)."""
    try:
        socket.create_connection((url.host, url.port), timeout=url.timeout).close()
    except OSError as exc:
        raise StoreUnavailableError(f"cannot reach Qdrant within {url.timeout:g} s: {exc}", where=url.redacted(),
                                    hint="is the server running and the URL right? (index.store / --store; "
                                         "?timeout=SECONDS waits longer)") from exc
