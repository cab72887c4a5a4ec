"""The project file: the starter is valid, errors name the field, criteria parse."""

from __future__ import annotations

import pytest

from embedops.config import Criterion, load_config
from embedops.config.starter import render_starter
from embedops.errors import ConfigError


def test_starter_file_is_valid_and_has_criteria(tmp_path):
    path = tmp_path / "embedops.yaml"
    path.write_text(render_starter(retrieval="bench/scifact"))
    cfg = load_config(path)
    assert cfg.use_case == "semantic_search"
    assert [str(c) for c in cfg.criteria.parsed()][0] == "ndcg@10 >= 0.6"
    assert cfg.resolve(cfg.evaluation.retrieval) == tmp_path / "bench/scifact"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ("model:\n  batch_size: 0\n", "model.batch_size"),
        ("use_case: chatbot\n", "use_case"),
        ("criteria:\n  success: ['ndcg@10 is good']\n", "criteria.success"),
        ("modle:\n  name: x\n", "modle"),
        ("data:\n  - format: jsonl\n", "data[0].path"),
    ],
)
def test_invalid_fields_are_named(tmp_path, body, field):
    path = tmp_path / "embedops.yaml"
    path.write_text(body)
    with pytest.raises(ConfigError) as exc:
        load_config(path)
    assert f"field '{field}'" in str(exc.value)
    assert str(path) in str(exc.value)


def test_yaml_syntax_error_names_the_line(tmp_path):
    path = tmp_path / "embedops.yaml"
    path.write_text("name: ok\nmodel: [unclosed\n")
    with pytest.raises(ConfigError, match="invalid YAML") as exc:
        load_config(path)
    assert f"{path}:" in str(exc.value)


def test_missing_file_suggests_init(tmp_path):
    with pytest.raises(ConfigError, match="embedops init"):
        load_config(tmp_path / "embedops.yaml")


def test_criteria_parse_and_compare():
    c = Criterion.parse("p95_latency_ms <= 50")
    assert c.passes(49.9) and not c.passes(50.1)
    assert Criterion.parse("NDCG@10>=0.65").metric == "ndcg@10"
    with pytest.raises(ValueError, match="metric >= number"):
        Criterion.parse("ndcg@10 ~ 0.6")
