"""Search for `FaissStore`: the raw FAISS call on the hot path, filters that never return short lists, rescoring.

Every read runs on one `Snapshot` while holding the shared side of the store's readers-writer lock, so the FAISS
index holds exactly the snapshot's slots and SQLite's committed rows equal the snapshot's (the writer commits and
swaps under the exclusive side). Filters and deletion markers become a FAISS `IDSelectorBitmap` over slots, so HNSW
and IVF skip non-matching vectors during the search itself. Two guards keep the answer complete: a filter matching
few documents (<= EXACT_LIMIT) is answered by exact search over exactly those vectors, and an approximate search
that still returns fewer than min(k, matching) hits is redone exactly. Quantised codes (int8, binary) and IVF-PQ
fetch `k * oversample` candidates and rescore them with the float vectors from the vectors file.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from embedops.errors import InputError
from embedops.index.base import Filter, Hit, Record
from embedops.index.filters import check_types, parse_filter
from embedops.index.hybrid import CANDIDATES, DEFAULT_FUSION, Fusion, fuse
from embedops.index.snapshot import Snapshot
from embedops.index.validation import check_queries

EXACT_LIMIT = 4096


class SearchMixin:
    """Read methods; the host class provides _rw, _snap, content, dimension, folder and _check_ids()."""

    def search(self, queries: Any, k: int = 10, filter: Filter | None = None, *,
               exclude_ids: Sequence[str] | None = None, ef_search: int | None = None, nprobe: int | None = None,
               with_content: bool = False) -> list[list[Hit]]:
        """Top-k per query row (a 1-D vector is one query), best first; filtered, never short."""
        q = self._check_queries(queries)
        k = _check_k(k)
        rw = self._rw
        rw.acquire_read()
        try:
            snap = self._snap
            if filter or exclude_ids or not snap.all_live:
                exclude = None
                if exclude_ids:
                    exclude = np.fromiter(self.content.live_slots(list(exclude_ids)).values(), dtype=np.int64)
                mask = self._mask(snap, filter, exclude)
            else:
                mask = None  # hot path: no mask, no SQLite
            hits = self._search(snap, q, k, mask, ef=ef_search, nprobe=nprobe)
            if with_content:
                self._attach(snap, [h for row in hits for h in row])
        finally:
            rw.release_read()
        return hits

    def keyword_search(self, queries: Sequence[str], k: int = 10, filter: Filter | None = None, *,
                       with_content: bool = False) -> list[list[Hit]]:
        """BM25 top-k per query text, on the keyword index of the current snapshot (never built here)."""
        queries = _check_texts(queries)
        k = _check_k(k)
        self._rw.acquire_read()
        try:
            snap = self._snap
            hits = self._keyword(snap, queries, k, self._mask(snap, filter, None))
            if with_content:
                self._attach(snap, [h for row in hits for h in row])
        finally:
            self._rw.release_read()
        return hits

    def hybrid_search(self, vectors: Any, queries: Sequence[str], k: int = 10, filter: Filter | None = None, *,
                      fusion: Fusion = DEFAULT_FUSION, candidates: int = CANDIDATES,
                      with_content: bool = False) -> list[list[Hit]]:
        """Dense and BM25 rankings of the same snapshot, fused; `vectors` are the embedded `queries`."""
        q = self._check_queries(vectors)
        queries = _check_texts(queries)
        if len(queries) != len(q):
            raise InputError(f"{len(q)} query vectors for {len(queries)} query texts", where="search")
        k = _check_k(k)
        fuse([], fusion)  # refuse an unknown rule before any work
        depth = max(int(candidates), k)
        self._rw.acquire_read()
        try:
            snap = self._snap
            mask = self._mask(snap, filter, None)
            dense = self._search(snap, q, depth, mask)
            keyword = self._keyword(snap, queries, depth, mask)
            hits = []
            for d_row, k_row in zip(dense, keyword, strict=True):
                fused = fuse([[(h.id, h.score) for h in d_row], [(h.id, h.score) for h in k_row]], fusion)
                hits.append([Hit(str(doc_id), float(score)) for doc_id, score in fused[:k]])
            if with_content:
                self._attach(snap, [h for row in hits for h in row])
        finally:
            self._rw.release_read()
        return hits

    def attach_content(self, hits: list[Hit]) -> None:
        """Fill text and metadata of hits from SQLite (one query for all of them)."""
        if not hits:
            return
        self._rw.acquire_read()
        try:
            self._attach(self._snap, hits)
        finally:
            self._rw.release_read()

    # -- records and recommendations ----------------------------------------------------------
    def get(self, ids: Sequence[str], *, with_vectors: bool = False) -> list[Record | None]:
        """Stored records in the order asked; None for ids that do not exist."""
        ids = self._check_ids(ids, allow_duplicates=True)
        self._rw.acquire_read()
        try:
            snap = self._snap
            slots = self.content.live_slots(ids)
            rows = self.content.rows(list(slots.values()))
            out: list[Record | None] = []
            for doc_id in ids:
                slot = slots.get(doc_id)
                if slot is None:
                    out.append(None)
                    continue
                _, text, meta = rows[slot]
                vec = np.array(snap.vectors[slot]) if with_vectors else None
                out.append(Record(doc_id, text, meta, vec))
        finally:
            self._rw.release_read()
        return out

    def vectors(self, ids: Sequence[str]) -> np.ndarray:
        """Stored float vectors of `ids`, in order (unknown ids are an error naming them)."""
        ids = self._check_ids(ids, allow_duplicates=True)
        self._rw.acquire_read()
        try:
            snap = self._snap
            slots = self.content.live_slots(ids)
            unknown = [i for i in ids if i not in slots]
            if unknown:
                raise InputError(f"unknown id(s) {unknown[:5]}", where="vectors")
            return np.asarray(snap.vectors[np.array([slots[i] for i in ids], dtype=np.int64)])
        finally:
            self._rw.release_read()

    def recommend(self, positive_ids: Sequence[str], negative_ids: Sequence[str] = (), k: int = 10,
                  filter: Filter | None = None, *, with_content: bool = False) -> list[Hit]:
        """More like `positive_ids`, less like `negative_ids` (Qdrant's average-vector rule); examples excluded.

        query = mean(positive) + (mean(positive) - mean(negative)), or mean(positive) without negatives.
        """
        pos = self._check_ids(positive_ids, allow_duplicates=True)
        neg = self._check_ids(negative_ids, allow_duplicates=True) if negative_ids else []
        if not pos:
            raise InputError("recommend needs at least one positive id", where="positive_ids")
        self._rw.acquire_read()
        try:
            snap = self._snap
            slots = self.content.live_slots(pos + neg)
            unknown = [i for i in pos + neg if i not in slots]
            if unknown:
                raise InputError(f"unknown id(s) {unknown[:5]}", where="positive_ids" if unknown[0] in pos
                                 else "negative_ids")
            query = np.asarray(snap.vectors[np.array([slots[i] for i in pos])]).mean(axis=0)
            if neg:
                query = 2 * query - np.asarray(snap.vectors[np.array([slots[i] for i in neg])]).mean(axis=0)
            norm = float(np.linalg.norm(query))
            if norm > 0:
                query = query / norm
            exclude = np.array(sorted(set(slots.values())), dtype=np.int64)
            mask = self._mask(snap, filter, exclude)
            hits = self._search(snap, query[None, :].astype(np.float32), int(k), mask)[0]
            if with_content:
                self._attach(snap, hits)
        finally:
            self._rw.release_read()
        return hits

    # -- internals (the caller holds the read side) -------------------------------------------
    def _attach(self, snap: Snapshot, hits: list[Hit]) -> None:
        if not hits:
            return
        slots = self.content.live_slots([h.id for h in hits])
        rows = self.content.rows(list(slots.values()))
        for h in hits:
            slot = slots.get(h.id)
            if slot is not None:
                _, h.text, h.metadata = rows[slot]

    def _check_queries(self, queries: Any) -> np.ndarray:
        return check_queries(queries, self.dimension)

    def _field_types(self, snap: Snapshot, fields: list[str]) -> dict[str, set[str]]:
        # Memoised per snapshot: SQLite holds exactly this state while the read side is held.
        out = {}
        for f in fields:
            key = "types:" + f
            types = snap.cache.get(key)
            if types is None:
                types = snap.cache[key] = self.content.field_types(f)
            out[f] = types
        return out

    def _mask(self, snap: Snapshot, filter: Filter | None, exclude: np.ndarray | None) -> np.ndarray | None:
        """Boolean mask over the snapshot's slots, or None when every slot is searchable (the fast path)."""
        mask = None
        if filter:
            conds = parse_filter(filter)
            check_types(conds, self._field_types(snap, [c.field for c in conds]))
            slots = self.content.matching_slots(conds)
            # Never index past the snapshot's id map (a row committed by another process is not in it yet).
            slots = slots[slots < snap.slots]
            mask = np.zeros(snap.slots, dtype=bool)
            mask[slots] = True
            mask &= snap.live
        elif not snap.all_live:
            mask = snap.live
        if exclude is not None and len(exclude):
            mask = (snap.live if mask is None else mask).copy()
            mask[exclude[exclude < snap.slots]] = False
        return mask

    def _search(self, snap: Snapshot, q: np.ndarray, k: int, mask: np.ndarray | None, *,
                ef: int | None = None, nprobe: int | None = None) -> list[list[Hit]]:
        ann = snap.ann
        rescore = ann.plan.rescore
        if mask is None:
            if snap.slots == 0:
                return [[] for _ in range(len(q))]
            if rescore <= 1:
                # Hot path: one FAISS call and the id lookup, nothing else.
                dist, pos = ann.search(q, k, ef=ef, nprobe=nprobe)
                return _hits(snap.ids, dist, pos)
            dist, pos = ann.search(q, k * rescore, ef=ef, nprobe=nprobe)
            return _rescore(snap, q, pos, k)
        passing = int(mask.sum())
        if passing == 0:
            return [[] for _ in range(len(q))]
        want = min(k, passing)
        if passing <= EXACT_LIMIT or ann.plan.kind == "flat" and rescore <= 1:
            return _exact(snap, q, np.flatnonzero(mask), k)
        selector, keep = _selector(snap, mask)
        fraction = passing / len(mask)
        candidates = k * max(rescore, 1)
        if ann.plan.kind == "hnsw":
            # The beam must reach past the vectors the filter rejects: widen efSearch by the rejection rate.
            ef = min(max(ef or ann.spec.ef_search, int(candidates / fraction)), 4096)
        dist, pos = ann.search(q, candidates, selector=selector, ef=ef, nprobe=nprobe)
        del keep
        # Binary HNSW ignores selectors: drop anything outside the mask whatever the index did.
        valid = pos >= 0
        valid[valid] = mask[pos[valid]]
        pos = np.where(valid, pos, -1)
        out = _rescore(snap, q, pos, k) if rescore > 1 else _hits(snap.ids, dist, pos)
        short = [i for i, row in enumerate(out) if len(row) < want]
        for i in short:  # approximate search came back short: answer this query exactly
            out[i] = _exact(snap, q[i : i + 1], np.flatnonzero(mask), k)[0]
        return out

    def _keyword(self, snap: Snapshot, queries: list[str], k: int, mask: np.ndarray | None) -> list[list[Hit]]:
        kw = snap.keyword
        if kw is None:
            raise InputError("this collection has no keyword index", where=str(self.folder),
                             hint="install the index extra (pip install embedops[index]) and reopen it")
        # Same epoch by construction (a compaction swaps in its own keyword index), and the mask is the snapshot's
        # (its live mask at least, unless every slot is live), so the answer is a function of (snapshot, index).
        ids = snap.ids
        return [[Hit(ids[slot], score) for slot, score in row] for row in kw.search(queries, k, mask)]


def _check_k(k: Any) -> int:
    if not isinstance(k, int | np.integer) or isinstance(k, bool) or k < 1:
        raise InputError(f"k must be a positive integer, got {k!r}", where="search")
    return int(k)


def _check_texts(queries: Any) -> list[str]:
    if isinstance(queries, str):
        raise InputError("keyword search takes a list of query texts", hint="wrap the query in a list")
    out = list(queries)
    for i, text in enumerate(out):
        if not isinstance(text, str) or not text.strip():
            raise InputError("a query must be a non-empty string", where=f"query {i}")
    return out


def _selector(snap: Snapshot, mask: np.ndarray):
    if mask is snap.live:
        cached = snap.cache.get("live-selector")
        if cached is not None:
            return cached
    bitmap = np.packbits(mask, bitorder="little")
    faiss = snap.ann.faiss
    selector = faiss.IDSelectorBitmap(len(mask), faiss.swig_ptr(bitmap))
    result = (selector, bitmap)  # the bitmap must outlive the selector that points into it
    if mask is snap.live:
        snap.cache["live-selector"] = result
    return result


def _hits(ids: list[str], dist: np.ndarray, pos: np.ndarray) -> list[list[Hit]]:
    out = []
    for drow, prow in zip(dist.tolist(), pos.tolist(), strict=True):
        out.append([Hit(ids[p], s) for s, p in zip(drow, prow, strict=True) if p >= 0])
    return out


def _rescore(snap: Snapshot, q: np.ndarray, pos: np.ndarray, k: int) -> list[list[Hit]]:
    """Exact float scores for candidate slots, top k of them."""
    ids = snap.ids
    out = []
    for i in range(len(q)):
        cand = pos[i][pos[i] >= 0]
        if len(cand) == 0:
            out.append([])
            continue
        cand = np.unique(cand)  # sorted slots read the memory-mapped file sequentially
        scores = np.asarray(snap.vectors[cand]) @ q[i]
        top = np.argsort(-scores, kind="stable")[:k]
        out.append([Hit(ids[int(cand[j])], float(scores[j])) for j in top])
    return out


def _exact(snap: Snapshot, q: np.ndarray, slots: np.ndarray, k: int) -> list[list[Hit]]:
    """Exact inner-product top-k over the given slots (float vectors from the vectors file)."""
    ids = snap.ids
    k = min(k, len(slots))
    best_s = np.full((len(q), 0), -np.inf, dtype=np.float32)
    best_p = np.zeros((len(q), 0), dtype=np.int64)
    for start in range(0, len(slots), 65_536):
        part = slots[start : start + 65_536]
        sims = q @ np.asarray(snap.vectors[part]).T
        best_s = np.concatenate([best_s, sims], axis=1)
        best_p = np.concatenate([best_p, np.broadcast_to(part, sims.shape)], axis=1)
        if best_s.shape[1] > k:
            top = np.argpartition(-best_s, k - 1, axis=1)[:, :k]
            best_s = np.take_along_axis(best_s, top, axis=1)
            best_p = np.take_along_axis(best_p, top, axis=1)
    order = np.argsort(-best_s, axis=1, kind="stable")
    best_s = np.take_along_axis(best_s, order, axis=1)
    best_p = np.take_along_axis(best_p, order, axis=1)
    return [[Hit(ids[int(p)], float(s)) for s, p in zip(srow, prow, strict=True)]
            for srow, prow in zip(best_s, best_p, strict=True)]
