"""`embedops check` never passes a criterion it did not measure: it is shown as "not measured" and the command exits
3 (1 when one failed), and the quality gate fails on it too."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from embedops import Project
from embedops.cli.main import app
from embedops.cli.project_cmd import EXIT_FAILED, EXIT_NOT_MEASURED

runner = CliRunner()


def _project(tmp_path: Path, criteria: list[str], extra: str = "") -> Path:
    cfg = tmp_path / "embedops.yaml"
    lines = "".join(f"    - {c}\n" for c in criteria)
    cfg.write_text(f"name: checked\nregistry: reg\ncriteria:\n  success:\n{lines}{extra}")
    return cfg


def test_a_criterion_without_data_is_not_measured_and_check_exits_3(tmp_path):
    cfg = _project(tmp_path, ["dimension >= 8", "ndcg@10 >= 0.1", "sts_spearman >= 0.1"])
    res = runner.invoke(app, ["check", str(cfg)])
    assert res.exit_code == EXIT_NOT_MEASURED == 3, res.output
    out = res.stdout
    # One criterion measured and passed; the other two are reported, each as not measured, never as a pass.
    assert out.count("pass") == 1 and out.count("not measured") >= 3, out
    summary = out[out.index("criterion(s) not measured"):]
    assert "ndcg@10 >= 0.1" in summary and "sts_spearman >= 0.1" in summary and "dimension" not in summary
    assert "evaluation.retrieval" in out and "evaluation.sts" in out
    assert "2 criterion(s) not measured" in res.stdout and "all criteria" not in res.stdout


def test_a_failure_wins_over_not_measured_and_all_measured_passes_exit_0(tmp_path, small_beir):
    cfg = _project(tmp_path, ["dimension >= 1000", "ndcg@10 >= 0.1"])
    res = runner.invoke(app, ["check", str(cfg)])
    assert res.exit_code == EXIT_FAILED == 1, res.output
    assert "FAIL" in res.stdout and "not measured" in res.stdout
    cfg = _project(tmp_path, ["dimension >= 8", "ndcg@10 >= 0.1"], f"evaluation:\n  retrieval: {small_beir}\n")
    res = runner.invoke(app, ["check", str(cfg)])
    assert res.exit_code == 0, res.output
    assert "not measured" not in res.stdout and "all criteria measured and pass" in res.stdout


def test_check_help_names_its_exit_codes():
    res = runner.invoke(app, ["check", "--help"])
    assert res.exit_code == 0
    text = " ".join(res.stdout.split())
    assert "1 when one fails" in text and "3 when one could not be measured" in text


def test_the_gate_fails_on_a_criterion_it_could_not_measure(tmp_path, encoder):
    project = Project.open(_project(tmp_path, ["dimension >= 8", "sts_spearman >= 0.1"]))
    gate = project.gate(encoder)
    assert gate["passed"] is False
    assert "sts_spearman >= 0.1 not measured" in gate["summary"]
    statuses = {c["criterion"]: c["status"] for c in gate["criteria"]}
    assert statuses == {"dimension >= 8": "pass", "sts_spearman >= 0.1": "not measured"}
    assert Project.open(_project(tmp_path, ["dimension >= 8"])).gate(encoder)["passed"] is True
