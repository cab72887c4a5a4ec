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


@pytest.mark.parametrize(("text", "needle"), [
    ("ndcg@0 >= 0.5", "ndcg@0"),
    ("recall@-5 >= 0.5", "recall@-5"),
    ("uptime >= 0.99", "uptime"),
    ("bleu@4 >= 0.3", "bleu@4"),
])
def test_unknown_metrics_and_cut_offs_below_1_are_refused_listing_the_valid_ones(tmp_path, text, needle):
    with pytest.raises(ValueError, match="valid: ndcg@k") as exc:
        Criterion.parse(text)
    assert needle in str(exc.value) and "sts_spearman" in str(exc.value)
    path = tmp_path / "embedops.yaml"
    path.write_text(f"criteria:\n  success: ['{text}']\n")
    with pytest.raises(ConfigError, match="criteria.success"):
        load_config(path)


def test_known_metrics_parse_and_p_at_k_means_precision():
    assert Criterion.parse("P@5 >= 0.2").metric == "precision@5"
    for text in ("map@100 > 0.3", "sts_pearson >= 0.7", "throughput_per_s >= 10", "model_size_mb < 100"):
        Criterion.parse(text)


@pytest.mark.parametrize(("call", "where"), [
    (lambda c: c.retrieval_metrics("ndcg@10,mrr@0"), "metrics"),
    (lambda c: c.retrieval_metrics(" , "), "metrics"),
    (lambda c: c.positive_int(0, "k"), "k"),
    (lambda c: c.positive_int(True, "k"), "k"),
    (lambda c: c.fraction(1.0, "eval_fraction"), "eval_fraction"),
    (lambda c: c.fraction(float("nan"), "warmup"), "warmup"),
    (lambda c: c.choice("fuzzy", ("dense", "keyword"), "mode"), "mode"),
    (lambda c: c.chunking(32, 32), "chunk_overlap"),
    (lambda c: c.existing("/no/such/path", "data"), "data"),
])
def test_argument_checks_name_where_and_what(call, where):
    from embedops.config import checks
    from embedops.errors import InputError

    with pytest.raises(InputError) as exc:
        call(checks)
    assert str(exc.value).startswith(f"{where}: ")


def test_output_targets_need_a_creatable_parent(tmp_path):
    from embedops.config import checks
    from embedops.errors import InputError

    assert checks.writable_target(tmp_path / "a" / "b" / "out.npy", "--output") == tmp_path / "a" / "b" / "out.npy"
    assert not (tmp_path / "a").exists()  # checking creates nothing
    (tmp_path / "file").write_text("x")
    with pytest.raises(InputError, match="is a file, not a folder"):
        checks.writable_target(tmp_path / "file" / "out.npy", "--output")
    with pytest.raises(InputError, match="a folder is there"):
        checks.writable_target(tmp_path, "--output")
    with pytest.raises(InputError, match="a file is there"):
        checks.writable_target(tmp_path / "file", "--output", folder=True)
