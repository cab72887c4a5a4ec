"""Promotion goes through the quality gate; registry names resolve against the project's registry; a damaged
aliases file is an error, never a silent fall-through to a Hugging Face lookup."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from embedops import Project
from embedops.cli.main import app
from embedops.errors import ModelError
from embedops.registry import GateRefusedError, Registry, RegistryDamagedError

runner = CliRunner()


def _project(tmp_path: Path, criteria: list[str]) -> Path:
    cfg = tmp_path / "proj" / "embedops.yaml"
    cfg.parent.mkdir(parents=True, exist_ok=True)
    cfg.write_text(f"name: gated\nregistry: reg\ncriteria:\n  success: {json.dumps(criteria)}\n")
    return cfg


def test_a_version_failing_the_gate_is_not_promoted_unless_forced(tmp_path, small_model):
    cfg = _project(tmp_path, ["dimension >= 1000"])  # all-MiniLM-L6-v2 has 384: the gate must fail
    project = Project.open(cfg)
    project.registry.import_model(small_model, "m")
    with pytest.raises(GateRefusedError, match="failed its quality gate"):
        project.promote("m@v1", "champion")
    reg = Registry(cfg.parent / "reg")
    assert "champion" not in reg.aliases()
    gate = reg.get("m@v1").manifest["gate"]
    assert gate["passed"] is False and "dimension >= 1000" in gate["summary"]
    v = project.promote("m@v1", "champion", force=True)
    assert reg.aliases()["champion"]["version"] == "m@v1"
    assert reg.aliases()["champion"]["log"][-1]["forced"] is True
    assert v.manifest["forced_promotions"][0]["alias"] == "champion"


def test_a_version_passing_the_gate_is_promoted_and_the_result_recorded(tmp_path, small_model):
    cfg = _project(tmp_path, ["dimension >= 100"])
    project = Project.open(cfg)
    project.registry.import_model(small_model, "m")
    v = project.promote("m@v1")
    assert v.manifest["gate"]["passed"] is True and v.manifest["aliases"] == ["champion"]
    assert "forced_promotions" not in v.manifest


def test_cli_promote_refuses_with_exit_1_and_force_overrides(tmp_path, small_model):
    cfg = _project(tmp_path, ["dimension >= 1000"])
    Project.open(cfg).registry.import_model(small_model, "m")
    res = runner.invoke(app, ["models", "promote", "m@v1", "-c", str(cfg)])
    assert res.exit_code == 1 and "failed its quality gate" in res.output
    res = runner.invoke(app, ["models", "promote", "m@v1", "-c", str(cfg), "--force"])
    assert res.exit_code == 0 and "forced past a failed gate" in res.output


def test_registry_names_resolve_against_the_project_registry(tmp_path, small_model, monkeypatch):
    cfg = _project(tmp_path, [])
    project = Project.open(cfg)
    project.registry.import_model(small_model, "m")
    project.registry.promote("m@v1", "champion")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # ./models does not exist here, and no EMBEDOPS_REGISTRY
    monkeypatch.delenv("EMBEDOPS_REGISTRY", raising=False)
    enc = Project.open(cfg).load_encoder("champion")
    assert enc.source.path == (cfg.parent / "reg" / "m" / "v1").resolve()
    # The CLI goes through the same Project: `-c` picks the project's registry.
    res = runner.invoke(app, ["models", "list", "--json", "--registry", str(cfg.parent / "reg")])
    assert res.exit_code == 0 and "m@v1" in res.output


def test_a_damaged_aliases_file_is_an_error_not_a_hub_lookup(tmp_path, small_model):
    cfg = _project(tmp_path, [])
    project = Project.open(cfg)
    project.registry.import_model(small_model, "m")
    (cfg.parent / "reg" / "aliases.json").write_text('{"champion": {"version": "m@v1"')  # torn write
    with pytest.raises(RegistryDamagedError, match="aliases file is damaged"):
        project.load_encoder("champion")
    (cfg.parent / "reg" / "aliases.json").write_text('["not", "a", "mapping"]')
    with pytest.raises(ModelError, match="aliases file is damaged"):
        project.load_encoder("champion")


def test_weights_changed_in_place_are_refused_naming_the_file(tmp_path, small_model):
    import shutil

    cfg = _project(tmp_path, [])
    project = Project.open(cfg)
    root = cfg.parent / "reg"
    v = project.registry.import_model(small_model, "m")
    weights = v.path / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1000:] = bytes(1000)  # overwrite the tail of the weights in place
    weights.unlink()  # the copy may share an inode with the source; write a fresh file
    weights.write_bytes(bytes(data))
    with pytest.raises(RegistryDamagedError, match="does not match the sha256") as err:
        project.load_encoder("m@v1")
    assert "model.safetensors" in str(err.value)
    shutil.copy(small_model / "model.safetensors", weights)  # restored: loads again
    assert project.resolver()("m@v1").path == (root / "m" / "v1").resolve()
