"""Collection with the real bundled model on a few dozen texts: dense, keyword, hybrid, filters, recommend, model."""

from __future__ import annotations

import pytest

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


@pytest.fixture(scope="module")
def encoder():
    from embedops.models import load_encoder

    return load_encoder(None)


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


def test_upsert_delete_and_reopen_loads_recorded_model(col, tmp_path, encoder):
    col.add([{"id": "sun", "text": "Snow is falling in the mountains.", "metadata": {"topic": "weather"}}])
    col.delete(["rain"])
    assert len(col) == 8
    col.close()
    again = Collection.open(tmp_path / "col")  # no encoder given: the recorded model is loaded
    assert again.search("snowfall in the alps", k=1)[0].id == "sun"
    assert again.search("storm coast", k=9, mode="hybrid")[0].id != "rain"
    assert again.info()["model"]["name"] == "all-MiniLM-L6-v2"
    again.close()


def test_other_model_is_refused_naming_both(col, tmp_path):
    from embedops.models import load_encoder

    col.close()
    other = load_encoder(None, truncate_dim=128)  # same weights, different vector space (Matryoshka cut)
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
    assert c.search("a bird", k=1)[0].id == "0"
    c.close()
