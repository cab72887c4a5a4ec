"""Registry: versions, manifests, aliases, promote/rollback, import, atomic registration."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from embedops.errors import InputError, ModelError
from embedops.models import bundled_default_path
from embedops.registry import Registry


def test_import_creates_versions_with_manifest(tmp_path: Path, small_model: Path) -> None:
    reg = Registry(tmp_path / "reg")
    v1 = reg.import_model(small_model, "minilm")
    v2 = reg.import_model(small_model, "minilm")
    assert (v1.ref, v2.ref) == ("minilm@v1", "minilm@v2")
    assert (v2.path / "modules.json").is_file() and (v2.path / "model.safetensors").is_file()
    m = json.loads((v2.path / "manifest.json").read_text())
    assert m["kind"] == "imported" and m["version"] == 2 and m["libraries"]["sentence-transformers"]
    assert m["registered_at"] and m["source"] == str(small_model.resolve())
    assert len(m["weights"]["model.safetensors"]) == 64  # sha256 pins the exact weights
    assert [v.ref for v in reg.versions()] == ["minilm@v1", "minilm@v2"]
    assert reg.ref_of("minilm") == "minilm@v2" and reg.ref_of("minilm@latest") == "minilm@v2"
    assert reg.resolve("minilm@v1") == v1.path
    assert small_model.is_dir() and (small_model / "modules.json").is_file()  # import copies, never moves


def test_promote_and_rollback_keep_history(tmp_path: Path, small_model: Path) -> None:
    reg = Registry(tmp_path / "reg")
    for _ in range(3):
        reg.import_model(small_model, "m")
    reg.promote("m@v1")
    reg.promote("m@v3")
    assert reg.resolve("champion") == reg.resolve("m@v3")
    assert reg.get("m@v3").manifest["aliases"] == ["champion"]
    assert reg.get("m@v1").manifest["aliases"] == []
    back = reg.rollback("champion")
    assert back.ref == "m@v1" and reg.resolve("champion").name == "v1"
    assert reg.get("m@v1").manifest["aliases"] == ["champion"]
    log = reg.aliases()["champion"]["log"]
    assert [e["action"] for e in log] == ["promote", "promote", "rollback"]
    with pytest.raises(ModelError, match="no earlier version"):
        reg.rollback("champion")
    reg.promote("m@v2", alias="challenger")
    assert reg.aliases_of("m@v2") == ["challenger"]


def test_errors_name_the_problem(tmp_path: Path, small_model: Path) -> None:
    reg = Registry(tmp_path / "reg")
    reg.import_model(small_model, "m")
    with pytest.raises(ModelError, match="no version 'm@v7'"):
        reg.get("m@v7")
    with pytest.raises(ModelError, match="not a registered model"):
        reg.get("nothing")
    with pytest.raises(ModelError, match="no alias 'champion'"):
        reg.rollback("champion")
    with pytest.raises(InputError, match="invalid model name"):
        reg.register(small_model, "bad name!", {})
    with pytest.raises(InputError, match="invalid alias"):
        reg.promote("m@v1", alias="v2")
    not_st = tmp_path / "bare"
    not_st.mkdir()
    (not_st / "config.json").write_text("{}")
    with pytest.raises(ModelError, match="not a sentence-transformers model"):
        reg.import_model(not_st)


def test_failed_copy_leaves_no_version(tmp_path: Path, small_model: Path) -> None:
    """A 'disk full' during registration (a real file-size limit) leaves nothing registered, no debris."""
    root = tmp_path / "reg"
    code = (
        "import resource, signal, sys\n"
        "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
        "from embedops.registry import Registry\n"
        "resource.setrlimit(resource.RLIMIT_FSIZE, (1_000_000, 1_000_000))\n"
        f"Registry({str(root)!r}).import_model({str(small_model)!r}, 'm')\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0 and "File too large" in proc.stderr
    reg = Registry(root)
    assert reg.versions() == []
    assert [p.name for p in (root / "m").iterdir()] == []


def test_resolve_model_uses_registry_aliases(tmp_path: Path, small_model: Path, monkeypatch) -> None:
    from functools import partial

    from embedops.models import load_encoder as load
    from embedops.models import resolve_model as resolve
    from embedops.registry import registry_resolver

    root = tmp_path / "reg"
    reg = Registry(root)
    reg.import_model(small_model, "m")
    reg.import_model(small_model, "m")
    reg.promote("m@v2")
    resolve_model = partial(resolve, resolver=registry_resolver(root))
    load_encoder = partial(load, resolver=registry_resolver(root))
    src = resolve_model("champion")
    assert src.path == (root / "m" / "v2").resolve() and src.registry_ref == "m@v2"
    assert resolve_model("m@v1").path == (root / "m" / "v1").resolve()
    assert resolve_model(None).path == bundled_default_path()  # the default is untouched
    assert resolve_model("sentence-transformers/other-model").hf_id == "sentence-transformers/other-model"
    with pytest.raises(ModelError, match="no version 'm@v9'"):
        resolve_model("m@v9")
    # Promote/rollback switch what an encoder loads, by alias, without copying weights.
    weights_before = os.stat(root / "m" / "v1" / "model.safetensors").st_ino
    reg.promote("m@v1")
    enc = load_encoder("champion")
    assert enc.source.path == (root / "m" / "v1").resolve() and enc.name == "m@v1"
    assert os.stat(enc.source.path / "model.safetensors").st_ino == weights_before
    with pytest.raises(ModelError, match="no registry"):
        resolve("m@v1", resolver=registry_resolver(tmp_path / "none"))
    with pytest.raises(ModelError, match="registry"):
        resolve("m@v1")  # no resolver: the models layer knows no registry of its own
