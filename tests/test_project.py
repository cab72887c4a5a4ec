"""The `Project` facade wires config -> encoder -> data -> index -> evaluation, as a user's code would."""

from __future__ import annotations

import re

import pytest

from embedops import Project
from embedops.config import load_config
from embedops.errors import ConfigError


def test_project_prepares_indexes_searches_and_evaluates(tmp_path, small_beir):
    cfg = tmp_path / "embedops.yaml"
    cfg.write_text(
        "name: facade\n"
        f"data:\n  - name: corpus\n    path: {small_beir / 'corpus.jsonl'}\n"
        f"evaluation:\n  retrieval: {small_beir}\n"
        "index:\n  path: col\n"
    )
    project = Project.open(cfg)
    report = project.prepare(tmp_path / "clean.jsonl")
    assert report.written > 0
    col = project.index()
    assert len(col) == report.read
    hits = project.search("T cell receptor activation", k=5)
    assert len(hits) == 5 and hits[0].score >= hits[-1].score
    similar = project.recommend([hits[0].id], k=3)
    assert hits[0].id not in {h.id for h in similar}
    metrics = project.evaluate()["retrieval"]["metrics"]
    assert metrics["ndcg@10"] > 0.6
    assert (tmp_path / "col").is_dir()


def test_project_without_data_says_which_section(tmp_path):
    cfg = tmp_path / "embedops.yaml"
    cfg.write_text("name: empty\n")
    project = Project(load_config(cfg))
    with pytest.raises(ConfigError, match="no data sources"):
        project.source()
    with pytest.raises(ConfigError, match="nothing to evaluate"):
        project.evaluate()


def test_index_section_search_mode_and_fusion_are_honoured(tmp_path, small_beir):
    cfg = tmp_path / "embedops.yaml"
    cfg.write_text(f"data:\n  - path: {small_beir / 'corpus.jsonl'}\n"
                   "index:\n  path: col\n  search_mode: hybrid\n  fusion: rrf\n")
    project = Project.open(cfg)
    project.index()
    hits = project.search("T cell receptor activation", k=5)
    # RRF scores are sums of 1/(60 + rank) over two lists: never above 2/61. Min-max scores reach 2.0.
    assert hits and all(h.score <= 2 / 61 + 1e-9 for h in hits)
    assert [h.id for h in hits] == [h.id for h in project.collection.search("T cell receptor activation", k=5,
                                                                            mode="hybrid", fusion="rrf")]
    minmax = project.search("T cell receptor activation", k=5, fusion="minmax")
    assert minmax[0].score > 2 / 61
    project.close()


def _refused(call, where: str) -> None:
    from embedops.errors import InputError

    with pytest.raises((InputError, ConfigError)) as exc:
        call()
    # `where` leads the message (`k: must be ...`) or is named in it (a path, a split).
    assert re.search(rf"(^|[ /]){re.escape(where)}[:' ]", str(exc.value)), str(exc.value)


def test_api_arguments_are_checked_before_any_model_loads(tmp_path, small_beir):
    (tmp_path / "a_file").write_text("x")
    cfg = tmp_path / "embedops.yaml"
    cfg.write_text("criteria:\n  success: ['ndcg@10 >= 0.5']\nevaluation:\n  retrieval: missing-beir\n")
    project = Project.open(cfg)
    cases = [
        (lambda: project.search("  ", k=5), "query"),
        (lambda: project.search("x", k=0), "k"),
        (lambda: project.search("x", mode="fuzzy"), "mode"),
        (lambda: project.search("x", fusion="max"), "fusion"),
        (lambda: project.recommend([], k=3), "positive_ids"),
        (lambda: project.recommend(["a"], k=0), "k"),
        (lambda: project.open_collection(tmp_path / "no-col"), "no-col"),
        (lambda: project.evaluate_retrieval(small_beir, metrics=["ndcg@0"]), "metrics"),
        (lambda: project.evaluate_retrieval(small_beir, metrics=["bleu"]), "metrics"),
        (lambda: project.evaluate_retrieval(small_beir, sample_queries=0), "sample_queries"),
        (lambda: project.evaluate_retrieval(small_beir, sample_documents=-1), "sample_documents"),
        (lambda: project.evaluate_retrieval(small_beir, chunk_tokens=32, chunk_overlap=40), "chunk_overlap"),
        (lambda: project.evaluate_retrieval(tmp_path / "nope"), "data"),
        (lambda: project.evaluate_retrieval(small_beir, split="nope"), "split 'nope'"),
        (lambda: project.evaluate_sts(tmp_path / "nope.tsv"), "data"),
        (lambda: project.evaluate_retrieval(), "evaluation.retrieval"),
        (lambda: project.check(), "evaluation.retrieval"),
        (lambda: project.prepare(tmp_path / "a_file" / "out.jsonl", small_beir / "corpus.jsonl"), "output"),
        (lambda: project.build_collection(["text"], tmp_path / "a_file" / "col"), "path"),
        (lambda: project.load_encoder(backend="tensorflow"), "backend"),
        (lambda: project.encode("not a list"), "texts"),
    ]
    for call, where in cases:
        _refused(call, where)
    assert project._encoders == {}, "a model was loaded before the arguments were checked"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_file", "embedops.yaml"]


def test_evaluating_on_zero_queries_is_refused(tmp_path, small_beir):
    import shutil

    beir = tmp_path / "beir"
    shutil.copytree(small_beir, beir)
    (beir / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\n")
    project = Project()
    _refused(lambda: project.evaluate_retrieval(beir), "no judged queries")
    assert project._encoders == {}
