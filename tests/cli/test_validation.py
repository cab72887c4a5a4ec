"""Every CLI option is checked at the door: a bad value exits 2 with one `error:` line naming it, before any model
loads and before anything is written (one table row per command and option that takes a value)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

import embedops.models as models_pkg
from embedops.cli.main import app

runner = CliRunner()


@pytest.fixture
def ws(tmp_path: Path, small_beir: Path) -> Path:
    """A workspace with one valid input of each kind; each case spoils one option."""
    (tmp_path / "texts.txt").write_text("a first text\nanother text\n")
    (tmp_path / "docs.jsonl").write_text('{"_id": "a", "text": "alpha"}\n{"_id": "b", "text": "beta"}\n')
    (tmp_path / "sts.tsv").write_text("split\tscore\tsentence1\tsentence2\n"
                                      "test\t4.0\tA man plays.\tA man is playing.\n"
                                      "test\t1.0\tA cat sleeps.\tStocks fell.\n")
    (tmp_path / "report.json").write_text('{"per_query": {"q": {"ndcg@10": 1.0}}}')
    (tmp_path / "a_file").write_text("not a folder")
    (tmp_path / "emptydir").mkdir()
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    (tmp_path / "ids.txt").write_text("a\n")
    (tmp_path / "beir").symlink_to(small_beir, target_is_directory=True)
    (tmp_path / "crit.yaml").write_text("criteria:\n  success: ['ndcg@10 >= 0.5']\n"
                                        "evaluation:\n  retrieval: no-such-folder\n")
    (tmp_path / "ok.yaml").write_text("criteria:\n  success: ['dimension >= 8']\n")
    (tmp_path / "cut0.yaml").write_text("criteria:\n  success: ['ndcg@0 >= 0.5']\n")
    (tmp_path / "badmetric.yaml").write_text("criteria:\n  success: ['bleu >= 0.5']\n")
    return tmp_path


# (command words, arguments, text the error line must hold). `{ws}` is the workspace; `out.*` names must not appear.
T, D, B, E, F = "{ws}/texts.txt", "{ws}/docs.jsonl", "{ws}/beir", "{ws}/emptydir", "{ws}/a_file"
CASES: list[tuple[str, list[str], str]] = [
    # root
    ("", ["--bogus"], "--bogus"),
    ("", ["no-such-command"], "no-such-command"),
    # encode
    ("encode", ["{ws}/missing.txt", "-o", "{ws}/out.npy"], "missing.txt"),
    ("encode", [T, "-o", "{ws}/out.csv"], "--output"),
    ("encode", [T, "-o", "{ws}/a_file/out.npy"], "--output"),
    ("encode", [T, "-o", "{ws}/out.npy", "--model", "no-such/model-xyz"], "--model"),
    ("encode", [T, "-o", "{ws}/out.npy", "--model", "{ws}/emptydir"], "emptydir"),
    ("encode", [T, "-o", "{ws}/out.npy", "--backend", "tensorflow"], "--backend"),
    ("encode", [T, "-o", "{ws}/out.npy", "--quantization", "int4"], "--quantization"),
    ("encode", [T, "-o", "{ws}/out.npy", "--quantization", "int8"], "--quantization"),
    ("encode", [T, "-o", "{ws}/out.npy", "--batch-size", "0"], "--batch-size"),
    ("encode", [T, "-o", "{ws}/out.npy", "--max-batch-tokens", "0"], "--max-batch-tokens"),
    ("encode", [T, "-o", "{ws}/out.npy", "--truncate-dim", "4"], "--truncate-dim"),
    ("encode", [T, "-o", "{ws}/out.npy", "--precision", "int4"], "--precision"),
    ("encode", [T, "-o", "{ws}/out.npy", "--kind", "passage"], "--kind"),
    ("encode", [T, "-o", "{ws}/out.npy", "--threads", "0"], "--threads"),
    ("encode", [T, "-o", "{ws}/out.npy", "--config", "{ws}/missing.yaml"], "--config"),
    # eval retrieval
    ("eval retrieval", ["{ws}/no-beir", "-o", "{ws}/out"], "no-beir"),
    ("eval retrieval", [F, "-o", "{ws}/out"], "a_file"),
    ("eval retrieval", [B, "-o", "{ws}/out", "--split", "nope"], "split"),
    ("eval retrieval", [B, "-o", "{ws}/out", "--model", "no-such/model-xyz"], "--model"),
    ("eval retrieval", [B, "-o", "{ws}/out", "--backend", "tensorflow"], "--backend"),
    ("eval retrieval", [B, "-o", "{ws}/out", "--quantization", "int4"], "--quantization"),
    ("eval retrieval", [B, "-o", "{ws}/out", "--quantization", "int8"], "--quantization"),
    ("eval retrieval", [B, "-o", "{ws}/out", "--metrics", "ndcg@0"], "--metrics"),
    ("eval retrieval", [B, "-o", "{ws}/out", "--metrics", "bleu@4"], "--metrics"),
    ("eval retrieval", [B, "-o", "{ws}/out", "--metrics", ","], "--metrics"),
    ("eval retrieval", [B, "-o", "{ws}/out", "--batch-size", "0"], "--batch-size"),
    ("eval retrieval", [B, "-o", "{ws}/out", "--sample-queries", "0"], "--sample-queries"),
    ("eval retrieval", [B, "-o", "{ws}/out", "--sample-documents", "0"], "--sample-documents"),
    ("eval retrieval", [B, "-o", "{ws}/out", "--chunk-tokens", "8"], "--chunk-tokens"),
    ("eval retrieval", [B, "-o", "{ws}/out", "--chunk-overlap", "-1"], "--chunk-overlap"),
    ("eval retrieval", [B, "-o", "{ws}/out", "--chunk-tokens", "32", "--chunk-overlap", "32"], "--chunk-overlap"),
    ("eval retrieval", [B, "-o", F], "--output"),
    ("eval retrieval", [B, "-o", "{ws}/out", "--config", "{ws}/missing.yaml"], "--config"),
    # eval sts
    ("eval sts", ["{ws}/missing.tsv", "-o", "{ws}/out"], "missing.tsv"),
    ("eval sts", ["{ws}/sts.tsv", "-o", "{ws}/out", "--split", "nope"], "split"),
    ("eval sts", ["{ws}/sts.tsv", "-o", "{ws}/out", "--model", "no-such/model-xyz"], "--model"),
    ("eval sts", ["{ws}/sts.tsv", "-o", "{ws}/out", "--backend", "tensorflow"], "--backend"),
    ("eval sts", ["{ws}/sts.tsv", "-o", "{ws}/out", "--quantization", "int4"], "--quantization"),
    ("eval sts", ["{ws}/sts.tsv", "-o", "{ws}/out", "--batch-size", "0"], "--batch-size"),
    ("eval sts", ["{ws}/sts.tsv", "-o", F], "--output"),
    ("eval sts", ["{ws}/sts.tsv", "-o", "{ws}/out", "-c", "{ws}/missing.yaml"], "--config"),
    # eval compare
    ("eval compare", ["{ws}/missing.json", "{ws}/report.json", "-o", "{ws}/out"], "missing.json"),
    ("eval compare", ["{ws}/report.json", "{ws}/missing.json", "-o", "{ws}/out"], "missing.json"),
    ("eval compare", ["{ws}/report.json", "{ws}/report.json", "-o", "{ws}/out", "--metrics", "ndcg@-1"],
     "--metrics"),
    ("eval compare", ["{ws}/report.json", "{ws}/report.json", "-o", "{ws}/out", "--resamples", "5"], "--resamples"),
    ("eval compare", ["{ws}/report.json", "{ws}/report.json", "-o", F], "--output"),
    # index build
    ("index build", ["{ws}/a_file/col", "-d", D], "PATH"),
    ("index build", ["{ws}/full", "-d", D], "not a collection"),
    ("index build", ["{ws}/out", "-d", "{ws}/missing.jsonl"], "--data"),
    ("index build", ["{ws}/out", "-d", D, "--model", "no-such/model-xyz"], "--model"),
    ("index build", ["{ws}/out", "-d", D, "--backend", "tensorflow"], "--backend"),
    ("index build", ["{ws}/out", "-d", D, "--kind", "lsh"], "--kind"),
    ("index build", ["{ws}/out", "-d", D, "--vectors", "float16"], "--vectors"),
    ("index build", ["{ws}/out", "-d", D, "--hnsw-threshold", "0"], "--hnsw-threshold"),
    ("index build", ["{ws}/out", "-d", D, "--ef-search", "0"], "--ef-search"),
    ("index build", ["{ws}/out", "-d", D, "--batch-size", "0"], "--batch-size"),
    ("index build", ["{ws}/out", "-d", D, "--config", "{ws}/missing.yaml"], "--config"),
    # index add / delete / search / recommend / info / repair / rebuild
    ("index add", ["{ws}/no-col", "-d", D], "no-col"),
    ("index add", [E, "-d", "{ws}/missing.jsonl"], "--data"),
    ("index add", [E, "-d", D, "--batch-size", "0"], "--batch-size"),
    ("index add", [E, "-d", D, "--config", "{ws}/missing.yaml"], "--config"),
    ("index delete", ["{ws}/no-col", "a"], "no-col"),
    ("index delete", [E, "--ids-file", "{ws}/missing.txt"], "--ids-file"),
    ("index search", ["{ws}/no-col", "query"], "no-col"),
    ("index search", [E, "  "], "QUERY"),
    ("index search", [E, "query", "-k", "0"], "-k"),
    ("index search", [E, "query", "--filter", "{not json"], "--filter"),
    ("index search", [E, "query", "--filter", "[1, 2]"], "--filter"),
    ("index search", [E, "query", "--mode", "fuzzy"], "--mode"),
    ("index search", [E, "query", "--fusion", "max"], "--fusion"),
    ("index search", [E, "query", "--config", "{ws}/missing.yaml"], "--config"),
    ("index recommend", ["{ws}/no-col", "-p", "a"], "no-col"),
    ("index recommend", [E, "-p", "a", "-k", "0"], "-k"),
    ("index recommend", [E, "-p", "a", "--filter", "3"], "--filter"),
    ("index recommend", [E, "-p", ""], "--positive"),
    ("index info", ["{ws}/no-col"], "no-col"),
    ("index repair", ["{ws}/no-col"], "no-col"),
    ("index rebuild", ["{ws}/no-col"], "no-col"),
    ("index rebuild", [E, "--kind", "lsh"], "--kind"),
    ("index rebuild", [E, "--vectors", "float16"], "--vectors"),
    # models
    ("models list", ["--registry", F], "--registry"),
    ("models show", ["m@v1", "--registry", F], "--registry"),
    ("models promote", ["m@v1", "--registry", F], "--registry"),
    ("models promote", ["m@v1", "--config", "{ws}/missing.yaml"], "--config"),
    ("models rollback", ["--registry", F], "--registry"),
    ("models import", ["{ws}/no-model"], "no-model"),
    ("models import", [E, "--registry", F], "--registry"),
    # prepare
    ("prepare", ["{ws}/missing.jsonl", "{ws}/out.jsonl"], "missing.jsonl"),
    ("prepare", [D, "{ws}/a_file/out.jsonl"], "OUTPUT"),
    ("prepare", [D, "{ws}/emptydir"], "OUTPUT"),
    ("prepare", [D, "{ws}/out.jsonl", "--dedupe", "fuzzy"], "--dedupe"),
    ("prepare", [D, "{ws}/out.jsonl", "--near-threshold", "0"], "--near-threshold"),
    ("prepare", [D, "{ws}/out.jsonl", "--near-threshold", "1.5"], "--near-threshold"),
    ("prepare", [D, "{ws}/out.jsonl", "--chunk-tokens", "8"], "--chunk-tokens"),
    ("prepare", [D, "{ws}/out.jsonl", "--chunk-overlap", "-1"], "--chunk-overlap"),
    ("prepare", [D, "{ws}/out.jsonl", "--chunk-tokens", "20", "--chunk-overlap", "20"], "--chunk-overlap"),
    ("prepare", [D, "{ws}/out.jsonl", "--chunk-tokens", "64", "--model", "no-such/model-xyz"], "--model"),
    ("prepare", [D, "{ws}/out.jsonl", "--chunk-tokens", "64", "--config", "{ws}/missing.yaml"], "--config"),
    # init / check
    ("init", ["{ws}/a_file/out.yaml"], "PATH"),
    ("init", ["{ws}/out.yaml", "--use-case", "chatbot"], "--use-case"),
    ("check", ["{ws}/missing.yaml"], "missing.yaml"),
    ("check", ["{ws}/crit.yaml"], "evaluation.retrieval"),
    ("check", ["{ws}/ok.yaml", "--model", "no-such/model-xyz"], "--model"),
    ("check", ["{ws}/cut0.yaml"], "ndcg@0"),
    ("check", ["{ws}/badmetric.yaml"], "bleu"),
    # serve
    ("serve", ["{ws}/missing.yaml", "--no-auth"], "missing.yaml"),
    ("serve", ["--no-auth", "--port", "70000"], "--port"),
    ("serve", ["--no-auth", "--backend", "tensorflow"], "--backend"),
    ("serve", ["--no-auth", "--model", "no-such/model-xyz"], "--model"),
    ("serve", ["--no-auth", "--collection", "bad name=" + E], "--collection"),
    ("serve", ["--no-auth", "--collection", "c={ws}/no-col"], "--collection"),
    ("serve", ["--no-auth", "--collections-root", F], "--collections-root"),
    ("serve", ["--api-keys-file", "{ws}/missing.txt"], "--api-keys-file"),
    ("serve", ["--no-auth", "--max-inputs", "0"], "--max-inputs"),
    ("serve", ["--no-auth", "--max-body-bytes", "10"], "--max-body-bytes"),
    ("serve", ["--no-auth", "--max-queue", "0"], "--max-queue"),
    ("serve", ["--no-auth", "--request-timeout", "0"], "--request-timeout"),
    ("serve", ["--no-auth", "--max-batch-size", "0"], "--max-batch-size"),
    ("serve", ["--no-auth", "--max-wait-ms", "-1"], "--max-wait-ms"),
    ("serve", ["--no-auth", "--log-level", "loud"], "--log-level"),
    # train
    ("train", ["{ws}/missing.jsonl"], "missing.jsonl"),
    ("train", [D, "--base", "no-such/model-xyz", "--registry", "{ws}/out"], "--base"),
    ("train", [D, "--registry", F], "--registry"),
    ("train", [D, "--registry", "{ws}/out", "--format", "csv"], "--format"),
    ("train", [D, "--registry", "{ws}/out", "--eval-fraction", "1.5"], "--eval-fraction"),
    ("train", [D, "--registry", "{ws}/out", "--epochs", "0"], "--epochs"),
    ("train", [D, "--registry", "{ws}/out", "--batch-size", "1"], "--batch-size"),
    ("train", [D, "--registry", "{ws}/out", "--lr", "0"], "--lr"),
    ("train", [D, "--registry", "{ws}/out", "--warmup", "1.5"], "--warmup"),
    ("train", [D, "--registry", "{ws}/out", "--max-tokens", "4"], "--max-tokens"),
    ("train", [D, "--registry", "{ws}/out", "--loss", "triplet"], "--loss"),
    ("train", [D, "--registry", "{ws}/out", "--mini-batch-size", "0"], "--mini-batch-size"),
    ("train", [D, "--registry", "{ws}/out", "--matryoshka", "384,x"], "--matryoshka"),
    ("train", [D, "--registry", "{ws}/out", "--matryoshka", "384,4"], "--matryoshka"),
    ("train", [D, "--registry", "{ws}/out", "--hard-negatives", "-1"], "--hard-negatives"),
    ("train", [D, "--registry", "{ws}/out", "--checkpoint-steps", "0"], "--checkpoint-steps"),
    ("train", [D, "--registry", "{ws}/out", "--seed", "-1"], "--seed"),
    ("train", [D, "--registry", "{ws}/out", "--corpus", "{ws}/missing.jsonl"], "--corpus"),
    ("train", [D, "--registry", "{ws}/out", "--sts", "{ws}/missing.tsv"], "--sts"),
    ("train", [D, "--registry", "{ws}/out", "--config", "{ws}/missing.yaml"], "--config"),
    # quantize / export-onnx (the options typer checks)
    ("quantize", ["--calibration", T, "--beir-queries", "0", "-o", "{ws}/out.json"], "--beir-queries"),
    ("quantize", ["--calibration", T, "--threads", "0", "-o", "{ws}/out.json"], "--threads"),
    ("quantize", ["--calibration", T, "--backend", "tensorflow", "-o", "{ws}/out.json"], "--backend"),
    ("export-onnx", ["--model", "{ws}/emptydir"], "emptydir"),
]


def _snapshot(root: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in root.rglob("*") if not p.is_symlink()}


@pytest.fixture
def no_model_loads(monkeypatch):
    """Fail the case if the command reaches a model load: validation must come first."""

    def tripwire(*args, **kwargs):
        raise AssertionError(f"a model was loaded before the input was checked: {args!r}")

    for name in ("load_encoder", "encoder_from_spec", "load_worker"):
        monkeypatch.setattr(models_pkg, name, tripwire)


@pytest.mark.parametrize(("command", "args", "needle"), CASES,
                         ids=[f"{c or 'root'}:{n}:{i}" for i, (c, _, n) in enumerate(CASES)])
def test_bad_value_exits_2_with_one_error_line_before_any_work(command, args, needle, ws, no_model_loads,
                                                                monkeypatch):
    monkeypatch.chdir(ws)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("EMBEDOPS_REGISTRY", str(ws / "registry"))
    argv = command.split() + [a.replace("{ws}", str(ws)) for a in args]
    before = _snapshot(ws)
    started = time.perf_counter()
    res = runner.invoke(app, argv)
    seconds = time.perf_counter() - started
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    assert res.exit_code == 2, (argv, res.output, res.exception)
    assert "Traceback" not in res.output and not isinstance(res.exception, AssertionError), res.exception
    assert len(lines) == 1 and lines[0].startswith("error:"), res.stderr
    assert needle in lines[0], lines[0]
    assert _snapshot(ws) == before, "something was written"
    assert not list(ws.glob("out*"))
    assert seconds < 10, f"{seconds:.1f} s: checked too late"  # a sanity bound; the tripwire is the real check


def test_the_real_entry_point_prints_one_line_and_exits_2(tmp_path):
    exe = os.path.join(os.path.dirname(sys.executable), "embedops")
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    for argv, needle in ((["index", "search", str(tmp_path), "q", "-k", "0"], "'-k'"),
                         (["eval", "retrieval", str(tmp_path), "--metrics", "ndcg@0"], "--metrics"),
                         (["encode", str(tmp_path / "missing.txt"), "-o", str(tmp_path / "v.npy")], "missing.txt")):
        res = subprocess.run([exe, *argv], capture_output=True, text=True, env=env, timeout=60)
        assert res.returncode == 2, res.stderr
        assert res.stderr.count("\n") == 1 and res.stderr.startswith("error: ") and needle in res.stderr, res.stderr
        assert res.stdout == ""
    assert list(tmp_path.iterdir()) == []
