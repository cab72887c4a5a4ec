"""Training-data readers: pairs/triplets files, BEIR qrels, feedback; errors name file and line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from embedops.errors import InputError
from embedops.train.pairs import load_training_set, pairs_from_beir, read_feedback, read_pairs


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def tiny_beir(root: Path) -> Path:
    """A 6-document BEIR folder with train and test qrels."""
    (root / "qrels").mkdir(parents=True)
    docs = [("d1", "Aspirin", "Aspirin reduces the risk of heart attack."),
            ("d2", "Statins", "Statins lower cholesterol in the blood."),
            ("d3", "Insulin", "Insulin regulates blood sugar levels."),
            ("d4", "Vitamin D", "Vitamin D supports bone health."),
            ("d5", "Cholesterol", "High cholesterol raises the risk of heart disease."),
            ("d6", "Sleep", "Sleep deprivation impairs memory.")]
    write_jsonl(root / "corpus.jsonl", [{"_id": i, "title": t, "text": x} for i, t, x in docs])
    write_jsonl(root / "queries.jsonl", [{"_id": "q1", "text": "does aspirin prevent heart attacks"},
                                         {"_id": "q2", "text": "what lowers cholesterol"},
                                         {"_id": "q3", "text": "how is blood sugar controlled"}])
    (root / "qrels" / "train.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\t1\nq2\td2\t1\nq2\td5\t1\n")
    (root / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq3\td3\t1\n")
    return root


def test_pairs_and_triplets_from_each_format(tmp_path: Path) -> None:
    rows = [{"query": "a cat", "positive": "a kitten", "negative": "a car"},
            {"query": "a dog", "positive": "a puppy", "negative": "a cup"}]
    ts = read_pairs(write_jsonl(tmp_path / "t.jsonl", rows))
    assert ts.anchors == ["a cat", "a dog"] and ts.negatives == [["a car"], ["a cup"]]
    assert ts.columns() == {"anchor": ["a cat", "a dog"], "positive": ["a kitten", "a puppy"],
                            "negative": ["a car", "a cup"]}
    (tmp_path / "p.csv").write_text("anchor,positive\na cat,a kitten\na dog,a puppy\n")
    assert read_pairs(tmp_path / "p.csv").positives == ["a kitten", "a puppy"]
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"anchor": ["x y", "z w"], "positive": ["x", "z"]}), tmp_path / "p.parquet")
    pq_set = read_pairs(tmp_path / "p.parquet")
    assert pq_set.anchors == ["x y", "z w"] and pq_set.num_negatives == 0
    assert pq_set.fingerprint() == read_pairs(tmp_path / "p.parquet").fingerprint()
    assert pq_set.fingerprint() != ts.fingerprint()


def test_empty_training_file_is_an_error(tmp_path: Path) -> None:
    for name in ("e.jsonl", "e.csv"):
        (tmp_path / name).write_text("")
        with pytest.raises(InputError, match="training file is empty"):
            load_training_set(tmp_path / name)
    (tmp_path / "blank.jsonl").write_text("\n\n")
    with pytest.raises(InputError, match="no examples") as err:
        load_training_set(tmp_path / "blank.jsonl")
    assert err.value.where == str(tmp_path / "blank.jsonl")


def test_missing_field_names_file_and_line(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "bad.jsonl", [{"anchor": "a", "positive": "b"}, {"anchor": "c"}])
    with pytest.raises(InputError, match="no positive field") as err:
        read_pairs(path)
    assert err.value.where == f"{path}:2"
    (tmp_path / "bad.csv").write_text("anchor,positive\na,b\nc,\n")
    with pytest.raises(InputError, match="is empty") as err:
        read_pairs(tmp_path / "bad.csv")
    assert err.value.where == f"{tmp_path / 'bad.csv'}:3"
    mixed = write_jsonl(tmp_path / "mixed.jsonl", [{"anchor": "a", "positive": "b", "negative": "n"},
                                                   {"anchor": "c", "positive": "d"}])
    with pytest.raises(InputError, match="no negative") as err:
        read_pairs(mixed)
    assert err.value.where.endswith("mixed.jsonl:2")
    wrong = write_jsonl(tmp_path / "wrong.jsonl", [{"anchor": 3, "positive": "b"}])
    with pytest.raises(InputError, match="expected a string"):
        read_pairs(wrong)


def test_pairs_from_beir_qrels(tmp_path: Path) -> None:
    folder = tiny_beir(tmp_path / "beir")
    ts = pairs_from_beir(folder, "train")
    assert len(ts) == 3 and ts.query_ids == ["q1", "q2", "q2"]
    assert ts.positives[0] == "Aspirin Aspirin reduces the risk of heart attack."  # title + " " + text
    assert load_training_set(folder).anchors == ts.anchors  # a folder means BEIR
    with pytest.raises(InputError, match="no qrels for split 'dev'"):
        pairs_from_beir(folder, "dev")


def test_feedback_schema(tmp_path: Path) -> None:
    folder = tiny_beir(tmp_path / "beir")
    corpus = pairs_from_beir(folder, "train").corpus
    path = write_jsonl(tmp_path / "fb.jsonl", [
        {"query": "heart attack prevention", "clicked": "Aspirin reduces risk.", "negatives": ["Sleep matters."]},
        {"query": "cholesterol drugs", "clicked_id": "d2", "negative_ids": ["d6"]},
        {"query": "ignored impression", "clicked": "x", "label": 0},
    ])
    ts = read_feedback(path, corpus)
    assert ts.anchors == ["heart attack prevention", "cholesterol drugs"]
    assert ts.positives[1] == "Statins Statins lower cholesterol in the blood."
    assert ts.negatives[1] == ["Sleep Sleep deprivation impairs memory."]
    bad = write_jsonl(tmp_path / "bad.jsonl", [{"query": "q", "clicked_id": "nope"}])
    with pytest.raises(InputError, match="unknown document id 'nope'") as err:
        read_feedback(bad, corpus)
    assert err.value.where == f"{bad}:1"
    with pytest.raises(InputError, match="neither 'clicked'"):
        read_feedback(write_jsonl(tmp_path / "b2.jsonl", [{"query": "q"}]))
