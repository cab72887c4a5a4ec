"""The `Project` facade wires config -> encoder -> data -> index -> evaluation, as a user's code would."""

from __future__ import annotations

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
