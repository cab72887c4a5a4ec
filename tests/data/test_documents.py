"""One normalisation for every entry point: a file's rows, dicts and strings given to `Collection.add` (issue 9)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from embedops.data import read_documents
from embedops.data.beir import read_beir_corpus
from embedops.data.documents import as_documents, content_id, document_from_row
from embedops.data.records import Document
from embedops.errors import InputError
from embedops.index import Collection

ROWS = [
    {"id": "a", "text": "Cats sleep all day.", "lang": "en", "year": 2020, "metadata": {"source": "wiki"}},
    {"_id": "b", "title": "Dogs", "body": "Dogs like walks.", "lang": "de", "abstract": "kept as metadata"},
    {"text": "No id here.", "lang": "en", "": "empty key", "a.b": 1, 'q"x': True},
]


def _unit(n: int, d: int = 384, seed: int = 0) -> np.ndarray:
    v = np.random.default_rng(seed).standard_normal((n, d)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def test_dicts_and_files_give_the_same_documents(tmp_path):
    path = tmp_path / "docs.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in ROWS), encoding="utf-8")
    from_file = read_documents(path)
    from_dicts = as_documents(ROWS)
    for f, d in zip(from_file, from_dicts, strict=True):
        assert (f.id, f.title, f.text, f.metadata) == (d.id, d.title, d.text, d.metadata)
    assert from_dicts[0].metadata == {"lang": "en", "year": 2020, "source": "wiki"}
    # Every field that is not the id, text or title stays, including other text-like fields and odd keys.
    assert from_dicts[1].metadata == {"lang": "de", "abstract": "kept as metadata"}
    assert from_dicts[2].metadata == {"lang": "en", "": "empty key", "a.b": 1, 'q"x': True}
    assert from_dicts[2].id == content_id("No id here.")


def test_top_level_dict_keys_are_filterable_in_a_collection(tmp_path, encoder):
    # Issue 9: Collection.add dropped top-level keys the file readers keep, so a filter on them found nothing.
    col = Collection.create(tmp_path / "c", encoder)
    col.add(ROWS, vectors=_unit(3))
    assert [h.id for h in col.search("animals", k=5, filter={"lang": "de"})] == ["b"]
    assert {h.id for h in col.search("animals", k=5, filter={"lang": "en", "year": {"gte": 2000}})} == {"a"}
    col.close()


def test_strings_without_ids_never_replace_each_other(tmp_path, encoder):
    # Issue 9: positions as ids made a second add(["c"]) silently replace document "0".
    col = Collection.create(tmp_path / "c", encoder)
    col.add(["alpha text", "beta text"], vectors=_unit(2))
    col.add(["gamma text"], vectors=_unit(1, seed=1))
    assert len(col) == 3
    assert [r.text for r in col.get([content_id("alpha text"), content_id("gamma text")])] == ["alpha text",
                                                                                                "gamma text"]
    col.add(["gamma text"], vectors=_unit(1, seed=1))  # the same text again: the same document
    assert len(col) == 3
    with pytest.raises(InputError, match="same text and no id"):
        col.add(["delta", "delta"], vectors=_unit(2))
    col.close()


@pytest.mark.parametrize("bad, words", [
    ({"id": None, "text": "x"}, "id is null"),
    ({"id": "", "text": "x"}, "id is empty"),
    ({"id": True, "text": "x"}, "string or an integer"),
    ({"id": 1.5, "text": "x"}, "string or an integer"),
    ({"id": "a", "text": 3}, "expected a string"),
    ({"id": "a", "text": "x", "title": 5}, "title field"),
    ({"id": "a", "text": "x", "metadata": "oops"}, "must be an object"),
    ({"id": "a", "text": "x", "metadata": {1: "a"}}, "keys must be strings"),
    ({"id": "a", "text": "x", "metadata": {"v": float("nan")}}, "cannot be stored as JSON"),
    ({"id": "a", "text": "x", "lang": "en", "metadata": {"lang": "de"}}, "both a top-level field"),
])
def test_bad_rows_are_refused_naming_the_document(bad, words, tmp_path, encoder):
    with pytest.raises(InputError, match=words) as err:
        as_documents([{"id": "ok", "text": "fine"}, bad])
    assert "document 1" in str(err.value)
    col = Collection.create(tmp_path / "c", encoder)
    with pytest.raises(InputError, match=words):
        col.add([bad], vectors=_unit(1))
    assert len(col) == 0
    col.close()


def test_none_id_in_a_python_document_is_refused(tmp_path, encoder):
    # Issue 9: a None id was stored as the string "None".
    col = Collection.create(tmp_path / "c", encoder)
    with pytest.raises(InputError, match="document 2.*id is null|id is null.*document 2"):
        col.add([Document("a", "one"), Document("b", "two"), Document(None, "three")], vectors=_unit(3))
    assert len(col) == 0 and col.get(["None"]) == [None]
    col.close()


def test_file_rows_follow_the_same_rules(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text('{"id": "a", "text": "x"}\n{"id": null, "text": "y"}\n', encoding="utf-8")
    with pytest.raises(InputError, match="id is null") as err:
        read_documents(path)
    assert f"{path}:2" in str(err.value)
    csv = tmp_path / "d.csv"
    csv.write_text("text,lang\nfirst,en\nsecond,de\n", encoding="utf-8")
    docs = read_documents(csv)
    assert [d.id for d in docs] == [content_id("first"), content_id("second")]
    assert [d.metadata for d in docs] == [{"lang": "en"}, {"lang": "de"}]
    with pytest.raises(InputError, match="missing id field 'key'"):
        read_documents(csv, id_field="key")


def test_beir_corpus_keeps_top_level_fields(tmp_path):
    path = tmp_path / "corpus.jsonl"
    path.write_text(json.dumps({"_id": "d1", "title": "T", "text": "body", "year": 2001,
                                "metadata": {"src": "x"}}) + "\n" + json.dumps({"_id": "d2", "title": "only"}) + "\n",
                    encoding="utf-8")
    corpus = read_beir_corpus(path)
    assert corpus["d1"].metadata == {"year": 2001, "src": "x"}
    assert corpus["d2"].text == "" and corpus["d2"].full_text == "only"


def test_content_id_depends_on_title_and_text_only():
    a = document_from_row({"title": "T", "text": "x", "lang": "en"}, "row")
    b = document_from_row({"title": "T", "text": "x", "lang": "de"}, "row")
    c = document_from_row({"title": "", "text": "T x"}, "row")
    assert a.id == b.id != c.id
