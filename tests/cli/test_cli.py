"""The CLI end to end on real data samples: outputs, exit codes, and clear errors (exit 2, nothing half-written)."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from embedops.cli.main import app

runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def test_eval_retrieval_writes_reports(small_beir, tmp_path):
    out = tmp_path / "report"
    res = invoke("eval", "retrieval", small_beir, "--output", out)
    assert res.exit_code == 0, res.output
    for metric in ("ndcg@10", "recall@100", "mrr@10"):
        assert metric in res.output
    report = json.loads((out / "report.json").read_text())
    assert 0.5 < report["metrics"]["ndcg@10"] <= 1.0
    assert (out / "report.png").read_bytes()[:4] == b"\x89PNG"
    assert "| ndcg@10 |" in (out / "report.md").read_text()


def test_eval_compare_of_a_run_with_itself(small_beir, tmp_path):
    out = tmp_path / "a"
    assert invoke("eval", "retrieval", small_beir, "-o", out).exit_code == 0
    res = invoke("eval", "compare", out / "report.json", out / "report.json", "-o", tmp_path / "cmp")
    assert res.exit_code == 0, res.output
    cmp = json.loads((tmp_path / "cmp" / "compare.json").read_text())
    assert cmp["comparisons"][0]["diff"] == 0 and not cmp["comparisons"][0]["significant"]


def test_init_then_check_pass_and_fail(small_beir, tmp_path):
    cfg = tmp_path / "embedops.yaml"
    assert invoke("init", cfg, "--retrieval", small_beir).exit_code == 0
    assert invoke("init", cfg).exit_code == 2  # refuses to overwrite
    text = cfg.read_text()
    start = text.index("  success:")
    end = text.index("  cpu_only")
    cfg.write_text(text[:start] + "  success:\n    - ndcg@10 >= 0.3\n    - dimension == 384\n"
                   "    - p95_latency_ms <= 5000\n" + text[end:])
    res = invoke("check", cfg)
    assert res.exit_code == 0, res.output
    assert res.output.count("pass") == 4 and "not measured" not in res.output  # 3 rows + the summary
    cfg.write_text(cfg.read_text().replace("ndcg@10 >= 0.3", "ndcg@10 >= 0.999"))
    res = invoke("check", cfg)
    assert res.exit_code == 1 and "FAIL" in res.output


def _assert_clean_error(res, *needles):
    assert res.exit_code == 2, res.output
    assert "error:" in res.output
    for n in needles:
        assert n in res.output, res.output


def test_bad_inputs_exit_2_with_a_clear_message(tmp_path, small_beir):
    _assert_clean_error(invoke("eval", "retrieval", tmp_path / "missing"), "does not exist", "missing")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"_id": "1", "text": "ok"}\n{"_id": "2", "text": \n')
    out = tmp_path / "out.jsonl"
    _assert_clean_error(invoke("prepare", bad, out), f"{bad}:2", "malformed JSON")
    assert not out.exists()
    empty = tmp_path / "empty.jsonl"
    empty.write_text('{"_id": "1", "text": "ok"}\n{"_id": "2", "text": "  "}\n')
    _assert_clean_error(invoke("prepare", empty, out), f"{empty}:2", "empty")
    assert not out.exists() and list(tmp_path.glob("*.tmp")) == []
    latin = tmp_path / "latin.jsonl"
    latin.write_bytes(b'{"_id": "1", "text": "caf\xe9"}\n')
    _assert_clean_error(invoke("prepare", latin, out), f"{latin}:1", "UTF-8")
    _assert_clean_error(invoke("eval", "retrieval", small_beir, "--model", "no-such/model-xyz"), "no-such/model-xyz")
    _assert_clean_error(invoke("eval", "retrieval", small_beir, "--metrics", "bleu@4"), "bleu@4")
    _assert_clean_error(invoke("eval", "retrieval", small_beir, "--quantization", "int8"), "needs --backend onnx")
    _assert_clean_error(invoke("eval", "sts", bad, "--backend", "onnx", "--quantization", "int4"), "int4")
    cfg = tmp_path / "embedops.yaml"
    cfg.write_text("model:\n  batch_size: -1\n")
    _assert_clean_error(invoke("check", cfg), "model.batch_size")


@pytest.mark.parametrize("dedupe", ["near", "none"])
def test_prepare_command_reports(tmp_path, dedupe):
    src = tmp_path / "in.csv"
    src.write_text("id,text\n1,<b>Hello</b> world\n2,Hello world\n3,Other\n")
    out = tmp_path / "out.jsonl"
    res = invoke("prepare", src, out, "--dedupe", dedupe)
    assert res.exit_code == 0, res.output
    lines = out.read_text().splitlines()
    assert len(lines) == (2 if dedupe == "near" else 3)
    assert json.loads(lines[0])["text"] == "Hello world"


def test_compare_and_init_refuse_bad_input(tmp_path, small_beir):
    out = tmp_path / "a"
    assert invoke("eval", "retrieval", small_beir, "-o", out).exit_code == 0
    good = out / "report.json"
    _assert_clean_error(invoke("eval", "compare", good, tmp_path / "nope.json"), "does not exist", "nope.json")
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    _assert_clean_error(invoke("eval", "compare", good, broken), "not a JSON report", "broken.json")
    no_per_query = tmp_path / "sts.json"
    no_per_query.write_text('{"metrics": {"spearman": 0.8}}')
    _assert_clean_error(invoke("eval", "compare", good, no_per_query), "no per-query scores")
    other = json.loads(good.read_text())
    other["per_query"].pop(next(iter(other["per_query"])))
    fewer = tmp_path / "fewer.json"
    fewer.write_text(json.dumps(other))
    _assert_clean_error(invoke("eval", "compare", good, fewer, "-o", tmp_path / "cmp"), "different queries")
    assert not (tmp_path / "cmp").exists()
    _assert_clean_error(invoke("init", tmp_path / "p.yaml", "--use-case", "chatbot"), "'chatbot' is not one of")
    assert not (tmp_path / "p.yaml").exists()
