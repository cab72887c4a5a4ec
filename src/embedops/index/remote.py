"""`RemoteStore`: what the Milvus and Qdrant stores share behind the `VectorStore` protocol.

The engine does the storing and the searching; this base class gives both the FAISS store's contract:

- the same input checks (ids, vectors, metadata, texts), refused before anything is sent;
- upsert replaces a document whole (vector, text and metadata), delete answers how many existed, search returns
  min(k, matching) hits, best first, scored by inner product (as FAISS does);
- the same filter language (embedops.index.filters), translated by each engine (remote_filters.py), and the same
  type check: a filter comparing a field with a value type no stored value has is an error naming the field. The
  stored types per field are kept with the collection (they only grow: a deleted document's types stay);
- one writer at a time in a process (a lock); reads run concurrently. Writers in other processes are serialised by
  the engine itself (each upsert is one request).

A collection's name in the engine is an alias of a physical collection `<name>__eo<tag>`: a build or a migration
fills a new physical collection and moves the alias in one step (see stores.py), so searches always see a whole
collection. A store notices within `RECHECK_SECONDS` that its name now points at another physical collection, and
refuses to go on when that one was built with another model.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from embedops.config.store_url import StoreURL
from embedops.errors import EmbedopsError, InputError
from embedops.index.base import Filter, Hit, IndexSpec, Record
from embedops.index.filters import Condition, check_types, parse_filter
from embedops.index.identity import ENCODER_KEY
from embedops.index.validation import check_ids, check_queries, check_vectors

FORMAT_VERSION = 1
RECHECK_SECONDS = 5.0
TEXT_LIMIT = 65_535  # bytes: Milvus's VARCHAR bound; both engines take it so a migration never fails half-way


class StoreUnavailableError(EmbedopsError):
    """An external vector store (Milvus, a Qdrant server) cannot be reached, or failed a request."""


def json_type(value: Any) -> str:
    """The SQLite `json_type` name of a metadata value (what filters.check_types compares with)."""
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "real"
    if isinstance(value, str):
        return "text"
    if isinstance(value, list | tuple):
        return "array"
    if isinstance(value, dict):
        return "object"
    return "null"


def check_metadata(metas: list[dict[str, Any]]) -> None:
    """Each metadata a dict that JSON can carry (no NaN, no infinity, string keys)."""
    for i, m in enumerate(metas):
        if not isinstance(m, dict):
            raise InputError(f"metadata must be a dict, got {type(m).__name__}", where=f"batch index {i}")
        try:
            json.dumps(m, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise InputError(f"metadata is not JSON: {exc}", where=f"batch index {i}") from exc
        bad = [k for k in m if not isinstance(k, str)]
        if bad:
            raise InputError(f"metadata keys must be strings, got {bad[0]!r}", where=f"batch index {i}")


def check_texts(ids: list[str], texts: list[Any]) -> None:
    """Each text None or a string within TEXT_LIMIT bytes."""
    for i, t in enumerate(texts):
        if t is None:
            continue
        if not isinstance(t, str):
            raise InputError(f"text must be a string, got {type(t).__name__}", where=f"batch index {i}")
        size = len(t.encode("utf-8", "surrogatepass"))
        if size > TEXT_LIMIT:
            raise InputError(f"the text of id {ids[i]!r} is {size} bytes; external stores take at most "
                             f"{TEXT_LIMIT}", where=f"batch index {i}", hint="chunk long documents "
                             "(`embedops prepare --chunk-tokens`)")


class RemoteStore:
    """The shared half of MilvusStore and QdrantStore; subclasses implement the engine primitives (`_...`)."""

    engine = "remote"
    max_k: int | None = None  # the engine's bound on hits per query, if any

    def __init__(self, url: StoreURL, name: str):
        self.url = url
        self.name = name
        self.read_only = False
        self._write_lock = threading.Lock()
        self._state_lock = threading.Lock()
        self._closed = False
        self._checked_at = 0.0
        state = self._load_state()
        self._apply(state)

    # -- state: facts, dimension, spec, stored types, physical collection ---------------------------------
    def _apply(self, state: dict[str, Any]) -> None:
        self.physical: str = state["physical"]
        self.dimension = int(state["dimension"])
        self.spec = IndexSpec.from_dict(state.get("spec") or {})
        self._facts: dict[str, Any] = dict(state.get("facts") or {})
        self._types: dict[str, frozenset[str]] = {k: frozenset(v) for k, v in (state.get("types") or {}).items()}
        self._checked_at = time.monotonic()

    @property
    def _where(self) -> str:
        return f"{self.url.redacted()} collection {self.name!r}"

    def _check_open(self) -> None:
        if self._closed:
            raise InputError("the collection is closed", where=self._where)

    def _check_writable(self) -> None:
        if self.read_only:
            raise InputError("the collection was opened read-only: it cannot be written", where=self._where,
                             hint="open it without read_only=True to change it")

    def _recheck(self) -> None:
        """Notice (every RECHECK_SECONDS) that the name was moved to another physical collection (a migration
        or build with overwrite) and take its facts; refuse when it was built with another model."""
        if time.monotonic() - self._checked_at < RECHECK_SECONDS:
            return
        with self._state_lock:
            if time.monotonic() - self._checked_at < RECHECK_SECONDS:
                return
            physical = self._resolve_physical()
            if physical == self.physical:
                self._checked_at = time.monotonic()
                return
            state = self._load_state()
            old, new = self._facts.get(ENCODER_KEY) or {}, (state.get("facts") or {}).get(ENCODER_KEY) or {}
            if (old.get("fingerprint"), old.get("dimension")) != (new.get("fingerprint"), new.get("dimension")) \
                    or int(state["dimension"]) != self.dimension:
                self._checked_at = time.monotonic()
                raise InputError("the collection was replaced by one built with another model (now "
                                 f"{new.get('name')!r}, dimension {state['dimension']})", where=self._where,
                                 hint="reopen the collection")
            self._apply(state)

    def facts(self) -> dict[str, Any]:
        """What was recorded with the collection at creation (the encoder's spec ...)."""
        self._check_open()
        return dict(self._facts)

    def __len__(self) -> int:
        return self.count()

    def count(self) -> int:
        """Live documents (read from the engine: other processes' writes included)."""
        self._check_open()
        return int(self._count())

    def ids(self) -> list[str]:
        """Ids of all live documents (in no particular order)."""
        self._check_open()
        return self._scan_ids()

    # -- writes -------------------------------------------------------------------------------------------------
    def upsert(self, ids: Sequence[str], vectors: np.ndarray, metadata: Sequence[dict[str, Any]] | None = None,
               texts: Sequence[str | None] | None = None, **_options: Any) -> int:
        """Insert or replace (same id: vector, text and metadata) documents; returns how many were written."""
        self._check_writable()
        ids = check_ids(ids)
        vectors = check_vectors(vectors, ids, self.dimension)
        n = len(ids)
        metas = list(metadata) if metadata is not None else [{} for _ in range(n)]
        txts = list(texts) if texts is not None else [None] * n
        for what, seq in (("metadata", metas), ("texts", txts)):
            if len(seq) != n:
                raise InputError(f"{len(seq)} {what} for {n} ids", where="upsert")
        check_metadata(metas)
        check_texts(ids, txts)
        self._check_row_limits(ids)
        if n == 0:
            return 0
        with self._write_lock:
            self._check_open()
            self._recheck()
            self._record_types(metas)  # before the rows: a filter never meets a type the registry lacks
            self._write_rows(ids, vectors, txts, metas)
        return n

    def delete(self, ids: Sequence[str]) -> int:
        """Remove documents by id; returns how many existed (unknown ids are not an error)."""
        self._check_writable()
        ids = list(dict.fromkeys(check_ids(ids, allow_duplicates=True)))
        if not ids:
            return 0
        with self._write_lock:
            self._check_open()
            self._recheck()
            found = self._existing(ids)
            if found:
                self._remove([i for i in ids if i in found])
        return len(found)

    def _record_types(self, metas: list[dict[str, Any]]) -> None:
        seen: dict[str, set[str]] = {}
        for m in metas:
            for key, value in m.items():
                seen.setdefault(key, set()).add(json_type(value))
        if all(kinds <= self._types.get(key, frozenset()) for key, kinds in seen.items()):
            return
        merged = {k: set(v) for k, v in self._load_state()["types"].items()}  # another process may have added
        for key, kinds in seen.items():
            merged.setdefault(key, set()).update(kinds)
        merged.update({k: merged.get(k, set()) | set(v) for k, v in self._types.items()})
        self._save_types({k: sorted(v) for k, v in merged.items()})
        self._types = {k: frozenset(v) for k, v in merged.items()}

    # -- reads ---------------------------------------------------------------------------------------------------
    def search(self, queries: Any, k: int = 10, filter: Filter | None = None, *,
               exclude_ids: Sequence[str] | None = None, **_options: Any) -> list[list[Hit]]:
        """Top-k per query row by inner product, best first; filtered; min(k, matching) hits."""
        q = self._check_queries(queries)
        k = self._check_k(k)
        self._check_open()
        self._recheck()
        conditions = self._conditions(filter)
        exclude = list(dict.fromkeys(exclude_ids or ()))
        if self.max_k is not None and k > self.max_k:
            live = self._count()  # k above the count is fine anywhere: ask for the count instead
            if live > self.max_k:
                raise InputError(f"k={k} is above what {self.engine} returns per query ({self.max_k})",
                                 where="search", hint=f"ask for at most {self.max_k} hits")
            k = max(1, live)
        return self._knn(q, k, conditions, exclude)

    def _conditions(self, filter: Filter | None) -> list[Condition]:
        conditions = parse_filter(filter)
        if not conditions:
            return []
        fields = [c.field for c in conditions]
        try:
            check_types(conditions, {f: set(self._types.get(f, ())) for f in fields})
        except InputError:
            # Another process may have written the type since this store loaded its registry: look again.
            self._types = {k: frozenset(v) for k, v in self._load_state()["types"].items()}
            check_types(conditions, {f: set(self._types.get(f, ())) for f in fields})
        self._check_translatable(conditions)
        return conditions

    def get(self, ids: Sequence[str], *, with_vectors: bool = False) -> list[Record | None]:
        """Stored records in the order asked; None for ids that do not exist."""
        ids = check_ids(ids, allow_duplicates=True)
        self._check_open()
        found = self._fetch(list(dict.fromkeys(ids)), with_vectors) if ids else {}
        return [found.get(i) for i in ids]

    def vectors(self, ids: Sequence[str]) -> np.ndarray:
        """Stored float vectors of `ids`, in order (unknown ids are an error naming them)."""
        records = self.get(ids, with_vectors=True)
        unknown = [i for i, r in zip(ids, records, strict=True) if r is None]
        if unknown:
            raise InputError(f"unknown id(s) {unknown[:5]}", where="vectors")
        if not records:
            return np.zeros((0, self.dimension), dtype=np.float32)
        return np.stack([r.vector for r in records]).astype(np.float32)

    def attach_content(self, hits: list[Hit]) -> None:
        """Fill text and metadata of hits (one request for all of them)."""
        if not hits:
            return
        found = self._fetch(list(dict.fromkeys(h.id for h in hits)), False)
        for h in hits:
            r = found.get(h.id)
            if r is not None:
                h.text, h.metadata = r.text, r.metadata

    def recommend(self, positive_ids: Sequence[str], negative_ids: Sequence[str] = (), k: int = 10,
                  filter: Filter | None = None) -> list[Hit]:
        """More like `positive_ids`, less like `negative_ids` (the FAISS store's average-vector rule)."""
        pos = check_ids(positive_ids, allow_duplicates=True)
        neg = check_ids(negative_ids, allow_duplicates=True) if negative_ids else []
        if not pos:
            raise InputError("recommend needs at least one positive id", where="positive_ids")
        records = self.get(pos + neg, with_vectors=True)
        unknown = [i for i, r in zip(pos + neg, records, strict=True) if r is None]
        if unknown:
            raise InputError(f"unknown id(s) {unknown[:5]}", where="positive_ids" if unknown[0] in pos
                             else "negative_ids")
        vecs = np.stack([r.vector for r in records]).astype(np.float32)
        query = vecs[: len(pos)].mean(axis=0)
        if neg:
            query = 2 * query - vecs[len(pos):].mean(axis=0)
        norm = float(np.linalg.norm(query))
        if norm > 0:
            query = query / norm
        return self.search(query[None, :].astype(np.float32), k, filter, exclude_ids=pos + neg)[0]

    # -- maintenance ----------------------------------------------------------------------------------------------
    def info(self) -> dict[str, Any]:
        """Engine, URL (no secrets), name, physical collection, counts, dimension, index spec."""
        self._check_open()
        return {"store": self.engine, "url": self.url.redacted(), "name": self.name, "physical": self.physical,
                "documents": self._count(), "dimension": self.dimension, "spec": self.spec.as_dict(),
                "index": self._index_facts(), "metadata_fields": {k: sorted(v) for k, v in self._types.items()}}

    def rebuild(self, spec: Any = None) -> dict[str, Any]:
        """Not a remote operation: the engine indexes its data itself."""
        raise InputError(f"rebuild is a FAISS operation; {self.engine} maintains its own index", where=self._where,
                         hint="to change the index type, migrate into a new collection (embedops index migrate)")

    def flush(self) -> None:
        """Ask the engine to persist what it holds in memory."""
        self._check_open()
        self._flush()

    def close(self) -> None:
        """Release the connection (the data stays in the engine)."""
        if self._closed:
            return
        self._closed = True
        self._disconnect()

    def __enter__(self) -> RemoteStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- checks ----------------------------------------------------------------------------------------------------
    def _check_queries(self, queries: Any) -> np.ndarray:
        return check_queries(queries, self.dimension)

    @staticmethod
    def _check_k(k: Any) -> int:
        if not isinstance(k, int | np.integer) or isinstance(k, bool) or k < 1:
            raise InputError(f"k must be a positive integer, got {k!r}", where="search")
        return int(k)

    # -- engine primitives (subclasses) ----------------------------------------------------------------------------
    # Subclasses set `_engine` (resolve(name) -> physical collection or None, state(physical) -> dict) and `_pinned`
    # (a temporary collection being filled, addressed directly instead of through the name).
    _engine: Any
    _pinned: str | None

    def _load_state(self) -> dict[str, Any]:
        """{physical, dimension, spec, facts, types} of the collection the name points at now."""
        return self._engine.state(self._resolve_physical())

    def _resolve_physical(self) -> str:
        if self._pinned:
            return self._pinned
        physical = self._engine.resolve(self.name)
        if physical is None:
            raise InputError(f"collection {self.name!r} not found", where=self.url.redacted(),
                             hint="create or build it first (embedops index build --store ...)")
        return physical

    def _save_types(self, types: dict[str, list[str]]) -> None:
        raise NotImplementedError

    def _check_row_limits(self, ids: list[str]) -> None:
        """Refuse ids the engine cannot hold."""

    def _check_translatable(self, conditions: list[Condition]) -> None:
        """Refuse conditions the engine cannot express exactly."""

    def _write_rows(self, ids: list[str], vectors: np.ndarray, texts: list[str | None],
                    metas: list[dict[str, Any]]) -> None:
        raise NotImplementedError

    def _existing(self, ids: list[str]) -> set[str]:
        raise NotImplementedError

    def _remove(self, ids: list[str]) -> None:
        raise NotImplementedError

    def _fetch(self, ids: list[str], with_vectors: bool) -> dict[str, Record]:
        raise NotImplementedError

    def _count(self) -> int:
        raise NotImplementedError

    def _scan_ids(self) -> list[str]:
        raise NotImplementedError

    def _knn(self, q: np.ndarray, k: int, conditions: list[Condition], exclude: list[str]) -> list[list[Hit]]:
        raise NotImplementedError

    def _index_facts(self) -> dict[str, Any]:
        return {}

    def _flush(self) -> None:
        """Nothing to do unless the engine buffers."""

    def _disconnect(self) -> None:
        """Close the client."""


def state_facts(dimension: int, spec: IndexSpec, facts: dict[str, Any] | None) -> dict[str, Any]:
    """What a new physical collection records about itself (JSON-serialisable)."""
    return {"format": FORMAT_VERSION, "dimension": int(dimension), "spec": spec.as_dict(), "facts": dict(facts or {}),
            "types": {}}


def chunks(seq: Sequence[Any], size: int) -> list[Sequence[Any]]:
    """`seq` in pieces of at most `size`."""
    return [seq[i : i + size] for i in range(0, len(seq), size)]
