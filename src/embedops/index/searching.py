"""Search for `FaissStore`: the raw FAISS call on the hot path, filters that never return short lists, rescoring.

Filters and deletion markers become a FAISS `IDSelectorBitmap` over slots, so HNSW and IVF skip non-matching
vectors during the search itself. Two guards keep the answer complete: a filter matching few documents
(<= EXACT_LIMIT) is answered by exact search over exactly those vectors, and an approximate search that still
returns fewer than min(k, matching) hits is redone exactly. Quantised codes (int8, binary) and IVF-PQ fetch
`k * oversample` candidates and rescore them with the float vectors from the vectors file.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from embedops.errors import InputError
from embedops.index.base import Filter, Hit
from embedops.index.filters import check_types, parse_filter

EXACT_LIMIT = 4096


class SearchMixin:
    """Search methods; the host class provides ann, vectors, content, _ids, _live, dimension."""

    def search(self, queries: Any, k: int = 10, filter: Filter | None = None, *,
               exclude_ids: list[str] | None = None, ef_search: int | None = None, nprobe: int | None = None,
               with_content: bool = False) -> list[list[Hit]]:
        """Top-k per query row (a 1-D vector is one query), best first; filtered, never short."""
        q = self._check_queries(queries)
        if not isinstance(k, int | np.integer) or isinstance(k, bool) or k < 1:
            raise InputError(f"k must be a positive integer, got {k!r}", where="search")
        exclude = None
        if exclude_ids:
            exclude = np.array(list(self.content.live_slots(list(exclude_ids)).values()), dtype=np.int64)
        hits = self._search(q, int(k), filter, exclude=exclude, ef=ef_search, nprobe=nprobe)
        if with_content:
            self.attach_content([h for row in hits for h in row])
        return hits

    def attach_content(self, hits: list[Hit]) -> None:
        """Fill text and metadata of hits from SQLite (one query for all of them)."""
        if not hits:
            return
        slots = self.content.live_slots([h.id for h in hits])
        rows = self.content.rows(list(slots.values()))
        for h in hits:
            slot = slots.get(h.id)
            if slot is not None:
                _, h.text, h.metadata = rows[slot]

    def _check_queries(self, queries: Any) -> np.ndarray:
        q = queries if type(queries) is np.ndarray else np.asarray(queries)
        if q.ndim == 1:
            q = q[None, :]
        if q.ndim != 2 or q.shape[1] != self.dimension:
            got = q.shape[-1] if q.ndim else "a scalar"
            raise InputError(f"query vectors have dimension {got}, the collection has {self.dimension}",
                             where="search")
        if not np.issubdtype(q.dtype, np.number):
            raise InputError(f"query vectors must be numeric, got dtype {q.dtype}", where="search")
        if q.dtype != np.float32 or not q.flags.c_contiguous:
            q = np.ascontiguousarray(q, dtype=np.float32)
        if not np.isfinite(q).all():
            row = int(np.flatnonzero(~np.isfinite(q).all(axis=1))[0])
            raise InputError("query vector contains NaN or infinity", where=f"query {row}")
        return q

    def _mask(self, filter: Filter | None, exclude: np.ndarray | None) -> np.ndarray | None:
        """Boolean mask of searchable slots, or None when every slot is searchable (the fast path)."""
        mask = None
        if filter:
            conds = parse_filter(filter)
            check_types(conds, self.content.field_types([c.field for c in conds]))
            mask = np.zeros(len(self._ids), dtype=bool)
            mask[self.content.matching_slots(conds)] = True
        elif not self._all_live:
            mask = self._live
        if exclude is not None and len(exclude):
            mask = (self._live if mask is None else mask).copy()
            mask[exclude] = False
        return mask

    def _search(self, q: np.ndarray, k: int, filter: Filter | None, *, exclude: np.ndarray | None = None,
                ef: int | None = None, nprobe: int | None = None) -> list[list[Hit]]:
        mask = self._mask(filter, exclude)
        ann = self.ann
        rescore = ann.plan.rescore
        if mask is None:
            if ann.ntotal == 0:
                return [[] for _ in range(len(q))]
            if rescore <= 1:
                # Hot path: one FAISS call and the id lookup, nothing else.
                dist, pos = ann.search(q, k, ef=ef, nprobe=nprobe)
                return self._hits(dist, pos)
            dist, pos = ann.search(q, k * rescore, ef=ef, nprobe=nprobe)
            return self._rescore(q, pos, k)
        passing = int(mask.sum())
        if passing == 0:
            return [[] for _ in range(len(q))]
        want = min(k, passing)
        if passing <= EXACT_LIMIT or ann.plan.kind == "flat" and rescore <= 1:
            return self._exact(q, np.flatnonzero(mask), k)
        selector, keep = self._selector(mask)
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
        out = self._rescore(q, pos, k) if rescore > 1 else self._hits(dist, pos)
        short = [i for i, row in enumerate(out) if len(row) < want]
        for i in short:  # approximate search came back short: answer this query exactly
            out[i] = self._exact(q[i : i + 1], np.flatnonzero(mask), k)[0]
        return out

    def _selector(self, mask: np.ndarray):
        cached = self._selector_cache
        if mask is self._live and cached is not None:
            return cached
        bitmap = np.packbits(mask, bitorder="little")
        faiss = self.ann.faiss
        selector = faiss.IDSelectorBitmap(len(mask), faiss.swig_ptr(bitmap))
        result = (selector, bitmap)  # the bitmap must outlive the selector that points into it
        if mask is self._live:
            self._selector_cache = result
        return result

    def _hits(self, dist: np.ndarray, pos: np.ndarray) -> list[list[Hit]]:
        ids = self._ids
        out = []
        for drow, prow in zip(dist.tolist(), pos.tolist(), strict=True):
            out.append([Hit(ids[p], s) for s, p in zip(drow, prow, strict=True) if p >= 0])
        return out

    def _rescore(self, q: np.ndarray, pos: np.ndarray, k: int) -> list[list[Hit]]:
        """Exact float scores for candidate slots, top k of them."""
        ids = self._ids
        out = []
        for i in range(len(q)):
            cand = pos[i][pos[i] >= 0]
            if len(cand) == 0:
                out.append([])
                continue
            cand = np.unique(cand)  # sorted slots read the memory-mapped file sequentially
            scores = self.vectors.rows(cand) @ q[i]
            top = np.argsort(-scores, kind="stable")[:k]
            out.append([Hit(ids[int(cand[j])], float(scores[j])) for j in top])
        return out

    def _exact(self, q: np.ndarray, slots: np.ndarray, k: int) -> list[list[Hit]]:
        """Exact inner-product top-k over the given slots (float vectors from the vectors file)."""
        ids = self._ids
        k = min(k, len(slots))
        best_s = np.full((len(q), 0), -np.inf, dtype=np.float32)
        best_p = np.zeros((len(q), 0), dtype=np.int64)
        for start in range(0, len(slots), 65_536):
            part = slots[start : start + 65_536]
            sims = q @ self.vectors.rows(part).T
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
