"""Collection with the real bundled model on a few dozen texts: dense, keyword, hybrid, filters, recommend, model."""

from __future__ import annotations

import pytest

from embedops.data.documents import content_id
from embedops.data.records import Document
from embedops.errors import InputError, ModelError
from embedops.index import Collection, IndexSpec

DOCS = [
    ("cat1", "Cats purr when they are content and sleep most of the day.", {"topic": "pets", "year": 2019}),
    ("cat2", "A kitten chases a ball of yarn across the living room.", {"topic": "pets", "year": 2021}),
    ("dog1", "Dogs need daily walks and enjoy playing fetch in the park.", {"topic": "pets", "year": 2020}),
    ("gpu1", "Graphics processors accelerate matrix multiplication for deep learning.", {"topic": "tech",
                                                                                       "year": 2022}),
    ("db1", "SQLite stores a whole relational database in a single file.", {"topic": "tech", "year": 2018}),
    ("rain", "Heavy rain and strong winds are expected over the coast tonight.", {"topic": "weather",
                                                                                 "year": 2023}),
    ("sun", "A sunny, dry week with temperatures well above average.", {"topic": "weather", "year": 2023}),
    ("bake", "Knead the dough, let it rise, then bake the bread for forty minutes.", {"topic": "food",
                                                                                     "year": 2017}),
    ("zx81", "The ZX81 home computer shipped with one kilobyte of memory.", {"topic": "tech", "year": 1981}),
]


@pytest.fixture
def col(tmp_path, encoder):
    c = Collection.create(tmp_path / "col", encoder)
    c.add([Document(id=i, text=t, metadata=m) for i, t, m in DOCS])
    yield c
    c.close()


def test_dense_search_finds_meaning(col):
    hits = col.search("my kitty is sleeping", k=2)
    assert hits[0].id in {"cat1", "cat2"} and hits[0].text and hits[0].metadata["topic"] == "pets"
    assert col.search("will it storm this evening?", k=1)[0].id == "rain"


def test_keyword_and_hybrid_modes(col):
    assert col.search("ZX81 kilobyte", k=1, mode="keyword")[0].id == "zx81"
    hybrid = col.search("ZX81 kilobyte", k=3, mode="hybrid")
    assert hybrid[0].id == "zx81" and len(hybrid) == 3
    assert col.search("ZX81 kilobyte", k=3, mode="hybrid", fusion="rrf")[0].id == "zx81"
    with pytest.raises(InputError, match="unknown search mode"):
        col.search("x", mode="sparse")


def test_filters_through_collection(col):
    hits = col.search("a computer", k=5, filter={"topic": "tech", "year": {"lt": 2000}})
    assert [h.id for h in hits] == ["zx81"]
    hits = col.search("animals", k=10, filter={"topic": {"in": ["pets", "food"]}}, mode="hybrid")
    assert {h.id for h in hits} <= {"cat1", "cat2", "dog1", "bake"}
    assert col.search("animals", k=5, filter={"colour": "red"}) == []
    with pytest.raises(InputError, match="'year'"):
        col.search("animals", filter={"year": "2020"})


def test_recommend_item_and_profile(col):
    similar = col.recommend(["cat1"], k=2)
    assert "cat1" not in {h.id for h in similar} and similar[0].id == "cat2"
    profile = col.recommend(["cat1", "dog1"], negative_ids=["cat2"], k=3)
    assert {"cat1", "dog1", "cat2"}.isdisjoint(h.id for h in profile)
    assert profile[0].text


def test_upsert_delete_and_reopen_loads_recorded_model(col, tmp_path, loader):
    col.add([{"id": "sun", "text": "Snow is falling in the mountains.", "metadata": {"topic": "weather"}}])
    col.delete(["rain"])
    assert len(col) == 8
    for c in (col, None):
        if c is None:
            col.close()
            c = Collection.open(tmp_path / "col", loader=loader)  # no encoder: the recorded one is loaded
        assert c.search("snowfall in the alps", k=1)[0].id == "sun"
        assert c.get(["rain", "sun"])[0] is None
        for mode in ("dense", "keyword", "hybrid"):
            # The deleted document is nowhere in the full list, even when k asks for every document and more,
            # and the query is its own text.
            for query in ("storm coast", "Heavy rain and strong winds are expected over the coast tonight."):
                ids = [h.id for h in c.search(query, k=20, mode=mode)]
                assert "rain" not in ids, (mode, query, ids)
                assert len(ids) == len(set(ids))
            assert "rain" not in {h.id for h in c.search("weather", k=20, filter={"topic": "weather"}, mode=mode)}
        assert "rain" not in {h.id for h in c.recommend(["sun"], k=20)}
    assert c.info()["model"]["name"] == "all-MiniLM-L6-v2"
    c.close()


def test_open_without_encoder_or_loader_names_what_to_pass(col, tmp_path):
    col.close()
    c = Collection.open(tmp_path / "col")
    assert c.search("ZX81 kilobyte", k=1, mode="keyword")[0].id == "zx81"  # keyword search needs no model
    with pytest.raises(ModelError, match="all-MiniLM-L6-v2.*loader="):
        c.search("a computer")
    c.close()


def test_other_model_is_refused_naming_both(col, tmp_path):
    from embedops.models import load_encoder

    col.close()
    other = load_encoder(None, truncate_dim=128)  # same weights, different space (Matryoshka cut)
    with pytest.raises(ModelError) as err:
        Collection.open(tmp_path / "col", other)
    text = str(err.value)
    assert "all-MiniLM-L6-v2" in text and "dimension 384" in text and "dimension 128" in text


def test_bad_documents(tmp_path, encoder):
    c = Collection.create(tmp_path / "c2", encoder, spec=IndexSpec(vectors="binary"))
    with pytest.raises(InputError, match="duplicate id 'a'"):
        c.add([{"id": "a", "text": "one"}, {"id": "a", "text": "two"}])
    with pytest.raises(InputError, match="empty text"):
        c.add([{"id": "b", "text": "   "}])
    assert len(c) == 0
    c.add(["first text about birds", "second text about fish"])
    assert c.search("a bird", k=1)[0].id == content_id("first text about birds")
    c.close()


def test_collection_recorded_before_encoder_specs_still_opens(tmp_path, encoder, loader):
    from embedops.index import FaissStore
    from embedops.models import load_encoder

    # What collections recorded before: model facts with a path-and-mtime fingerprint that cannot be recomputed.
    legacy = {"name": "all-MiniLM-L6-v2", "dimension": 384, "fingerprint": "0123456789abcdef",
              "backend": "torch", "location": "all-MiniLM-L6-v2"}
    FaissStore.create(tmp_path / "old", 384, facts={"model": legacy}).close()
    col = Collection.open(tmp_path / "old", encoder)  # checked by name and dimension
    col.add([Document(id=i, text=t, metadata=m) for i, t, m in DOCS])
    assert col.info()["model"]["fingerprint"] == "0123456789abcdef"
    col.close()
    asked = []
    col = Collection.open(tmp_path / "old", loader=lambda spec: asked.append(spec) or loader(spec))
    assert col.search("will it storm this evening?", k=1)[0].id == "rain"
    assert asked == [{"name": "all-MiniLM-L6-v2", "location": "all-MiniLM-L6-v2", "backend": "torch"}]
    col.close()
    with pytest.raises(ModelError, match="dimension 128"):
        Collection.open(tmp_path / "old", load_encoder(None, truncate_dim=128))
