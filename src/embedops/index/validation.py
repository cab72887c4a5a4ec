"""Checks on what a store is given to write: ids and vectors, refused before any file is touched."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from embedops.errors import InputError


def check_ids(ids: Sequence[str], allow_duplicates: bool = False) -> list[str]:
    """A list of non-empty string ids (each once per batch unless `allow_duplicates`)."""
    if isinstance(ids, str):
        raise InputError("ids must be a list of strings, got a single string", hint="wrap it in a list")
    ids = list(ids)
    seen: dict[str, int] = {}
    for i, doc_id in enumerate(ids):
        if not isinstance(doc_id, str) or not doc_id:
            raise InputError(f"id must be a non-empty string, got {doc_id!r}", where=f"batch index {i}")
        if not allow_duplicates and doc_id in seen:
            raise InputError(f"duplicate id {doc_id!r} in one batch (indexes {seen[doc_id]} and {i})",
                             where="upsert", hint="each id may appear once per batch")
        seen.setdefault(doc_id, i)
    return ids


def check_vectors(vectors: Any, ids: list[str], dimension: int) -> np.ndarray:
    """One finite float32 row of `dimension` per id, C-contiguous."""
    arr = np.asarray(vectors)
    if arr.ndim != 2 or arr.shape[0] != len(ids):
        raise InputError(f"expected vectors of shape ({len(ids)}, {dimension}), got {arr.shape}", where="upsert")
    if arr.shape[1] != dimension:
        raise InputError(f"vectors have dimension {arr.shape[1]}, the collection has {dimension}",
                         where="upsert", hint="was the collection built with another model?")
    if not np.issubdtype(arr.dtype, np.number):
        raise InputError(f"vectors must be numeric, got dtype {arr.dtype}", where="upsert")
    arr = np.ascontiguousarray(arr, dtype=np.float32)
    bad = ~np.isfinite(arr).all(axis=1)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise InputError(f"vector of id {ids[i]!r} contains NaN or infinity ({int(bad.sum())} bad rows)",
                         where=f"batch index {i}")
    return arr


def check_queries(queries: Any, dimension: int) -> np.ndarray:
    """Query vectors as a C-contiguous float32 (n, dimension) matrix; a clear error for a wrong shape, a non-numeric
    dtype, NaN or infinity (naming the query). An array that already fits is used as it is (no copy)."""
    q = queries if type(queries) is np.ndarray else np.asarray(queries)
    if q.ndim == 1:
        q = q[None, :]
    if q.ndim != 2 or q.shape[1] != dimension:
        got = q.shape[-1] if q.ndim else "a scalar"
        raise InputError(f"query vectors have dimension {got}, the collection has {dimension}", where="search")
    if not np.issubdtype(q.dtype, np.number):
        raise InputError(f"query vectors must be numeric, got dtype {q.dtype}", where="search")
    if q.dtype != np.float32 or not q.flags.c_contiguous:
        q = np.ascontiguousarray(q, dtype=np.float32)
    if not np.isfinite(q).all():
        row = int(np.flatnonzero(~np.isfinite(q).all(axis=1))[0])
        raise InputError("query vector contains NaN or infinity", where=f"query {row}")
    return q
