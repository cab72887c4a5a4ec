"""FaissStore on real FAISS and SQLite: upsert/replace/delete/get, every index kind, filters, bad input, files."""

from __future__ import annotations

import json
import sqlite3

import numpy as np
import pytest

from embedops.errors import InputError
from embedops.index import FaissStore, IndexSpec
from embedops.index import searching as searching_module

D = 32


def lowrank(n: int, d: int = 32, rank: int = 8, noise: float = 0.5, seed: int = 0) -> np.ndarray:
    """Unit vectors from a rank-`rank` signal plus isotropic noise; the same seed gives the same basis."""
    rng = np.random.default_rng(seed)
    basis = rng.standard_normal((rank, d))
    v = rng.standard_normal((n, rank)) @ basis / np.sqrt(rank) + noise * rng.standard_normal((n, d)) / np.sqrt(d)
    return (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32)


def exact_ids(queries: np.ndarray, docs: np.ndarray, ids: list[str], k: int) -> list[list[str]]:
    """Exact top-k ids by inner product."""
    sims = queries @ docs.T
    return [[ids[j] for j in np.argsort(-row, kind="stable")[:k]] for row in sims]


def make(tmp_path, spec=None, n=2000, vectors=None):
    vecs = lowrank(n + 20) if vectors is None else vectors
    store = FaissStore.create(tmp_path / "c", D, spec or IndexSpec())
    ids = [f"d{i}" for i in range(n)]
    meta = [{"group": i % 5, "name": f"n{i % 3}", "score": i / n, "flag": i % 2 == 0} for i in range(n)]
    store.upsert(ids, vecs[:n], meta, [f"text {i}" for i in range(n)])
    store.wait()  # an index kind that needs training data (IVF-PQ) is rebuilt in the background
    return store, vecs[:n], vecs[n:], ids


def test_upsert_get_replace_delete(tmp_path):
    store, docs, _, ids = make(tmp_path, n=200)
    rec = store.get(["d3", "nope"], with_vectors=True)
    assert rec[0].text == "text 3" and rec[0].metadata["group"] == 3 and rec[1] is None
    np.testing.assert_array_equal(rec[0].vector, docs[3])
    new = lowrank(1, seed=9)
    store.upsert(["d3"], new, [{"group": 99}], ["replaced"])
    assert len(store) == 200
    rec = store.get(["d3"], with_vectors=True)[0]
    assert rec.text == "replaced" and rec.metadata == {"group": 99}
    np.testing.assert_array_equal(rec.vector, new[0])
    assert store.search(new[0], 1)[0][0].id == "d3"
    assert store.delete(["d3", "d4", "unknown"]) == 2
    assert len(store) == 198 and store.get(["d3"])[0] is None
    found = {h.id for h in store.search(docs[4], 50)[0]}
    assert "d4" not in found and "d3" not in found


def test_rebuild_compacts_deleted(tmp_path):
    store, docs, q, ids = make(tmp_path, n=300)
    store.delete(ids[:100])
    before = [[h.id for h in row] for row in store.search(q, 5)]
    info = store.rebuild()
    assert info["deleted"] == 0 and info["documents"] == 200 and info["epoch"] == 1
    assert info["index"]["kind"] == "flat" and store.integrity_check() == []  # slots renumbered, tombstones gone
    assert [[h.id for h in row] for row in store.search(q, 5)] == before
    files = sorted(p.name for p in (tmp_path / "c").iterdir())
    assert "vectors.1.f32" in files and "vectors.0.f32" not in files
    assert (tmp_path / "c" / "vectors.1.f32").stat().st_size == 200 * D * 4


@pytest.mark.parametrize("spec, min_recall", [
    (IndexSpec(kind="flat"), 1.0),
    (IndexSpec(kind="hnsw"), 0.95),
    (IndexSpec(kind="ivfpq", nprobe=64), 0.8),
    (IndexSpec(vectors="int8"), 0.98),
    (IndexSpec(vectors="binary"), 0.85),  # only 32 bits per vector here
    (IndexSpec(kind="hnsw", vectors="int8"), 0.95),
])
def test_kinds_recall_and_float_scores(tmp_path, spec, min_recall):
    store, docs, q, ids = make(tmp_path, spec)
    hits = store.search(q, 10)
    truth = exact_ids(q, docs, ids, 10)
    recall = np.mean([len({h.id for h in row} & set(t)) / 10 for row, t in zip(hits, truth, strict=True)])
    assert recall >= min_recall, (spec, recall)
    # Every kind reports float inner products (quantised kinds are rescored with the float vectors).
    for row, qv in zip(hits, q, strict=True):
        for h in row:
            assert h.score == pytest.approx(float(docs[int(h.id[1:])] @ qv), abs=1e-5)
    assert store.info()["index"]["kind"] == spec.kind.replace("auto", "flat")


def test_auto_switches_to_hnsw_and_reports_it(tmp_path):
    store = FaissStore.create(tmp_path / "c", D, IndexSpec(hnsw_threshold=500))
    vecs = lowrank(800)
    store.upsert([f"a{i}" for i in range(400)], vecs[:400])
    assert store.info()["index"]["kind"] == "flat"
    store.upsert([f"b{i}" for i in range(400)], vecs[400:])
    store.wait()  # the switch is rebuilt in the background, never inside the upsert
    info = store.info()
    assert info["index"]["kind"] == "hnsw" and info["index"]["factory"] == "HNSW32,Flat"
    store.close()
    assert FaissStore(tmp_path / "c").info()["index"]["factory"] == "HNSW32,Flat"


def test_quantised_memory(tmp_path):
    store, *_ = make(tmp_path, IndexSpec(vectors="binary"))
    assert store.info()["index_bytes_per_vector"] <= 4 * D / 16
    store2 = FaissStore.create(tmp_path / "i8", D, IndexSpec(vectors="int8"))
    store2.upsert([str(i) for i in range(500)], lowrank(500))
    assert store2.info()["index_bytes_per_vector"] <= 4 * D / 3


def test_filters_equality_in_range_and_bool(tmp_path):
    store, docs, q, ids = make(tmp_path)
    for flt, pred in [
        ({"group": 3}, lambda i: i % 5 == 3),
        ({"group": {"in": [1, 2]}, "name": "n1"}, lambda i: i % 5 in (1, 2) and i % 3 == 1),
        ({"score": {"gte": 0.25, "lt": 0.5}}, lambda i: 0.25 <= i / 2000 < 0.5),
        ({"flag": True}, lambda i: i % 2 == 0),
    ]:
        keep = [i for i in range(2000) if pred(i)]
        truth = exact_ids(q, docs[keep], [ids[i] for i in keep], 10)
        hits = store.search(q, 10, flt)
        assert [[h.id for h in row] for row in hits] == truth, flt


def test_filter_with_hnsw_is_never_short(tmp_path, monkeypatch):
    # Force the approximate path (no small-set exact shortcut) with a filter passing 2% of the vectors.
    monkeypatch.setattr(searching_module, "EXACT_LIMIT", 0)
    vecs = lowrank(3020)
    store = FaissStore.create(tmp_path / "c", D, IndexSpec(kind="hnsw", ef_search=16))
    store.upsert([f"d{i}" for i in range(3000)], vecs[:3000], [{"rare": i % 50 == 0} for i in range(3000)])
    for row in store.search(vecs[3000:], 20, {"rare": True}):
        assert len(row) == 20 and all(int(h.id[1:]) % 50 == 0 for h in row)
    for row in store.search(vecs[3000:], 100, {"rare": True}):
        assert len(row) == 60  # all 60 matching documents, not fewer


def test_filter_on_missing_field_is_empty_and_wrong_type_is_an_error(tmp_path):
    store, _, q, _ = make(tmp_path, n=100)
    assert store.search(q, 5, {"no_such_field": "x"}) == [[] for _ in q]
    with pytest.raises(InputError, match="'name'.*stored values are text"):
        store.search(q, 5, {"name": {"gte": 3}})
    with pytest.raises(InputError, match="'group'.*number"):
        store.search(q, 5, {"group": "3"})


def test_bad_vectors_and_ids(tmp_path):
    store, *_ = make(tmp_path, n=10)
    with pytest.raises(InputError, match="dimension 16, the collection has 32"):
        store.upsert(["x"], np.ones((1, 16), np.float32))
    bad = lowrank(3)
    bad[1, 4] = np.nan
    with pytest.raises(InputError, match="'b'.*NaN") as err:
        store.upsert(["a", "b", "c"], bad)
    assert err.value.where == "batch index 1"
    bad[1, 4] = np.inf
    with pytest.raises(InputError, match="NaN or infinity"):
        store.upsert(["a", "b", "c"], bad)
    with pytest.raises(InputError, match="duplicate id 'a'.*0 and 2"):
        store.upsert(["a", "b", "a"], lowrank(3))
    with pytest.raises(InputError, match="dimension 8"):
        store.search(np.ones(8, np.float32), 3)
    with pytest.raises(InputError, match="NaN"):
        store.search(np.full(D, np.nan, np.float32), 3)
    with pytest.raises(InputError, match="JSON-serialisable"):
        store.upsert(["z"], lowrank(1), [{"x": object()}])
    # Nothing half-written: the failed batches left the store as it was.
    assert len(store) == 10 and store.get(["a", "z"]) == [None, None]
    assert store.integrity_check() == [] and store.info()["files"]["vectors.0.f32"] == 10 * D * 4


def test_corrupted_index_file_is_named_and_data_untouched(tmp_path):
    store, docs, q, ids = make(tmp_path, IndexSpec(kind="hnsw"), n=500)
    expected = [[h.id for h in row] for row in store.search(q, 5)]
    store.close()
    folder = tmp_path / "c"
    manifest = json.loads((folder / "index.json").read_text())
    index_file = folder / manifest["file"]
    data = index_file.read_bytes()
    index_file.write_bytes(data[: len(data) // 2])  # truncated
    with pytest.raises(InputError) as err:
        FaissStore(folder)
    assert str(index_file) in str(err.value) and "corrupted or truncated" in str(err.value)
    conn = sqlite3.connect(folder / "collection.db")
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert conn.execute("SELECT COUNT(*) FROM docs").fetchone()[0] == 500
    conn.close()
    # Flipped bytes with the right length are caught by the checksum before FAISS reads them.
    index_file.write_bytes(data[:100] + bytes(b ^ 0xFF for b in data[100:200]) + data[200:])
    with pytest.raises(InputError, match="checksum"):
        FaissStore(folder)
    repaired = FaissStore(folder, repair=True)
    assert [[h.id for h in row] for row in repaired.search(q, 5)] == expected
    repaired.close()
    assert len(FaissStore(folder)) == 500


def test_recommend_more_like_less_like(tmp_path):
    store, docs, _, ids = make(tmp_path, n=500)
    hits = store.recommend(["d1"], k=5)
    assert "d1" not in {h.id for h in hits}
    assert [h.id for h in hits] == exact_ids(docs[1:2], np.delete(docs, 1, 0), ids[:1] + ids[2:], 5)[0]
    both = store.recommend(["d1", "d2"], ["d3"], k=5, filter={"group": {"in": [0, 4]}})
    query = 2 * (docs[1] + docs[2]) / 2 - docs[3]
    keep = [i for i in range(500) if i % 5 in (0, 4)]
    assert [h.id for h in both] == exact_ids(query[None], docs[keep], [ids[i] for i in keep], 5)[0]
    with pytest.raises(InputError, match="unknown id"):
        store.recommend(["nope"])
    with pytest.raises(InputError, match="at least one positive"):
        store.recommend([])


def test_open_refuses_non_collections(tmp_path):
    with pytest.raises(InputError, match="not found"):
        FaissStore(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="not a collection"):
        FaissStore(tmp_path / "empty")
    FaissStore.create(tmp_path / "c", D).close()
    with pytest.raises(InputError, match="not empty"):
        FaissStore.create(tmp_path / "c", D)


def test_truncated_vectors_file_is_named(tmp_path):
    store, *_ = make(tmp_path, n=50)
    store.close()
    path = tmp_path / "c" / "vectors.0.f32"
    path.write_bytes(path.read_bytes()[: 10 * D * 4 + 7])
    with pytest.raises(InputError, match="truncated: it holds 10 vectors, the database 50") as err:
        FaissStore(tmp_path / "c")
    assert str(path) in str(err.value)
