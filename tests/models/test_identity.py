"""Stable model identity: content fingerprints, specs that load the same encoder again, exports that leave the model
folder alone, registry names through a resolver, and a models package that imports neither eval nor the registry."""

from __future__ import annotations

import ast
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from embedops._io import cache_root
from embedops.errors import ModelError
from embedops.models import bundled_default_path, encoder_from_spec, load_encoder, resolve_model, weights_hash
from embedops.models.export import ensure_export

TEXTS = ["a copied model is the same model", "vector databases", "Cats sleep most of the day."]


@pytest.fixture(scope="module")
def copied_model(tmp_path_factory) -> Path:
    """The bundled model folder copied somewhere else (new path, new mtimes)."""
    folder = tmp_path_factory.mktemp("elsewhere") / "minilm-copy"
    shutil.copytree(bundled_default_path(), folder)
    return folder


def _tree(folder: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns) for p in folder.rglob("*")}


def test_a_copied_model_has_the_same_fingerprint(encoder, copied_model):
    copy = load_encoder(str(copied_model))
    assert copy.weights_hash == encoder.weights_hash == weights_hash(bundled_default_path())
    assert copy.fingerprint == encoder.fingerprint
    assert encoder.spec()["location"] == "all-MiniLM-L6-v2" and copy.spec()["location"] == str(copied_model)
    os.utime(copied_model / "config.json", ns=(1, 1))  # a new mtime is not a new model
    assert weights_hash(copied_model) == encoder.weights_hash


def test_the_fingerprint_follows_what_changes_the_vectors(encoder, onnx_encoder):
    short = load_encoder(truncate_dim=128)
    assert short.weights_hash == encoder.weights_hash
    assert len({encoder.fingerprint, short.fingerprint, onnx_encoder.fingerprint}) == 3
    assert load_encoder(max_tokens=128).fingerprint != encoder.fingerprint


def test_spec_round_trips_torch_and_onnx_with_truncate_dim(onnx_encoder):
    for enc in (load_encoder(truncate_dim=128), load_encoder(backend="onnx", truncate_dim=64, threads=2)):
        spec = enc.spec()
        assert {"name", "location", "backend", "quantization", "truncate_dim", "max_tokens", "prompts", "dimension",
                "output_dimension", "fingerprint", "weights_hash"} <= set(spec)
        again = encoder_from_spec(spec)
        assert type(again) is type(enc) and again.spec() == spec
        assert again.output_dimension == enc.truncate_dim
        assert np.allclose(again.encode(TEXTS), enc.encode(TEXTS), atol=1e-6)


def test_a_spec_whose_weights_changed_is_refused(copied_model, tmp_path):
    from safetensors.torch import load_file, save_file

    folder = tmp_path / "tuned"
    shutil.copytree(copied_model, folder)
    spec = load_encoder(str(folder)).spec()
    weights = load_file(str(folder / "model.safetensors"))
    name = next(k for k in weights if k.endswith("LayerNorm.weight"))
    weights[name] = weights[name] * 1.01
    save_file(weights, str(folder / "model.safetensors"), metadata={"format": "pt"})
    with pytest.raises(ModelError, match="weights .* changed") as err:
        encoder_from_spec(spec)
    assert spec["weights_hash"] in str(err.value) and weights_hash(folder) in str(err.value)


def test_export_leaves_the_model_folder_alone(copied_model, encoder):
    before = _tree(copied_model)
    exported = ensure_export(resolve_model(str(copied_model)))
    assert exported.folder.parent == cache_root() / "onnx"
    assert not (copied_model / "onnx").exists() and _tree(copied_model) == before
    assert load_encoder(str(copied_model)).fingerprint == encoder.fingerprint
    # The same content exports once: the bundled model and its copy share the export.
    assert ensure_export(resolve_model(None)).folder == exported.folder


def test_registry_names_need_a_resolver(copied_model):
    with pytest.raises(ModelError, match="registry refs need a registry") as err:
        resolve_model("tuned@v2")
    assert "resolver" in str(err.value)
    seen: list[str] = []

    def resolver(name: str) -> Path | None:
        seen.append(name)
        return copied_model if name in ("champion", "tuned@v2") else None

    for name in ("champion", "tuned@v2"):
        source = resolve_model(name, resolver=resolver)
        assert source.path == copied_model.resolve() and source.name == name
    assert resolve_model("org/some-model", resolver=resolver).hf_id == "org/some-model"  # falls through
    with pytest.raises(ModelError, match="no such version"):
        resolve_model("tuned@v9", resolver=resolver)
    enc = load_encoder("champion", backend="onnx", resolver=resolver, threads=2)
    assert enc.source.path == copied_model.resolve() and "champion" in seen


def _imports(path: Path) -> set[str]:
    """Every module a file imports, at module level or inside functions."""
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module)
            out.update(f"{node.module}.{a.name}" for a in node.names)
    return out


def test_models_imports_neither_eval_nor_registry():
    import embedops.models

    root = Path(embedops.models.__file__).parent
    bad = {f"{p.name}: {m}" for p in root.rglob("*.py") for m in _imports(p)
           if m.split(".")[:2] in (["embedops", "eval"], ["embedops", "registry"])}
    assert not bad, sorted(bad)
