"""One writer and many readers: each fault of the shared-connection, rebuild-inline design, pinned to a moment.

Each test holds a thread at the exact point where the old code went wrong (an event inside a real method of the
store), lets the other thread run into it, and checks the answer. Real model, real SciFact texts, real files.
"""

from __future__ import annotations

import sys
import threading
import time

import numpy as np
import pytest

from embedops.errors import ModelError
from embedops.index import Collection, FaissStore, IndexSpec
from embedops.index.ann import AnnIndex
from embedops.index.bm25 import KeywordIndex
from embedops.index.sqlite_store import ContentStore
from embedops.index.vectorfile import VectorFile


class Runner(threading.Thread):
    """A thread that keeps its result or its exception."""

    def __init__(self, name: str, fn):
        super().__init__(name=name, daemon=True)
        self.fn, self.result, self.error = fn, None, None

    def run(self) -> None:
        try:
            self.result = self.fn()
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            self.error = exc


def ids(hits) -> list[str]:
    return [h.id for h in hits]


@pytest.fixture
def col(tmp_path, encoder, scifact_mini):
    docs, vecs, _ = scifact_mini
    c = Collection.create(tmp_path / "c", encoder)
    c.add(docs[:100], vectors=vecs[:100])
    yield c
    c.close()


def test_filtered_search_while_an_upsert_commits(col, scifact_mini, monkeypatch):
    docs, vecs, queries = scifact_mini
    flt = {"topic": "cells"}
    before = ids(col.search(queries[0], k=10, filter=flt))
    reached, go = threading.Event(), threading.Event()
    commit = VectorFile.commit

    def paused(self, added):  # runs after the SQLite commit, before the new slots are searchable
        if threading.current_thread().name == "writer":
            reached.set()
            go.wait(10)
        return commit(self, added)

    monkeypatch.setattr(VectorFile, "commit", paused)
    writer = Runner("writer", lambda: col.add(docs[100:150], vectors=vecs[100:150]))
    writer.start()
    assert reached.wait(30)
    reader = Runner("reader", lambda: ids(col.search(queries[0], k=10, filter=flt)))
    reader.start()
    reader.join(0.5)  # old code: IndexError here (SQLite names slots the id map does not have yet)
    go.set()
    for t in (reader, writer):
        t.join(30)
        assert t.error is None, repr(t.error)
    after = ids(col.search(queries[0], k=10, filter=flt))
    assert reader.result in (before, after) and before != after
    assert col.integrity_check() == []


def test_two_writer_threads(col, scifact_mini, monkeypatch):
    docs, vecs, _ = scifact_mini
    reached, go = threading.Event(), threading.Event()
    insert = ContentStore.insert

    def paused(self, *args, **kwargs):  # inside the first writer's transaction
        if threading.current_thread().name == "writer-1":
            reached.set()
            go.wait(10)
        return insert(self, *args, **kwargs)

    monkeypatch.setattr(ContentStore, "insert", paused)
    first = Runner("writer-1", lambda: col.add(docs[100:110], vectors=vecs[100:110]))
    first.start()
    assert reached.wait(30)
    second = Runner("writer-2", lambda: col.add(docs[110:120], vectors=vecs[110:120]))
    second.start()
    second.join(0.5)  # old code: "cannot start a transaction within a transaction"
    go.set()
    for t in (first, second):
        t.join(30)
        assert t.error is None, repr(t.error)
    assert len(col) == 120 and None not in col.get([d["id"] for d in docs[:120]])
    col.wait()
    for d, v in zip(docs[100:120], vecs[100:120], strict=True):  # each vector landed at its own document
        np.testing.assert_array_equal(col.get([d["id"]], with_vectors=True)[0].vector, v)
    assert col.integrity_check() == []


def test_search_during_rebuild_returns_right_ids_and_is_not_blocked(tmp_path):
    # HNSW with deletions: searches go through the index with the live mask as a selector, so an index swapped
    # before its id map (the old code) names the wrong documents.
    n, d = 20_000, 16
    rng = np.random.default_rng(0)
    vecs = rng.standard_normal((n, d)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    store = FaissStore.create(tmp_path / "c", d, IndexSpec(kind="hnsw", ef_construction=40))
    all_ids = [f"d{i}" for i in range(n)]
    store.upsert(all_ids, vecs)
    kept = np.arange(0, n, 2)  # even documents stay; odd ones are deleted and re-added between rebuilds
    wrong: list[tuple[str, float, float]] = []
    done = threading.Event()
    counts = {"searches": 0}

    # Readers search only while a rebuild runs, so this test shows the rebuild's fault alone (adds overlapping
    # searches are the stress test's business; on the old code they crash FAISS outright).
    rebuilding, active, lock = threading.Event(), [0], threading.Lock()

    def search_forever() -> None:
        local = np.random.default_rng(threading.get_ident() % 1000)
        while not done.is_set():
            if not rebuilding.wait(0.05):
                continue
            with lock:
                if not rebuilding.is_set():
                    continue
                active[0] += 1
            try:
                q = vecs[int(local.choice(kept))]
                for h in store.search(q, 3)[0]:
                    # Each hit's score must be its own vector's: a hit named after another document is wrong.
                    true = float(vecs[int(h.id[1:])] @ q)
                    if abs(true - h.score) > 1e-4:
                        wrong.append((h.id, h.score, true))
                counts["searches"] += 1
            finally:
                with lock:
                    active[0] -= 1

    readers = [Runner(f"reader-{i}", search_forever) for i in range(2)]
    for r in readers:
        r.start()
    during = []
    switch = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)  # hand the GIL over often, so readers run inside every step of the rebuild
    try:
        for _ in range(3):
            store.delete(all_ids[1::2])
            start = counts["searches"]
            rebuilding.set()
            store.rebuild()  # compaction renumbers every slot
            with lock:
                rebuilding.clear()
            while active[0]:
                time.sleep(0.001)
            during.append(counts["searches"] - start)
            store.upsert(all_ids[1::2], vecs[1::2])
    finally:
        sys.setswitchinterval(switch)
        done.set()
        for r in readers:
            r.join(30)
    assert all(r.error is None for r in readers), [repr(r.error) for r in readers]
    assert wrong == [], f"{len(wrong)} hits named the wrong document, e.g. {wrong[:3]}"
    assert min(during) > 0  # searches went on while each rebuild built the new index
    store.wait()
    assert store.integrity_check() == [] and store.epoch == 3
    store.close()


def test_upsert_crossing_the_threshold_rebuilds_in_the_background(tmp_path, monkeypatch):
    built: list[tuple[str, str]] = []
    go = threading.Event()
    init = AnnIndex.__init__

    def recording(self, plan, *args, **kwargs):
        built.append((plan.kind, threading.current_thread().name))
        if plan.kind == "hnsw" and threading.current_thread() is not threading.main_thread():
            go.wait(30)  # hold the background rebuild to look at the state meanwhile
        init(self, plan, *args, **kwargs)

    monkeypatch.setattr(AnnIndex, "__init__", recording)
    rng = np.random.default_rng(0)
    vecs = rng.standard_normal((800, 16)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    store = FaissStore.create(tmp_path / "c", 16, IndexSpec(hnsw_threshold=500))
    store.upsert([f"a{i}" for i in range(400)], vecs[:400])
    store.upsert([f"b{i}" for i in range(400)], vecs[400:])  # crosses the threshold
    main = threading.main_thread().name
    assert ("hnsw", main) not in built  # old code: the HNSW index was built inside this upsert
    try:
        info = store.info()
        assert info["index"]["kind"] == "flat"
        assert info["background"]["running"] == "rebuild" or info["background"]["pending"] == ["rebuild"]
        assert store.search(vecs[500], 1)[0][0].id == "b100"  # the live Flat index keeps answering
    finally:
        go.set()
    store.wait()
    assert store.info()["index"]["kind"] == "hnsw" and store.info()["background"]["running"] is None
    assert any(kind == "hnsw" and name != main for kind, name in built)
    assert store.search(vecs[500], 1)[0][0].id == "b100" and store.integrity_check() == []
    store.close()


def test_keyword_search_never_builds_the_index(col, scifact_mini, monkeypatch):
    docs, vecs, _ = scifact_mini
    builds: list[str] = []
    go = threading.Event()
    build = KeywordIndex.build.__func__

    def recording(cls, *args, **kwargs):
        builds.append(threading.current_thread().name)
        if threading.current_thread() is not threading.main_thread():
            go.wait(30)
        return build(cls, *args, **kwargs)

    monkeypatch.setattr(KeywordIndex, "build", classmethod(recording))
    new = docs[150]
    query = new["text"][:80]
    assert new["id"] not in ids(col.search(query, k=10, mode="keyword"))
    col.add([new], vectors=vecs[150:151], refresh=False)  # the refresh goes to the background thread
    try:
        t0 = time.perf_counter()
        for mode in ("keyword", "hybrid"):
            hits = col.search(query, k=10, mode=mode)
            if mode == "keyword":  # the previous keyword index answers; the dense half of hybrid sees the doc
                assert new["id"] not in ids(hits)
        assert time.perf_counter() - t0 < 10
        assert builds == ["embedops-index:" + str(col.store.folder)] or builds == []
        assert col.info()["keyword"]["state"] in ("refreshing", "stale")
    finally:
        go.set()
    col.wait()
    assert ids(col.search(query, k=1, mode="keyword")) == [new["id"]]
    assert col.info()["keyword"] == {"state": "current", "covers": 101, "of": 101, "epoch": 0,
                                     "generation": col.generation}
    # refresh=True (the default) builds in the writer's own thread before add returns.
    other = docs[151]
    col.add([other], vectors=vecs[151:152])
    assert builds[-1] == threading.main_thread().name
    assert ids(col.search(other["text"][:80], k=1, mode="keyword")) == [other["id"]]
    assert threading.main_thread().name not in builds[:-1]  # never from a search


def test_info_does_not_serialise_the_index(col):
    class Counting(AnnIndex):
        calls = 0

        def serialize(self) -> bytes:
            Counting.calls += 1
            return super().serialize()

    col.store.ann.__class__ = Counting
    info = col.info()
    assert Counting.calls == 0  # old code: info() serialised the whole index to measure it
    assert info["index_bytes_per_vector"] == pytest.approx(4 * 384, rel=0.05)
    assert info["keyword_index"].startswith("current") and info["background"]["pending"] == []
    col.flush()
    assert col.info()["index_bytes_source"] == "checkpoint" and Counting.calls == 0


def test_reopen_a_matryoshka_collection_with_a_loader(tmp_path, scifact_mini, loader, encoder):
    from embedops.models import load_encoder

    docs, _, queries = scifact_mini
    small = load_encoder(None, truncate_dim=128)
    col = Collection.create(tmp_path / "m", small)
    col.add(docs[:40])
    expected = ids(col.search(queries[0], k=5))
    col.close()
    again = Collection.open(tmp_path / "m", loader=loader)  # no encoder passed: loaded from the recorded spec
    assert ids(again.search(queries[0], k=5)) == expected
    assert again.encoder.output_dimension == 128
    model = again.info()["model"]
    assert model["truncate_dim"] == 128 and model["dimension"] == 128 and again.encoder_spec["truncate_dim"] == 128
    again.close()
    with pytest.raises(ModelError, match="dimension 384"):  # the full-size model is another vector space
        Collection.open(tmp_path / "m", encoder)


def test_searches_overlapping_upserts_on_hnsw(tmp_path):
    # FAISS must not search an HNSW graph while an add rewires it (the old code crashed here): each hit must name
    # a document whose own vector gives the hit's score, and nothing may raise.
    d = 16
    rng = np.random.default_rng(0)
    vecs = rng.standard_normal((12_000, d)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    store = FaissStore.create(tmp_path / "c", d, IndexSpec(kind="hnsw", ef_construction=40))
    store.upsert([f"d{i}" for i in range(2000)], vecs[:2000])
    deadline = time.monotonic() + 4
    wrong: list[str] = []

    def write() -> int:
        n = 2000
        while time.monotonic() < deadline and n < len(vecs):
            store.upsert([f"d{i}" for i in range(n, n + 250)], vecs[n : n + 250])
            n += 250
        return n

    def read() -> int:
        local, done = np.random.default_rng(threading.get_ident() % 1000), 0
        while time.monotonic() < deadline:
            q = vecs[int(local.integers(len(vecs)))]
            for h in store.search(q, 5, {"missing": 1} if done % 7 == 6 else None)[0]:
                if abs(float(vecs[int(h.id[1:])] @ q) - h.score) > 1e-4:
                    wrong.append(h.id)
            done += 1
        return done

    threads = [Runner("writer", write)] + [Runner(f"reader-{i}", read) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
        assert t.error is None, repr(t.error)
    assert wrong == [] and threads[0].result > 2000 and min(t.result for t in threads[1:]) > 0
    assert len(store) == threads[0].result and store.integrity_check() == []
    store.close()
