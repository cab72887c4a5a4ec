"""Model identity across the layers: a collection records its encoder's full spec and reopens with it after the model
folder was exported, quantised or copied; another model of the same dimension is refused by fingerprint."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from embedops import Project
from embedops.cli.main import app
from embedops.config import ProjectConfig
from embedops.errors import ModelError
from embedops.index import Collection
from embedops.models import bundled_default_path

SAMPLE = Path(__file__).resolve().parents[1] / "src" / "embedops" / "samples" / "scifact-mini" / "corpus.jsonl"
runner = CliRunner()


def _docs(n: int = 40) -> list[dict]:
    rows = [json.loads(line) for line in SAMPLE.read_text(encoding="utf-8").splitlines()[:n]]
    return [{"id": r["_id"], "text": r["text"], "title": r.get("title", "")} for r in rows]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    """A plain copy of the bundled model in a writable user folder (where exports used to be written)."""
    dst = tmp_path_factory.mktemp("models") / "minilm"
    shutil.copytree(bundled_default_path(), dst)
    return dst


def _project(model: Path, **model_options) -> Project:
    cfg = ProjectConfig()
    cfg.model.name = str(model)
    for key, value in model_options.items():
        setattr(cfg.model, key, value)
    return Project(cfg)


def test_export_and_quantize_leave_the_model_identity_and_its_collections_alone(tmp_path, model_dir):
    project = _project(model_dir)
    before = project.encoder.fingerprint
    files_before = sorted(p.relative_to(model_dir) for p in model_dir.rglob("*"))
    col = project.create_collection(tmp_path / "col")
    col.add(_docs())
    project.close()
    assert runner.invoke(app, ["export-onnx", "-m", str(model_dir)]).exit_code == 0
    report = Project().quantize(str(model_dir), calibration=[d["text"] for d in _docs(64)])
    assert report.passed, report.as_dict()
    assert sorted(p.relative_to(model_dir) for p in model_dir.rglob("*")) == files_before  # nothing written into it
    fresh = _project(model_dir)
    assert fresh.encoder.fingerprint == before
    hits = fresh.search("T cells and the immune response", k=3, path=tmp_path / "col")  # reopens, loads the spec
    assert len(hits) == 3
    fresh.close()


def test_a_copied_or_moved_model_opens_the_collection_it_built(tmp_path, model_dir):
    project = _project(model_dir)
    col = project.create_collection(tmp_path / "col")
    col.add(_docs(20))
    project.close()
    moved = tmp_path / "elsewhere" / "renamed-model"
    shutil.copytree(model_dir, moved)
    other = _project(moved)
    assert other.encoder.fingerprint == project.encoder.fingerprint
    col = Collection.open(tmp_path / "col", other.encoder)  # same content, other path: the same model
    assert len(col.search("cancer", k=2)) == 2
    col.close()


def test_an_int8_collection_reopens_without_passing_an_encoder(tmp_path, model_dir):
    Project().quantize(str(model_dir), calibration=[d["text"] for d in _docs(64)])  # no-op cost if already there
    project = _project(model_dir, backend="onnx", quantization="int8")
    col = project.create_collection(tmp_path / "int8col")
    col.add(_docs())
    expected = [h.id for h in col.search("vitamin D deficiency", k=5)]
    project.close()
    col = Collection.open(tmp_path / "int8col", loader=Project().encoder_from_spec)
    assert col.encoder_spec["quantization"] == "int8" and col.encoder_spec["backend"] == "onnx"
    assert [h.id for h in col.search("vitamin D deficiency", k=5)] == expected
    col.close()


def test_same_dimension_other_weights_is_refused_by_fingerprint(tmp_path, model_dir):
    import torch
    from sentence_transformers import SentenceTransformer

    project = _project(model_dir)
    col = project.create_collection(tmp_path / "col")
    col.add(_docs(10))
    project.close()
    st = SentenceTransformer(str(model_dir), device="cpu")
    with torch.no_grad():
        st[0].auto_model.encoder.layer[0].output.dense.weight.mul_(1.01)  # a slightly different model
    other_dir = tmp_path / "tuned"
    st.save(str(other_dir))
    other = _project(other_dir).encoder
    assert other.output_dimension == project.encoder.output_dimension == 384
    with pytest.raises(ModelError) as err:
        Collection.open(tmp_path / "col", other)
    text = str(err.value)
    assert project.encoder.fingerprint in text and other.fingerprint in text


def test_weights_changed_in_place_are_refused_when_reopening(tmp_path, model_dir):
    victim = tmp_path / "victim"
    shutil.copytree(model_dir, victim)
    project = _project(victim)
    col = project.create_collection(tmp_path / "col")
    col.add(_docs(10))
    project.close()
    weights = victim / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-64:] = bytes(64)
    os.unlink(weights)
    weights.write_bytes(bytes(data))
    with pytest.raises(ModelError, match="weights"):
        Project().open_collection(tmp_path / "col").search("cancer", k=2)
