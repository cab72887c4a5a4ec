"""`Collection`: a vector store paired with the encoder that fills it, searched by text.

    from embedops.index import Collection
    col = Collection.create("my-index", encoder)          # or Collection.open("my-index")
    col.add(documents)                                    # Documents, dicts or strings
    col.search("what causes X?", k=10, filter={"year": {"gte": 2020}}, mode="hybrid")
    col.recommend(["doc-1", "doc-7"], negative_ids=["doc-3"], k=5)

The collection records the model's name, dimension and fingerprint; opening it with another model is refused,
because its vectors would live in a different space.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np

from embedops._progress import start_progress
from embedops.data.records import Document
from embedops.errors import InputError, ModelError
from embedops.index.base import Filter, Hit, IndexSpec, Record
from embedops.index.bm25 import KeywordIndex
from embedops.index.faiss_store import FaissStore
from embedops.index.hybrid import CANDIDATES, DEFAULT_FUSION, Fusion, fuse

SearchMode = Literal["dense", "keyword", "hybrid"]
MODES = ("dense", "keyword", "hybrid")
_CHUNK = 512


def encoder_facts(encoder) -> dict[str, Any]:
    """What identifies an encoder's vector space: name, dimension, fingerprint, backend, location."""
    from embedops.eval.cache import model_fingerprint
    from embedops.models.loading import DEFAULT_MODEL

    source = getattr(encoder, "source", None)
    # Reload by name where the name resolves (the bundled default, hub ids), by folder otherwise.
    local = source is not None and getattr(source, "path", None) is not None and source.name != DEFAULT_MODEL
    location = str(source.path) if local else encoder.name
    backend = {"TorchEncoder": "torch", "OnnxEncoder": "onnx"}.get(type(encoder).__name__, type(encoder).__name__)
    dim = int(getattr(encoder, "output_dimension", encoder.dimension))
    return {"name": encoder.name, "dimension": dim, "fingerprint": model_fingerprint(encoder),
            "backend": backend, "location": location}


def as_documents(items: Iterable[Document | dict[str, Any] | str]) -> list[Document]:
    """Accept Documents, dicts with id/text/title/metadata, or plain strings (ids are their positions)."""
    docs: list[Document] = []
    for i, item in enumerate(items):
        if isinstance(item, Document):
            docs.append(item)
        elif isinstance(item, str):
            docs.append(Document(id=str(i), text=item, source=f"document {i}"))
        elif isinstance(item, dict):
            if "text" not in item:
                raise InputError("document has no 'text'", where=f"document {i}")
            doc_id = item.get("id", item.get("_id", i))
            docs.append(Document(id=str(doc_id), text=item["text"], title=item.get("title", "") or "",
                                 metadata=dict(item.get("metadata") or {}), source=f"document {i}"))
        else:
            raise InputError(f"a document must be a Document, dict or str, got {type(item).__name__}",
                             where=f"document {i}")
    return docs


class Collection:
    """Documents, their vectors and a keyword index in one directory; search by text, filter, recommend."""

    def __init__(self, store: FaissStore, encoder=None):
        self.store = store
        self._encoder = encoder
        self._keyword: KeywordIndex | None = None
        self._keyword_saved = True

    # -- lifecycle --------------------------------------------------------------------------
    @classmethod
    def create(cls, path: str | Path, encoder=None, *, spec: IndexSpec | None = None,
               overwrite: bool = False) -> Collection:
        """A new empty collection for `encoder` (the default model when None)."""
        if encoder is None:
            from embedops.models import load_encoder

            encoder = load_encoder(None)
        facts = encoder_facts(encoder)
        store = FaissStore.create(path, facts["dimension"], spec, facts={"model": facts}, overwrite=overwrite)
        return cls(store, encoder)

    @classmethod
    def open(cls, path: str | Path, encoder=None, *, repair: bool = False) -> Collection:
        """Open an existing collection; with no encoder, the recorded model is loaded (when needed)."""
        store = FaissStore(path, repair=repair)
        col = cls(store, None)
        if encoder is not None:
            col.check_encoder(encoder)
            col._encoder = encoder
        return col

    @property
    def model(self) -> dict[str, Any]:
        """The recorded model facts (empty for a store created without an encoder)."""
        return dict(self.store.facts().get("model") or {})

    def check_encoder(self, encoder) -> None:
        """Refuse an encoder whose vector space differs from the one the collection was built with."""
        built = self.model
        if not built:
            return
        given = encoder_facts(encoder)
        if (given["name"], given["dimension"], given["fingerprint"]) != (
                built["name"], built["dimension"], built["fingerprint"]):
            raise ModelError(
                f"the collection was built with model {built['name']!r} (dimension {built['dimension']}, "
                f"fingerprint {built['fingerprint']}); the encoder given is {given['name']!r} (dimension "
                f"{given['dimension']}, fingerprint {given['fingerprint']})", where=str(self.store.folder),
                hint="open it with the model it was built with, or rebuild the collection with the new model")

    @property
    def encoder(self):
        """The encoder (loaded on first use from the recorded model)."""
        if self._encoder is None:
            built = self.model
            if not built:
                raise ModelError("this collection records no model; pass an encoder")
            from embedops.models import load_encoder

            encoder = load_encoder(built["location"], backend=built.get("backend", "torch"))
            self.check_encoder(encoder)
            self._encoder = encoder
        return self._encoder

    def __len__(self) -> int:
        return len(self.store)

    def flush(self) -> None:
        """Write the FAISS checkpoint and the keyword index."""
        self.store.flush()
        if self._keyword is not None and not self._keyword_saved:
            self._keyword.save(self.store.folder)
            self._keyword_saved = True

    def close(self) -> None:
        """Flush and close files."""
        self.flush()
        self.store.close()

    def __enter__(self) -> Collection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- writes -----------------------------------------------------------------------------
    def add(self, documents: Iterable[Document | dict[str, Any] | str], *, vectors: np.ndarray | None = None,
            batch_size: int = 32, show_progress: bool = False, cache: bool = False) -> int:
        """Embed and upsert documents (same id replaces); `vectors` skips encoding; `cache` reuses
        embeddings cached by embedops.eval (the whole list is then encoded in one call)."""
        docs = as_documents(documents)
        seen: dict[str, str] = {}
        for d in docs:
            if not d.full_text.strip():
                raise InputError(f"document {d.id!r} has empty text", where=d.source or None)
            if d.id in seen:
                raise InputError(f"duplicate id {d.id!r} (also at {seen[d.id] or 'an earlier document'})",
                                 where=d.source or None)
            seen[d.id] = d.source
        if not docs:
            return 0
        texts = [d.full_text for d in docs]
        if vectors is not None and len(vectors) != len(docs):
            raise InputError(f"{len(vectors)} vectors for {len(docs)} documents", where="add")
        if vectors is None and cache:
            from embedops.eval.cache import encode_cached

            vectors = encode_cached(self.encoder, texts, kind="document", batch_size=batch_size,
                                    show_progress=show_progress)
        progress = start_progress(show_progress and vectors is None, len(docs), "embedding and indexing")
        try:
            for start in range(0, len(docs), _CHUNK):
                part = docs[start : start + _CHUNK]
                if vectors is None:
                    vecs = self.encoder.encode(texts[start : start + _CHUNK], batch_size=batch_size,
                                               kind="document")
                else:
                    vecs = vectors[start : start + _CHUNK]
                self.store.upsert([d.id for d in part], vecs, [d.metadata for d in part],
                                  texts[start : start + _CHUNK])
                if progress is not None:
                    progress[0].advance(progress[1], len(part))
        finally:
            if progress is not None:
                progress[0].stop()
        return len(docs)

    def delete(self, ids: Sequence[str]) -> int:
        """Delete by id; returns how many existed."""
        return self.store.delete(ids)

    def rebuild(self, spec: IndexSpec | None = None) -> dict[str, Any]:
        """Compact deletions and rebuild the index (optionally with another spec)."""
        self.store.rebuild(spec)
        self._keyword = None
        return self.info()

    # -- reads ------------------------------------------------------------------------------
    def get(self, ids: Sequence[str], *, with_vectors: bool = False) -> list[Record | None]:
        """Stored records by id (None for unknown ids)."""
        return self.store.get(ids, with_vectors=with_vectors)

    def search(self, query: str, k: int = 10, filter: Filter | None = None, *, mode: SearchMode = "dense",
               fusion: Fusion = DEFAULT_FUSION, candidates: int = CANDIDATES) -> list[Hit]:
        """Search by text: dense (vectors), keyword (BM25) or hybrid (both, fused); hits carry text and metadata."""
        if not isinstance(query, str) or not query.strip():
            raise InputError("the query must be a non-empty string", where="search")
        return self.search_batch([query], k, filter, mode=mode, fusion=fusion, candidates=candidates)[0]

    def search_batch(self, queries: Sequence[str], k: int = 10, filter: Filter | None = None, *,
                     mode: SearchMode = "dense", fusion: Fusion = DEFAULT_FUSION,
                     candidates: int = CANDIDATES, with_content: bool = True) -> list[list[Hit]]:
        """`search` for many queries at once (queries are embedded in one batch)."""
        if mode not in MODES:
            raise InputError(f"unknown search mode {mode!r}; use one of {', '.join(MODES)}", where="search")
        if isinstance(queries, str):
            raise InputError("search_batch takes a list of queries", hint="use search() for one query")
        queries = list(queries)
        if mode == "dense":
            qv = self.encoder.encode(queries, kind="query")
            hits = self.store.search(qv, k, filter)
        elif mode == "keyword":
            hits = self._keyword_hits(queries, k, filter)
        else:
            depth = max(candidates, k)
            qv = self.encoder.encode(queries, kind="query")
            dense = self.store.search(qv, depth, filter)
            keyword = self._keyword_hits(queries, depth, filter)
            hits = []
            for d_row, k_row in zip(dense, keyword, strict=True):
                fused = fuse([[(h.id, h.score) for h in d_row], [(h.id, h.score) for h in k_row]], fusion)
                hits.append([Hit(str(doc_id), float(score)) for doc_id, score in fused[:k]])
        if with_content:
            self.store.attach_content([h for row in hits for h in row])
        return hits

    def _keyword_hits(self, queries: list[str], k: int, filter: Filter | None) -> list[list[Hit]]:
        index = self.keyword_index()
        mask = self.store._mask(filter, None)
        if mask is None:
            mask = None if self.store._all_live else self.store._live
        ids = self.store._ids
        return [[Hit(ids[slot], score) for slot, score in row] for row in index.search(queries, k, mask)]

    def keyword_index(self) -> KeywordIndex:
        """The BM25 index for the current state (loaded, or rebuilt from the stored texts when stale)."""
        epoch, count = self.store.epoch, len(self.store._ids)
        if self._keyword is None or not self._keyword.matches(epoch, count):
            loaded = KeywordIndex.load(self.store.folder)
            if loaded is not None and loaded.matches(epoch, count):
                self._keyword, self._keyword_saved = loaded, True
            else:
                slots, texts = self.store.content.live_texts()
                self._keyword = KeywordIndex.build(slots, texts, epoch, count)
                self._keyword_saved = False
        return self._keyword

    def recommend(self, positive_ids: Sequence[str], negative_ids: Sequence[str] = (), k: int = 10,
                  filter: Filter | None = None) -> list[Hit]:
        """More like `positive_ids`, less like `negative_ids`; item-to-item with one id, a user profile with
        the items a user interacted with. The examples themselves are never returned."""
        hits = self.store.recommend(positive_ids, negative_ids, k, filter)
        self.store.attach_content(hits)
        return hits

    def info(self) -> dict[str, Any]:
        """Store facts plus the model and keyword index state."""
        info = self.store.info()
        info["model"] = self.model
        kw = self._keyword or KeywordIndex.load(self.store.folder)
        info["keyword_index"] = ("current" if kw is not None and kw.matches(self.store.epoch, len(self.store._ids))
                                 else "stale or absent (rebuilt on the next keyword/hybrid query)")
        return info
