"""`MilvusStore`: a collection in Milvus (pymilvus, `pip install embedops[milvus]`) behind the `VectorStore` protocol.

Schema of a physical collection: `id` VARCHAR primary key, `vector` FLOAT_VECTOR (inner product, as the FAISS store
scores), `text` VARCHAR, `meta` JSON, `has_text` BOOL. Its properties hold `embedops.state` (format, dimension, index
spec and the facts the collection records, such as the encoder's spec) and `embedops.types` (the metadata types seen
per field).

Reads use consistency level Session by default: a search sees every write this store made (read-your-writes, as the
FAISS store gives: reads in the 2 s after a write go at Strong), and other processes' writes within about a time
tick (200 ms by default), without waiting for a tick when it has nothing of its own to wait for. With
`?consistency=strong` in the URL every read waits for all writes acknowledged anywhere before it (on SciFact that
made a search take 200-400 ms instead of about 5 ms: benchmarks/stores.py). The id look-ups of `delete` and the scans of
migrations always read at Strong.

Index: `flat` is Milvus FLAT (exact); `auto` and `hnsw` are HNSW with the spec's M, efConstruction and efSearch
(Milvus searches segments too small to index exactly either way). IVF-PQ and quantised codes are FAISS settings.
"""

from __future__ import annotations

import json
import re
import threading
import time
from typing import Any

import numpy as np

from embedops._optional import require
from embedops.config.store_url import StoreURL
from embedops.errors import InputError
from embedops.index.base import Hit, IndexSpec, Record
from embedops.index.filters import Condition
from embedops.index.remote import RemoteStore, StoreUnavailableError, chunks, state_facts
from embedops.index.remote_filters import check_milvus, milvus_expr, milvus_ids

MAX_K = 16_384  # Milvus's topK bound
ID_LIMIT = 65_535  # bytes of a VARCHAR primary key
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,199}$")
_STATE, _TYPES = "embedops.state", "embedops.types"
_BATCH = 1000
_REQUEST_BYTES = 16 << 20
_WRITE_WINDOW = 2.0  # seconds after a write during which this store reads at Strong (ten default time ticks)
_REQUEST_TIMEOUT = 120.0


def check_name(name: str) -> str:
    """A Milvus collection name: a letter or `_` first, then letters, digits and `_` (at most 200)."""
    if not isinstance(name, str) or not _NAME.match(name):
        raise InputError(f"invalid Milvus collection name {name!r}: use letters, digits and '_' (starting with a "
                         "letter or '_', at most 200)", where="collection name",
                         hint="the name is the collection path's last part (index.path or the CLI's PATH)")
    return name


class MilvusEngine:
    """One connection to a Milvus server, and the collection-level operations stores.py needs."""

    engine = "milvus"

    def __init__(self, url: StoreURL):
        require("pymilvus", "milvus")
        from pymilvus import MilvusClient
        from pymilvus.exceptions import MilvusException

        self.url = url
        self._error = MilvusException
        try:
            self.client = MilvusClient(uri=url.endpoint, user=url.user or "", password=url.password or "",
                                       token=url.options.get("token", ""), db_name=url.options.get("db", ""),
                                       timeout=url.timeout)
        except MilvusException as exc:
            raise StoreUnavailableError(f"cannot reach Milvus within {url.timeout:g} s: {_reason(exc)}",
                                        where=url.redacted(), hint="is the server running and the URL right? "
                                        "(index.store / --store; ?timeout=SECONDS waits longer)") from exc
        self._users = 1  # the creator's share; each store opened holds one more
        self._users_lock = threading.Lock()

    def call(self, what: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        """Run a client call; Milvus's own errors become StoreUnavailableError naming what was being done."""
        try:
            return fn(*args, **kwargs)
        except self._error as exc:
            raise StoreUnavailableError(f"Milvus failed to {what}: {_reason(exc)}", where=self.url.redacted()) \
                from exc

    def check_name(self, name: str) -> str:
        """Refuse a name Milvus cannot take."""
        return check_name(name)

    def resolve(self, name: str) -> str | None:
        """The physical collection `name` points at (an alias, or an embedops collection of that name); None."""
        check_name(name)
        for collection in self.call("list collections", self.client.list_collections):
            if collection == name:
                return name if _STATE in self._properties(name) else None
            if collection.startswith(f"{name}__eo"):
                aliases = self.call("list aliases", self.client.list_aliases, collection).get("aliases", [])
                if name in aliases:
                    return collection
        return None

    def _properties(self, physical: str) -> dict[str, Any]:
        return self.call("describe a collection", self.client.describe_collection, physical).get("properties") or {}

    def state(self, physical: str) -> dict[str, Any]:
        """The recorded state of a physical collection (see the module docstring)."""
        props = self._properties(physical)
        if _STATE not in props:
            raise InputError(f"Milvus collection {physical!r} was not made by embedops (no {_STATE} property)",
                             where=self.url.redacted())
        state = json.loads(props[_STATE])
        state["types"] = json.loads(props.get(_TYPES) or "{}")
        state["physical"] = physical
        return state

    def create_physical(self, physical: str, dimension: int, spec: IndexSpec, facts: dict[str, Any]) -> None:
        """Create, index and load an empty physical collection recording `facts`."""
        from pymilvus import DataType

        _check_spec(spec)
        c = self.client
        schema = c.create_schema(auto_id=False, enable_dynamic_field=False,
                                 description="an embedops collection (see its embedops.state property)")
        schema.add_field("id", DataType.VARCHAR, is_primary=True, max_length=ID_LIMIT)
        schema.add_field("vector", DataType.FLOAT_VECTOR, dim=int(dimension))
        schema.add_field("text", DataType.VARCHAR, max_length=65_535)
        schema.add_field("meta", DataType.JSON)
        schema.add_field("has_text", DataType.BOOL)  # a VARCHAR cannot be null: None and "" differ here
        index = c.prepare_index_params()
        if spec.kind == "flat":
            index.add_index(field_name="vector", index_type="FLAT", metric_type="IP")
        else:
            index.add_index(field_name="vector", index_type="HNSW", metric_type="IP",
                            params={"M": spec.hnsw_m, "efConstruction": spec.ef_construction})
        self.call("create a collection", c.create_collection, physical, schema=schema, index_params=index,
                  consistency_level="Strong")
        try:
            state = state_facts(dimension, spec, facts)
            state.pop("types")
            self.call("record the collection's facts", c.alter_collection_properties, physical,
                      properties={_STATE: json.dumps(state), _TYPES: "{}"})
        except BaseException:
            self.drop_physical(physical)
            raise

    def publish(self, physical: str, name: str, overwrite: bool) -> str | None:
        """Point `name` at `physical` in one step; returns the physical collection it pointed at before."""
        old = self.resolve(name)
        if old == name:
            raise InputError(f"a Milvus collection named {name!r} exists (not an alias embedops can move)",
                             where=self.url.redacted(), hint="drop it or choose another name")
        if old is None:
            if self.call("check the name", self.client.has_collection, name):
                raise InputError(f"a Milvus collection named {name!r} exists and was not made by embedops",
                                 where=self.url.redacted(), hint="choose another name")
            self.call("create an alias", self.client.create_alias, physical, name)
            return None
        if not overwrite:
            raise InputError(f"collection {name!r} exists", where=self.url.redacted(),
                             hint="choose another name or pass overwrite=True (--overwrite)")
        self.call("move the alias", self.client.alter_alias, physical, name)
        return old

    def drop_physical(self, physical: str) -> None:
        """Drop a physical collection (its aliases first)."""
        c = self.client
        if not self.call("check a collection", c.has_collection, physical):
            return
        for alias in self.call("list aliases", c.list_aliases, physical).get("aliases", []):
            self.call("drop an alias", c.drop_alias, alias)
        self.call("drop a collection", c.drop_collection, physical)

    def temporaries(self, name: str) -> list[str]:
        """Physical collections of `name` that no alias points at (left by a killed build or migration)."""
        out = []
        for collection in self.call("list collections", self.client.list_collections):
            if collection.startswith(f"{name}__eo") and not self.call(
                    "list aliases", self.client.list_aliases, collection).get("aliases"):
                out.append(collection)
        return out

    def open(self, name: str, physical: str | None = None) -> MilvusStore:
        """A store on `name` (or directly on a physical collection while it is being filled)."""
        with self._users_lock:
            self._users += 1
        try:
            return MilvusStore(self, name, physical=physical)
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        """Release this engine's share of the connection."""
        with self._users_lock:
            self._users -= 1
            last = self._users == 0
        if last:
            self.client.close()


class MilvusStore(RemoteStore):
    """A Milvus collection as a VectorStore (see the module docstring)."""

    engine = "milvus"
    max_k = MAX_K

    def __init__(self, engine: MilvusEngine, name: str, *, physical: str | None = None):
        self._engine = engine
        self._pinned = physical  # filling a temporary collection: address it, not the name
        self._target = physical or name
        self._consistency = engine.url.options.get("consistency", "session").capitalize()
        self._written_at = -float("inf")  # monotonic time of this store's last write
        super().__init__(engine.url, name)
        if self.dimension and not self._loaded():
            engine.call("load the collection", engine.client.load_collection, self._target)

    def _level(self) -> str:
        """The consistency of a read: Strong right after this store wrote (read-your-writes: pymilvus's Session
        timestamp is not set by every write, e.g. deletes by expression on Milvus 2.3), else the URL's level."""
        if time.monotonic() - self._written_at < _WRITE_WINDOW:
            return "Strong"
        return self._consistency

    def _wrote(self) -> None:
        self._written_at = time.monotonic()

    def _loaded(self) -> bool:
        state = self._engine.call("read the load state", self._engine.client.get_load_state, self._target)
        return "Loaded" in str(state.get("state"))

    def _call(self, what: str, method: str, *args: Any, **kwargs: Any) -> Any:
        kwargs.setdefault("timeout", _REQUEST_TIMEOUT)
        return self._engine.call(what, getattr(self._engine.client, method), *args, **kwargs)

    def _save_types(self, types: dict[str, list[str]]) -> None:
        self._call("record metadata types", "alter_collection_properties", self.physical,
                   properties={_TYPES: json.dumps(types)})

    def _check_row_limits(self, ids: list[str]) -> None:
        for i, doc_id in enumerate(ids):
            if len(doc_id.encode("utf-8", "surrogatepass")) > ID_LIMIT:
                raise InputError(f"id of {len(doc_id.encode())} bytes; Milvus takes at most {ID_LIMIT}",
                                 where=f"batch index {i}")

    def _check_translatable(self, conditions: list[Condition]) -> None:
        check_milvus(conditions)

    def _write_rows(self, ids: list[str], vectors: np.ndarray, texts: list[str | None],
                    metas: list[dict[str, Any]]) -> None:
        part: list[dict[str, Any]] = []
        size = 0
        for i, v, t, m in zip(ids, vectors.tolist(), texts, metas, strict=True):
            part.append({"id": i, "vector": v, "text": t or "", "meta": m, "has_text": t is not None})
            size += 4 * len(v) + len(i) + len(t or "") * 4 + 64  # a bound on the request's bytes
            if len(part) == _BATCH or size > _REQUEST_BYTES:  # gRPC refuses messages above 64 MB
                self._call("upsert", "upsert", self._target, part)
                self._wrote()
                part, size = [], 0
        if part:
            self._call("upsert", "upsert", self._target, part)
        self._wrote()

    def _existing(self, ids: list[str]) -> set[str]:
        found: set[str] = set()
        for part in chunks(ids, _BATCH):
            rows = self._call("look up ids", "query", self._target, filter=milvus_ids(list(part)),
                              output_fields=["id"], consistency_level="Strong")
            found.update(r["id"] for r in rows)
        return found

    def _remove(self, ids: list[str]) -> None:
        for part in chunks(ids, _BATCH):
            self._call("delete", "delete", self._target, filter=milvus_ids(list(part)))
        self._wrote()

    def _fetch(self, ids: list[str], with_vectors: bool) -> dict[str, Record]:
        fields = ["id", "text", "meta", "has_text"] + (["vector"] if with_vectors else [])
        out: dict[str, Record] = {}
        for part in chunks(ids, _BATCH):
            for r in self._call("read documents", "query", self._target, filter=milvus_ids(list(part)),
                                output_fields=fields, consistency_level=self._level()):
                out[r["id"]] = _record(r, with_vectors)
        return out

    def _count(self) -> int:
        rows = self._call("count", "query", self._target, filter="", output_fields=["count(*)"],
                          consistency_level=self._level())
        return int(rows[0]["count(*)"])

    def _scan_ids(self) -> list[str]:
        return [r.id for batch in self.scan(with_vectors=False) for r in batch]

    def scan(self, batch_size: int = _BATCH, *, with_vectors: bool = True):
        """Every document in batches of Records (the whole collection, for migrations and checksums)."""
        fields = ["id", "text", "meta", "has_text"] + (["vector"] if with_vectors else [])
        last: str | None = None
        while True:
            # Pages by primary key (query results come sorted by it); pymilvus's own iterator does the same but
            # does not escape the key it pages from, so an id with a quote or a newline would break it.
            expr = "" if last is None else f"id > {json.dumps(last, ensure_ascii=False)}"
            rows = self._call("scan the collection", "query", self._target, filter=expr, limit=batch_size,
                              output_fields=fields, consistency_level="Strong")
            if not rows:
                return
            last = max(str(r["id"]) for r in rows)
            yield [_record(r, with_vectors) for r in rows]
            if len(rows) < batch_size:
                return

    def _knn(self, q: np.ndarray, k: int, conditions: list[Condition], exclude: list[str]) -> list[list[Hit]]:
        expr = milvus_expr(conditions)
        if exclude:
            expr = f"({expr}) and not ({milvus_ids(exclude)})" if expr else f"not ({milvus_ids(exclude)})"
        params: dict[str, Any] = {"metric_type": "IP"}
        if self.spec.kind != "flat":
            params["params"] = {"ef": max(self.spec.ef_search, k)}
        result = self._call("search", "search", self._target, data=q.tolist(), limit=k, filter=expr,
                            output_fields=["id"], search_params=params, consistency_level=self._level())
        return [[Hit(str(h["id"]), float(h["distance"])) for h in row] for row in result]

    def _index_facts(self) -> dict[str, Any]:
        kind = "FLAT" if self.spec.kind == "flat" else "HNSW"
        return {"kind": kind, "metric": "IP", "consistency": self._consistency}

    def _flush(self) -> None:
        self._call("flush", "flush", self._target)

    def _disconnect(self) -> None:
        self._engine.close()


def _record(row: dict[str, Any], with_vectors: bool) -> Record:
    vector = np.asarray(row["vector"], dtype=np.float32) if with_vectors else None
    text = row.get("text") if row.get("has_text") else None
    return Record(str(row["id"]), text, dict(row.get("meta") or {}), vector)


def _check_spec(spec: IndexSpec) -> None:
    if spec.kind == "ivfpq":
        raise InputError("Milvus collections here use HNSW or FLAT; IVF-PQ is a FAISS setting", where="index.kind",
                         hint="use kind auto, hnsw or flat with Milvus")
    if spec.vectors != "float32":
        raise InputError(f"vectors={spec.vectors} is a FAISS setting; Milvus collections store float32",
                         where="index.vectors")


def _reason(exc: Exception) -> str:
    return str(getattr(exc, "message", None) or exc)
