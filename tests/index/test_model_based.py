"""Property test (Hypothesis): Collection.add / delete / search with random ids, metadata and filters against a plain
Python model of the same operations (issue 9). Real collection files, exact (Flat) FAISS, the real model for the
query vectors; documents carry random unit vectors (`vectors=`), so the model can score them exactly."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from embedops.errors import InputError
from embedops.index import Collection, IndexSpec

IDS = ["a", "b", "c", "d", "e", "f", "x.y", 'q"t', "ü", "0", "None", "a#0"]
KEYS = ["lang", "year", "flag", "a.b", 'q"k', "", "sp ace", "ключ"]
VALUES = st.one_of(st.sampled_from(["en", "de", "fr"]), st.sampled_from([0, 1, 2, 2020]),
                   st.sampled_from([0.5, 1.0, -2.5]), st.booleans())
QUERIES = ["cells and genes", "a drug trial", "weather tomorrow", "old computers"]
SCALARS = st.one_of(st.sampled_from(["en", "de", "xx"]), st.sampled_from([0, 1, 2020, 1.0, 0.5]), st.booleans())

metadata = st.dictionaries(st.sampled_from(KEYS), VALUES, max_size=4)
document = st.tuples(st.sampled_from(IDS), st.sampled_from(["alpha", "beta gamma", "delta"]), metadata,
                     st.booleans(), st.integers(0, 40))
condition = st.one_of(
    SCALARS,
    st.builds(lambda vs: {"in": vs}, st.lists(SCALARS, min_size=1, max_size=3)),
    st.builds(lambda lo, hi: {"gte": lo, "lt": hi}, st.sampled_from([-3, 0, 1]), st.sampled_from([1, 2, 3000])),
)
filters = st.one_of(st.none(), st.dictionaries(st.sampled_from(KEYS), condition, min_size=1, max_size=2))
operation = st.one_of(
    st.tuples(st.just("add"), st.lists(document, min_size=1, max_size=4, unique_by=lambda d: d[0])),
    st.tuples(st.just("delete"), st.lists(st.sampled_from(IDS), max_size=3)),
    st.tuples(st.just("search"), st.tuples(st.integers(0, len(QUERIES) - 1), st.integers(1, 8), filters)),
)


def unit(seed: int) -> np.ndarray:
    v = np.random.default_rng(seed).standard_normal(384).astype(np.float32)
    return v / np.linalg.norm(v)


def kind(value: Any) -> str:
    return "boolean" if isinstance(value, bool) else "number" if isinstance(value, int | float) else "text"


def equal(stored: Any, wanted: Any) -> bool:
    """The filter's equality: same JSON kind, same value (1 == 1.0, but True is not 1)."""
    return kind(stored) == kind(wanted) and stored == wanted


def passes(meta: dict[str, Any], flt: dict[str, Any]) -> bool:
    for key, cond in flt.items():
        if key not in meta:
            return False
        v = meta[key]
        if isinstance(cond, dict) and "in" in cond:
            ok = any(equal(v, c) for c in cond["in"])
        elif isinstance(cond, dict):
            ok = kind(v) == "number" and cond["gte"] <= v < cond["lt"]
        else:
            ok = equal(v, cond)
        if not ok:
            return False
    return True


def type_error(model: dict[str, tuple], flt: dict[str, Any]) -> bool:
    """Whether the collection must refuse the filter: a value kind that no stored value of the field has."""
    for key, cond in flt.items():
        stored = {kind(meta[key]) for _, meta, _ in model.values() if key in meta}
        if isinstance(cond, dict) and "in" not in cond:
            wants = {"number"}
        else:
            wants = {kind(v) for v in (cond["in"] if isinstance(cond, dict) else [cond])}
        if stored and len(wants) == 1 and not wants <= stored:
            return True
    return False


@pytest.fixture(scope="module")
def query_vectors(encoder) -> np.ndarray:
    return encoder.encode(QUERIES, kind="query")


@settings(max_examples=100, deadline=None, database=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(ops=st.lists(operation, min_size=1, max_size=12))
def test_collection_matches_a_python_model(ops, encoder, query_vectors):
    with tempfile.TemporaryDirectory() as tmp:
        col = Collection.create(Path(tmp) / "c", encoder, spec=IndexSpec(kind="flat"))
        model: dict[str, tuple[np.ndarray, dict[str, Any], str]] = {}
        try:
            for op, arg in ops:
                if op == "add":
                    rows = [{"id": i, "text": t, **m} if top else {"id": i, "text": t, "metadata": m}
                            for i, t, m, top, _ in arg]
                    assert col.add(rows, vectors=np.stack([unit(s) for *_, s in arg])) == len(arg)
                    model.update({i: (unit(s), m, t) for i, t, m, _, s in arg})
                elif op == "delete":
                    assert col.delete(arg) == len(set(arg) & set(model))
                    for i in arg:
                        model.pop(i, None)
                else:
                    check_search(col, model, query_vectors, *arg)
                assert len(col) == len(model)
            for doc_id, rec in zip(model, col.get(list(model), with_vectors=True), strict=True):
                vec, meta, text = model[doc_id]
                assert rec.text == text and rec.metadata == meta
                np.testing.assert_array_equal(rec.vector, vec)
            assert col.integrity_check() == []
        finally:
            col.close()


def check_search(col: Collection, model: dict[str, tuple], query_vectors: np.ndarray, qi: int, k: int,
                 flt: dict[str, Any] | None) -> None:
    if flt and type_error(model, flt):
        with pytest.raises(InputError, match="filter on"):
            col.search(QUERIES[qi], k, flt)
        return
    hits = col.search(QUERIES[qi], k, flt)
    q = query_vectors[qi].astype(np.float64)
    scores = {i: float(v.astype(np.float64) @ q) for i, (v, m, _) in model.items() if not flt or passes(m, flt)}
    best = sorted(scores.values(), reverse=True)[:k]
    assert len(hits) == len(best), (flt, [h.id for h in hits], sorted(scores))
    assert len({h.id for h in hits}) == len(hits)
    for h, want in zip(hits, best, strict=True):
        # Ties may come in any order: each hit has its own exact score, and the scores are the model's top k.
        assert h.id in scores and abs(h.score - scores[h.id]) < 1e-4 and abs(h.score - want) < 1e-4
        _, meta, text = model[h.id]
        assert h.metadata == meta and h.text == text
