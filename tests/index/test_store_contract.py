"""One contract for every VectorStore: FAISS + SQLite, Milvus (a real server started by the run) and Qdrant (local
mode). Each test runs against all three and checks what the FAISS store does, against numpy's exact answer.

Vectors are fixed random unit vectors (the model does not matter here); metadata mixes text, integers, integral and
fractional floats, booleans and awkward keys. Milvus tests share one collection per session, emptied through the
store's own delete before each test (creating a Milvus collection takes ~3 s); FAISS and Qdrant get fresh ones
(Qdrant in memory, on disk where reopening is tested).
"""

from __future__ import annotations

import threading
import uuid

import numpy as np
import pytest

from embedops.errors import InputError
from embedops.index import FaissStore, IndexSpec

DIM = 16
BACKENDS = ("faiss", "milvus", "qdrant")
TOPICS = ("cells", "disease", "genes")


def unit(rows: int, seed: int) -> np.ndarray:
    v = np.random.default_rng(seed).normal(size=(rows, DIM)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def corpus(n: int = 50, seed: int = 0):
    """ids, vectors, metadata, texts of `n` documents."""
    ids = [f"doc-{i}" for i in range(n)]
    metas = []
    for i in range(n):
        year = 2000 + i % 20
        metas.append({"topic": TOPICS[i % 3], "year": float(year) if i % 5 == 0 else year, "odd": i % 2 == 1,
                      "score": round(i / 7, 3), "a.b": i % 4, "k y": "yes" if i % 3 else "no", "é": i % 2})
    texts = [f"text of document {i}" if i % 6 else None for i in range(n)]
    return ids, unit(n, seed), metas, texts


@pytest.fixture(scope="module")
def milvus_shared(milvus_url):
    from embedops.index.stores import create_store, drop_collection

    store = create_store(milvus_url, "contract", DIM, IndexSpec(kind="flat"), facts={"suite": "contract"},
                         overwrite=True)
    store.close()
    yield milvus_url
    drop_collection(milvus_url, "contract")


@pytest.fixture(params=BACKENDS)
def backend(request):
    return request.param


@pytest.fixture
def make_store(backend, tmp_path, request):
    """Opens the backend's store for this test (empty at the first call); call again to reopen it."""
    opened = []

    def make():
        if backend == "faiss":
            folder = tmp_path / "faiss"
            store = FaissStore(folder) if folder.exists() else FaissStore.create(
                folder, DIM, IndexSpec(kind="flat"), facts={"suite": "contract"})
        elif backend == "qdrant":
            from embedops.index.stores import create_store, open_store

            # A folder where reopening is the point; memory elsewhere (local mode commits each point to SQLite).
            on_disk = "reopen" in request.node.name
            url = f"qdrant://{tmp_path / 'qdrant'}" if on_disk else "qdrant://:memory:"
            name = "contract" if on_disk else f"c{uuid.uuid4().hex[:12]}"
            store = open_store(url, name) if opened else create_store(
                url, name, DIM, IndexSpec(kind="flat"), facts={"suite": "contract"})
        else:
            from embedops.index.stores import open_store

            store = open_store(request.getfixturevalue("milvus_shared"), "contract")
            if not opened:
                store.delete(store.ids())
        opened.append(store)
        return store

    yield make
    for store in opened:
        store.close()


@pytest.fixture
def filled(make_store):
    store = make_store()
    ids, vecs, metas, texts = corpus()
    assert store.upsert(ids, vecs, metas, texts) == len(ids)
    return store, ids, vecs, metas, texts


def exact(vecs: np.ndarray, query: np.ndarray, keep: list[int], k: int) -> list[int]:
    scores = vecs[keep] @ query
    order = np.argsort(-scores, kind="stable")[:k]
    return [keep[i] for i in order]


def test_upsert_new_ids_then_get_returns_what_was_written(filled):
    store, ids, vecs, metas, texts = filled
    assert store.count() == 50
    assert sorted(store.ids()) == sorted(ids)
    records = store.get([ids[3], "nope", ids[6], ids[3]], with_vectors=True)
    assert records[1] is None
    for rec, i in ((records[0], 3), (records[2], 6), (records[3], 3)):
        assert rec.id == ids[i] and rec.text == texts[i] and rec.metadata == metas[i]
        np.testing.assert_array_equal(rec.vector, vecs[i])  # float32 round trip, bit for bit
    assert records[2].text is None  # no text stays no text (not "")
    assert store.facts()["suite"] == "contract"


def test_upsert_over_an_existing_id_replaces_vector_text_and_metadata(filled):
    store, ids, vecs, metas, _ = filled
    new_vec = unit(1, 99)
    store.upsert([ids[0]], new_vec, [{"topic": "replaced"}], ["new text"])
    assert store.count() == 50
    rec = store.get([ids[0]], with_vectors=True)[0]
    assert rec.metadata == {"topic": "replaced"} and rec.text == "new text"
    np.testing.assert_array_equal(rec.vector, new_vec[0])
    assert store.search(new_vec, 1)[0][0].id == ids[0]
    old_top = store.search(vecs[0], 1)[0][0]
    assert old_top.id != ids[0] or old_top.score < 0.999
    # The old metadata is gone: a filter on a value only the old version had finds nothing of it.
    assert ids[0] not in {h.id for h in store.search(vecs[0], 50, {"year": 2000})[0]}


def test_delete_counts_what_existed_and_unknown_ids_are_not_an_error(filled):
    store, ids, vecs, _, _ = filled
    assert store.delete([ids[1], ids[2], "unknown", ids[1]]) == 2
    assert store.delete(["unknown"]) == 0
    assert store.count() == 48
    assert store.get([ids[1]]) == [None]
    hits = store.search(vecs[1], 50)[0]
    assert len(hits) == 48 and ids[1] not in {h.id for h in hits}


def test_search_k_above_count_returns_every_document_best_first_with_inner_product_scores(filled):
    store, ids, vecs, _, _ = filled
    queries = unit(3, 7)
    rows = store.search(queries, 500)
    for q, row in zip(queries, rows, strict=True):
        assert [h.id for h in row] == [ids[i] for i in exact(vecs, q, list(range(50)), 50)]
        np.testing.assert_allclose([h.score for h in row], np.sort(vecs @ q)[::-1], atol=1e-5)


FILTERS = [
    ({"topic": "genes"}, lambda m: m["topic"] == "genes"),
    ({"year": 2005}, lambda m: m["year"] == 2005),
    ({"year": 2000.0}, lambda m: m["year"] == 2000),  # stored 2000.0 and 2000 alike
    ({"odd": True}, lambda m: m["odd"] is True),
    ({"topic": {"in": ["cells", "disease"]}}, lambda m: m["topic"] in ("cells", "disease")),
    ({"year": {"in": [2001, 2003.0, 2015]}}, lambda m: m["year"] in (2001, 2003, 2015)),
    ({"year": {"gte": 2010, "lt": 2015}}, lambda m: 2010 <= m["year"] < 2015),
    ({"score": {"gt": 2.5}}, lambda m: m["score"] > 2.5),
    ({"year": {"eq": 2019}, "odd": False}, lambda m: m["year"] == 2019 and not m["odd"]),
    ({"a.b": 3}, lambda m: m["a.b"] == 3),
    ({"k y": "no"}, lambda m: m["k y"] == "no"),
    ({"é": 1}, lambda m: m["é"] == 1),
    ({"absent": "x"}, lambda m: False),
]


@pytest.mark.parametrize(("flt", "keep"), FILTERS, ids=[str(f) for f, _ in FILTERS])
def test_metadata_filters_match_exactly_what_the_faiss_language_means(filled, flt, keep):
    store, ids, vecs, metas, _ = filled
    passing = [i for i, m in enumerate(metas) if keep(m)]
    q = unit(1, 3)[0]
    hits = store.search(q, 10, flt)[0]
    assert [h.id for h in hits] == [ids[i] for i in exact(vecs, q, passing, 10)]


def test_a_number_never_equals_a_boolean_nor_a_string(make_store):
    store = make_store()
    store.upsert(["t", "one", "s"], unit(3, 1), [{"odd": True}, {"odd": 1}, {"odd": "1"}])
    assert {h.id for h in store.search(unit(1, 2), 10, {"odd": 1})[0]} == {"one"}
    assert {h.id for h in store.search(unit(1, 2), 10, {"odd": True})[0]} == {"t"}
    assert {h.id for h in store.search(unit(1, 2), 10, {"odd": "1"})[0]} == {"s"}
    assert {h.id for h in store.search(unit(1, 2), 10, {"odd": {"gte": 0}})[0]} == {"one"}


def test_a_filter_whose_type_no_stored_value_has_is_an_error_naming_the_field(filled):
    store = filled[0]
    with pytest.raises(InputError, match="'year'.*text value.*number"):
        store.search(unit(1, 1), 5, {"year": "2015"})
    with pytest.raises(InputError, match="'topic'.*number"):
        store.search(unit(1, 1), 5, {"topic": {"gte": 1}})
    with pytest.raises(InputError, match="unknown operator"):
        store.search(unit(1, 1), 5, {"year": {"near": 3}})


def test_what_an_engine_cannot_express_is_refused_naming_the_field(make_store, backend):
    store = make_store()
    store.upsert(["s", "l"], unit(2, 4), [{"tags": "x", "": "e", 'q"k': 1}, {"tags": ["x", "y"]}])
    cases = {"tags": {"tags": "x"}, "empty": {"": "e"}, "quote": {'q"k': 1}}
    refused = {"faiss": set(), "milvus": {"empty", "quote"}, "qdrant": {"tags", "quote"}}[backend]
    for case, flt in cases.items():
        if case in refused:
            with pytest.raises(InputError, match=f"filter on .* cannot be sent to {backend.capitalize()}"):
                store.search(unit(1, 5), 5, flt)
        else:
            got = {h.id for h in store.search(unit(1, 5), 5, flt)[0]}
            assert got == {"s"}, case  # the list ["x", "y"] never equals "x"


def test_exclude_ids_and_recommend_agree_with_exact_search(filled):
    store, ids, vecs, _, _ = filled
    hits = store.search(vecs[0], 5, exclude_ids=[ids[0], ids[1]])[0]
    assert [h.id for h in hits] == [ids[i] for i in exact(vecs, vecs[0], list(range(2, 50)), 5)]
    rec = store.recommend([ids[4], ids[8]], [ids[9]], 5, {"odd": False})
    query = 2 * vecs[[4, 8]].mean(axis=0) - vecs[9]
    query /= np.linalg.norm(query)
    keep = [i for i in range(50) if i % 2 == 0 and i not in (4, 8)]
    assert [h.id for h in rec] == [ids[i] for i in exact(vecs, query, keep, 5)]


def test_reopen_finds_the_same_documents_facts_and_answers(make_store):
    store = make_store()
    ids, vecs, metas, texts = corpus(30, seed=5)
    store.upsert(ids, vecs, metas, texts)
    store.delete(ids[:3])
    before = [h.id for h in store.search(vecs[10], 10, {"odd": True})[0]]
    store.close()
    again = make_store()
    assert again.count() == 27 and sorted(again.ids()) == sorted(ids[3:])
    assert again.facts()["suite"] == "contract" and again.dimension == DIM
    assert [h.id for h in again.search(vecs[10], 10, {"odd": True})[0]] == before
    assert again.get([ids[4]])[0].metadata == metas[4]


def test_ids_with_quotes_backslashes_and_unicode_round_trip(make_store):
    store = make_store()
    ids = ['quote"d', "back\\slash", "tab\tand\nnewline", "ünïcødé ✓", "it's", "[bracket]"]
    store.upsert(ids, unit(len(ids), 6), [{"n": i} for i in range(len(ids))], ids)
    assert sorted(store.ids()) == sorted(ids)
    assert [r.text for r in store.get(ids)] == ids
    assert {h.id for h in store.search(unit(1, 1), 10)[0]} == set(ids)
    assert store.delete([ids[0], ids[3]]) == 2
    assert sorted(store.ids()) == sorted(ids[1:3] + ids[4:])


def test_wrong_dimension_and_bad_input_are_refused_before_anything_is_written(make_store):
    store = make_store()
    with pytest.raises(InputError, match=f"dimension 8, the collection has {DIM}"):
        store.upsert(["a"], np.ones((1, 8), dtype=np.float32))
    with pytest.raises(InputError, match="duplicate id"):
        store.upsert(["a", "a"], unit(2, 1))
    with pytest.raises(InputError, match="NaN"):
        store.upsert(["a"], np.full((1, DIM), np.nan, dtype=np.float32))
    with pytest.raises(InputError, match=f"dimension 3, the collection has {DIM}"):
        store.search(np.ones(3, dtype=np.float32), 3)
    assert store.count() == 0


def test_searches_on_many_threads_during_writes_always_see_whole_states(make_store):
    store = make_store()
    ids, vecs, metas, texts = corpus(40, seed=8)
    store.upsert(ids[:20], vecs[:20], metas[:20], texts[:20])
    errors: list[BaseException] = []
    sizes: list[int] = []
    stop = threading.Event()

    def reader() -> None:
        try:
            while not stop.is_set():
                row = store.search(vecs[0], 100)[0]
                sizes.append(len(row))
                assert len({h.id for h in row}) == len(row)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=reader) for _ in range(4)]
    for t in threads:
        t.start()
    for start in range(20, 40, 5):
        store.upsert(ids[start : start + 5], vecs[start : start + 5], metas[start : start + 5])
    store.delete(ids[:5])
    stop.set()
    for t in threads:
        t.join()
    assert not errors, errors
    assert sizes and all(20 <= s <= 40 for s in sizes)
    assert store.count() == 35 and len(store.search(vecs[0], 100)[0]) == 35
