"""`Collection`: a vector store paired with the encoder that fills it, searched by text.

    from embedops.index import Collection
    col = Collection.build("my-index", encoder, documents)        # built beside, swapped in whole
    col = Collection.create("my-index", encoder)                  # empty; records encoder.spec()
    col = Collection.open("my-index", loader=encoder_from_spec)   # or Collection.open("my-index", encoder)
    col.add(documents)                                            # Documents, dicts or strings
    col.search("what causes X?", k=10, filter={"year": {"gte": 2020}}, mode="hybrid")
    col.recommend(["doc-1", "doc-7"], negative_ids=["doc-3"], k=5)

The collection records the encoder's spec and fingerprint; opening it with another encoder is refused, because its
vectors would live in a different space. The index package never loads a model: it is given an encoder, or a loader
for the recorded spec (called once, when encoding is first needed).

Threads: any number of threads may search while one writes (see faiss_store.py); the keyword index follows writes
near-real-time: `add(..., refresh=True)` makes new documents keyword-searchable before it returns, `refresh=False`
leaves that to the background thread (`wait()` blocks until it is done).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np

from embedops._progress import start_progress
from embedops.data.documents import as_documents, duplicate_message
from embedops.data.records import Document
from embedops.errors import InputError
from embedops.index.ann import plan_index
from embedops.index.base import Filter, Hit, IndexSpec, Record, VectorStore
from embedops.index.faiss_store import FaissStore
from embedops.index.hybrid import CANDIDATES, DEFAULT_FUSION, Fusion, fuse
from embedops.index.identity import ENCODER_KEY, check_encoder, load_recorded, record_encoder, recorded_encoder
from embedops.index.identity import summary as encoder_summary
from embedops.index.lifecycle import build_beside
from embedops.index.repair import repair_collection
from embedops.protocols import Encoder, EncoderLoader

SearchMode = Literal["dense", "keyword", "hybrid"]
MODES = ("dense", "keyword", "hybrid")
_CHUNK = 512


class Collection:
    """Documents, their vectors and a keyword index in one store; search by text, filter, recommend."""

    def __init__(self, store: VectorStore, encoder: Encoder | None = None, *, loader: EncoderLoader | None = None):
        self.store = store
        self._recorded = recorded_encoder(store.facts())
        self._loader = loader
        self._encoder_lock = threading.Lock()
        if encoder is not None:
            check_encoder(self._recorded, encoder, self._where)
        self._encoder = encoder

    # -- lifecycle --------------------------------------------------------------------------
    @classmethod
    def create(cls, path: str | Path, encoder: Encoder, *, spec: IndexSpec | None = None,
               overwrite: bool = False) -> Collection:
        """A new empty collection (FAISS + SQLite folder) for `encoder`, recording its full spec."""
        recorded = record_encoder(encoder)
        store = FaissStore.create(path, recorded["dimension"], spec, facts={ENCODER_KEY: recorded},
                                  overwrite=overwrite)
        return cls(store, encoder)

    @classmethod
    def build(cls, path: str | Path, encoder: Encoder, documents: Iterable[Document | dict[str, Any] | str], *,
              vectors: np.ndarray | None = None, spec: IndexSpec | None = None, overwrite: bool = False,
              batch_size: int = 32, show_progress: bool = False) -> Collection:
        """Create and fill a collection in a temporary sibling folder, then swap it in whole; returns it opened.

        Until the swap the previous collection at `path` stays as it was, and an error, Ctrl-C or kill leaves it
        (or nothing, when there was none) behind: never an empty or half-filled folder. See lifecycle.py.
        """
        recorded = record_encoder(encoder)
        docs = as_documents(documents)
        if not docs:
            raise InputError("no documents to build a collection from", where=str(path))
        spec = spec or IndexSpec()
        plan_index(spec, recorded["dimension"], 0)  # refuse an impossible spec before any work
        with build_beside(path, overwrite=overwrite) as tmp:
            FaissStore.init_folder(tmp, recorded["dimension"], spec, facts={ENCODER_KEY: recorded})
            col = cls(FaissStore(tmp), encoder)
            try:
                col.add(docs, vectors=vectors, batch_size=batch_size, show_progress=show_progress)
            finally:
                col.close()  # writes the checkpoint and keyword index (an interrupted build is deleted anyway)
        return cls.open(path, encoder)

    @classmethod
    def open(cls, path: str | Path, encoder: Encoder | None = None, *, loader: EncoderLoader | None = None,
             repair: bool = False, read_only: bool = False) -> Collection:
        """Open an existing collection. A given encoder is checked against the recorded fingerprint and dimension;
        without one, `loader(recorded spec)` loads it when encoding is first needed. `read_only=True` opens a
        folder without write access (a read-only mount, a shared artefact): nothing is written, writes are refused.
        """
        store = FaissStore(path, repair=repair, read_only=read_only)
        try:
            return cls(store, encoder, loader=loader)
        except BaseException:
            store.close()
            raise

    @staticmethod
    def repair(path: str | Path, *, drop_lost: bool = False) -> dict[str, Any]:
        """Bring a collection back to its last committed state (rebuild its index files); a report of what was
        done. What cannot be recovered is an error saying exactly what; vectors lost from the vectors file are
        deleted with their documents only when `drop_lost=True`. See repair.py."""
        return repair_collection(path, drop_lost=drop_lost)

    @property
    def read_only(self) -> bool:
        """Whether the collection was opened read-only."""
        return bool(getattr(self.store, "read_only", False))

    def _check_writable(self) -> None:
        if self.read_only:
            raise InputError("the collection was opened read-only: it cannot be written", where=self._where,
                             hint="open it without read_only=True (with write access to the folder) to change it")

    @property
    def _where(self) -> str:
        return str(getattr(self.store, "folder", type(self.store).__name__))

    @property
    def model(self) -> dict[str, Any]:
        """The recorded encoder in brief: name, dimension, fingerprint, backend, quantisation, truncate_dim."""
        return encoder_summary(self._recorded)

    @property
    def encoder_spec(self) -> dict[str, Any]:
        """The full recorded `Encoder.spec()` (what a loader receives); {} when none was recorded."""
        return dict(self._recorded.get("spec") or {})

    def check_encoder(self, encoder: Encoder) -> None:
        """Refuse an encoder whose vector space differs from the one the collection was built with."""
        check_encoder(self._recorded, encoder, self._where)

    @property
    def encoder(self) -> Encoder:
        """The encoder (loaded once, on first use, from the recorded spec with the loader)."""
        encoder = self._encoder
        if encoder is None:
            with self._encoder_lock:
                if self._encoder is None:
                    self._encoder = load_recorded(self._recorded, self._loader, self._where)
                encoder = self._encoder
        return encoder

    def __len__(self) -> int:
        return self.store.count()

    @property
    def generation(self) -> int:
        """Committed writes in the state searches currently see."""
        return int(getattr(self.store, "generation", 0))

    @property
    def version(self) -> Any:
        """The state searches read now (epoch, generation, keyword index coverage): equal versions, equal answers."""
        return getattr(self.store, "version", None)

    @property
    def last_write_generation(self) -> int | None:
        """Generation committed by the calling thread's latest write (a read-your-writes token)."""
        return getattr(self.store, "last_write_generation", None)

    def wait(self, timeout: float | None = None) -> bool:
        """Block until background work (keyword refresh, rebuild, checkpoint) is done; False on timeout."""
        wait = getattr(self.store, "wait", None)
        return True if wait is None else bool(wait(timeout))

    def refresh(self) -> None:
        """Make every committed document keyword-searchable now (rebuilds the keyword index in this thread)."""
        refresh = getattr(self.store, "refresh", None)
        if refresh is not None:
            refresh()

    def integrity_check(self) -> list[str]:
        """Problems found in the store's files and state (empty when sound)."""
        check = getattr(self.store, "integrity_check", None)
        if check is None:
            raise InputError(f"{type(self.store).__name__} has no integrity check", where=self._where)
        return list(check())

    def flush(self) -> None:
        """Persist the index checkpoint and the keyword index."""
        self.store.flush()

    def close(self) -> None:
        """Wait for background work, save and close files."""
        self.store.close()

    def __enter__(self) -> Collection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- writes -----------------------------------------------------------------------------
    def add(self, documents: Iterable[Document | dict[str, Any] | str], *, vectors: np.ndarray | None = None,
            batch_size: int = 32, show_progress: bool = False, refresh: bool = True) -> int:
        """Embed and upsert documents (same id replaces); `vectors` (precomputed, one row per document) skips
        encoding. `refresh=True` makes them keyword-searchable before returning; `refresh=False` (servers,
        bulk loads) refreshes the keyword index in the background instead.

        Dicts are read like a data file's rows (`embedops.data.documents`): id, text and title fields, every other
        key kept as metadata; a dict or string without an id gets a content id (the same text, the same id)."""
        self._check_writable()  # before any encoding
        docs = as_documents(documents)
        seen: dict[str, str] = {}
        for d in docs:
            if not d.full_text.strip():
                raise InputError(f"document {d.id!r} has empty text", where=d.source or None)
            if d.id in seen:
                raise InputError(duplicate_message(d, seen[d.id] or "an earlier document"), where=d.source or None,
                                 hint="give each document its own id")
            seen[d.id] = d.source
        if not docs:
            return 0
        texts = [d.full_text for d in docs]
        if vectors is not None and len(vectors) != len(docs):
            raise InputError(f"{len(vectors)} vectors for {len(docs)} documents", where="add")
        keywords = hasattr(self.store, "keyword_search")
        # One keyword refresh for the whole call, not one per chunk.
        options = {"refresh": "none"} if keywords else {}
        progress = start_progress(show_progress and vectors is None, len(docs), "embedding and indexing")
        done = False
        try:
            for start in range(0, len(docs), _CHUNK):
                part = docs[start : start + _CHUNK]
                if vectors is None:
                    vecs = self.encoder.encode(texts[start : start + _CHUNK], batch_size=batch_size,
                                               kind="document")
                else:
                    vecs = vectors[start : start + _CHUNK]
                self.store.upsert([d.id for d in part], vecs, [d.metadata for d in part],
                                  texts[start : start + _CHUNK], **options)
                if progress is not None:
                    progress[0].advance(progress[1], len(part))
            done = True
        finally:
            if progress is not None:
                progress[0].stop()
            if keywords and not (done and refresh):
                self.store.schedule_refresh()
        if keywords and refresh:
            self.store.refresh()
        return len(docs)

    def delete(self, ids: Sequence[str]) -> int:
        """Delete by id; returns how many existed."""
        self._check_writable()
        return self.store.delete(ids)

    def rebuild(self, spec: IndexSpec | None = None) -> dict[str, Any]:
        """Compact deletions and rebuild the index (optionally with another spec); searches go on meanwhile."""
        self.store.rebuild(spec)
        return self.info()

    # -- reads ------------------------------------------------------------------------------
    def get(self, ids: Sequence[str], *, with_vectors: bool = False) -> list[Record | None]:
        """Stored records by id (None for unknown ids)."""
        return self.store.get(ids, with_vectors=with_vectors)

    def search(self, query: str, k: int = 10, filter: Filter | None = None, *, mode: SearchMode = "dense",
               fusion: Fusion = DEFAULT_FUSION, candidates: int = CANDIDATES,
               query_vector: np.ndarray | None = None) -> list[Hit]:
        """Search by text: dense (vectors), keyword (BM25) or hybrid (both, fused); hits carry text and metadata.

        `query_vector`: the query already embedded by this collection's model (the server embeds it once, to log it
        for drift monitoring), used instead of encoding the text again.
        """
        if not isinstance(query, str) or not query.strip():
            raise InputError("the query must be a non-empty string", where="search")
        qv = None if query_vector is None else np.asarray(query_vector, dtype=np.float32).reshape(1, -1)
        return self.search_batch([query], k, filter, mode=mode, fusion=fusion, candidates=candidates,
                                 query_vectors=qv)[0]

    def search_batch(self, queries: Sequence[str], k: int = 10, filter: Filter | None = None, *,
                     mode: SearchMode = "dense", fusion: Fusion = DEFAULT_FUSION,
                     candidates: int = CANDIDATES, with_content: bool = True,
                     query_vectors: np.ndarray | None = None) -> list[list[Hit]]:
        """`search` for many queries at once (queries are embedded in one batch, unless `query_vectors` are given)."""
        if mode not in MODES:
            raise InputError(f"unknown search mode {mode!r}; use one of {', '.join(MODES)}", where="search")
        if isinstance(queries, str):
            raise InputError("search_batch takes a list of queries", hint="use search() for one query")
        queries = list(queries)
        store = self.store
        if query_vectors is not None and len(query_vectors) != len(queries):
            raise InputError(f"{len(query_vectors)} query vectors for {len(queries)} queries", where="search")

        def embed() -> np.ndarray:
            return self.encoder.encode(queries, kind="query") if query_vectors is None else query_vectors

        if mode == "dense":
            hits = store.search(embed(), k, filter)
        elif mode == "keyword":
            hits = self._keyword_store(mode).keyword_search(queries, k, filter)
        else:
            keyword_store = self._keyword_store(mode)
            fuse([], fusion)  # refuse an unknown rule before encoding
            qv = embed()
            hybrid = getattr(keyword_store, "hybrid_search", None)
            if hybrid is not None:  # both rankings from one snapshot
                hits = hybrid(qv, queries, k, filter, fusion=fusion, candidates=candidates)
            else:
                depth = max(candidates, k)
                dense = store.search(qv, depth, filter)
                keyword = keyword_store.keyword_search(queries, depth, filter)
                hits = [[Hit(str(i), float(s)) for i, s in fuse([[(h.id, h.score) for h in d],
                                                                 [(h.id, h.score) for h in kw]], fusion)[:k]]
                        for d, kw in zip(dense, keyword, strict=True)]
        if with_content:
            store.attach_content([h for row in hits for h in row])
        return hits

    def _keyword_store(self, mode: str) -> Any:
        if not hasattr(self.store, "keyword_search"):
            raise InputError(f"{mode} search needs a keyword index, which {type(self.store).__name__} does not have",
                             where="search", hint="use mode='dense'")
        return self.store

    def recommend(self, positive_ids: Sequence[str], negative_ids: Sequence[str] = (), k: int = 10,
                  filter: Filter | None = None) -> list[Hit]:
        """More like `positive_ids`, less like `negative_ids`; item-to-item with one id, a user profile with
        the items a user interacted with. The examples themselves are never returned."""
        recommend = getattr(self.store, "recommend", None)
        if recommend is None:
            raise InputError(f"{type(self.store).__name__} cannot recommend", where="recommend")
        hits = recommend(positive_ids, negative_ids, k, filter)
        self.store.attach_content(hits)
        return hits

    def info(self) -> dict[str, Any]:
        """Store facts (cheap) plus the recorded encoder."""
        info = self.store.info()
        info["model"] = self.model
        info["encoder"] = self.encoder_spec
        return info
