"""BEIR and STS loaders on the real shared data, and their errors."""

from __future__ import annotations

import shutil

import pytest

from embedops.data import load_beir, load_sts, sample_beir
from embedops.errors import InputError


def test_scifact_test_split_counts(shared_data):
    ds = load_beir(shared_data / "scifact", "test")
    assert len(ds.corpus) == 5183
    assert len(ds.queries) == 300
    assert sum(len(r) for r in ds.qrels.values()) == 339
    doc = next(iter(ds.corpus.values()))
    assert doc.full_text.startswith(doc.title + " ")


def test_sts_test_split_is_parsed_without_quoting(shared_data):
    pairs = load_sts(shared_data / "stsbenchmark", "test")
    assert len(pairs.scores) == 1379
    assert all(0 <= s <= 5 for s in pairs.scores)
    # Quote characters must survive as text: CSV quoting would have merged or altered lines.
    assert any('"' in s for s in pairs.sentences1 + pairs.sentences2)


def test_sample_keeps_every_judged_document(shared_data):
    ds = sample_beir(load_beir(shared_data / "scifact", "test"), queries=10, documents=50, seed=1)
    assert len(ds.queries) == 10
    judged = {d for rel in ds.qrels.values() for d in rel}
    assert judged <= set(ds.corpus)
    assert len(ds.corpus) == 50


def test_qrels_with_unknown_ids_are_refused(tmp_path, small_beir):
    root = tmp_path / "b"
    shutil.copytree(small_beir, root)
    qid = (root / "qrels" / "test.tsv").read_text().splitlines()[1].split("\t")[0]
    with open(root / "qrels" / "test.tsv", "a") as fh:
        fh.write(f"{qid}\tno-such-doc\t1\n")
    with pytest.raises(InputError, match="unknown document id") as exc:
        load_beir(root, "test")
    assert "test.tsv" in str(exc.value)
    (root / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nno-such-query\tx\t1\n")
    with pytest.raises(InputError, match="unknown query id"):
        load_beir(root, "test")


def test_missing_folder_and_split(tmp_path, small_beir):
    with pytest.raises(InputError, match="not found"):
        load_beir(tmp_path / "nowhere")
    with pytest.raises(InputError, match="no qrels for split 'dev'") as exc:
        load_beir(small_beir, "dev")
    assert "available: test" in str(exc.value)
