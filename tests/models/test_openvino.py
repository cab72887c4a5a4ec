"""The openvino backend: equal to ONNX fp32, NNCF static int8 through the gate, IR cache, spec round trip, errors."""

from __future__ import annotations

import sys

import numpy as np
import pytest

pytest.importorskip("openvino")
pytest.importorskip("nncf")

from embedops.errors import InputError, MissingDependencyError, ModelError  # noqa: E402
from embedops.models import encoder_from_spec, load_encoder  # noqa: E402
from embedops.models.identity import weights_hash  # noqa: E402
from embedops.models.openvino_backend import int8_ir_status, ir_root  # noqa: E402
from embedops.models.openvino_quantize import MIN_CALIBRATION_TEXTS, quantize_openvino  # noqa: E402

LONG = "Transformers truncate long inputs at the model's maximum length, special tokens included. " * 40


@pytest.fixture(scope="module")
def ov_fp32():
    """The bundled model through the openvino backend (fp32)."""
    return load_encoder(backend="openvino", threads=2)


@pytest.fixture(scope="module")
def calibration(shared_data):
    """150 STS-B train sentences (what a caller without data of its own passes)."""
    from embedops.data import load_sts

    train = load_sts(shared_data / "stsbenchmark", "train")
    return list(dict.fromkeys(train.sentences1))[:150]


@pytest.fixture(scope="module")
def accepted(ov_fp32, calibration):
    """The default model quantised with NNCF and accepted by the gate."""
    return quantize_openvino(None, calibration=calibration, threads=2)


def test_fp32_equals_onnx_fp32(ov_fp32, onnx_encoder, sts_test):
    texts = sts_test.sentences1[:150] + sts_test.sentences2[:50] + [LONG, "x"]
    ours = ov_fp32.encode(texts, batch_size=32)
    ref = onnx_encoder.encode(texts, batch_size=32)
    assert ours.dtype == np.float32 and ours.shape == (202, 384)
    assert np.min(np.sum(ours * ref, axis=1)) >= 0.9999
    assert ov_fp32.encode([LONG]).shape == (1, 384) and ov_fp32.stats.truncated >= 1


def test_ir_is_cached_beside_the_export_not_in_the_model_folder(ov_fp32):
    from embedops._io import cache_root

    model_dir = ov_fp32.source.path
    before = weights_hash(model_dir)
    files = sorted(p.name for p in model_dir.rglob("*"))
    root = ir_root(ov_fp32.exported)
    assert root == cache_root() / "openvino" / ov_fp32.exported.fingerprint
    xml = root / "fp32" / "model.xml"
    mtime = xml.stat().st_mtime_ns
    again = load_encoder(backend="openvino", threads=2)
    assert again.ir_path == xml and xml.stat().st_mtime_ns == mtime  # reused, not converted again
    assert weights_hash(model_dir) == before and sorted(p.name for p in model_dir.rglob("*")) == files


def test_damaged_ir_is_converted_again(ov_fp32, sts_test):
    xml = ir_root(ov_fp32.exported) / "fp32" / "model.bin"
    data = bytearray(xml.read_bytes())
    data[len(data) // 2 : len(data) // 2 + 64] = b"\x00" * 64
    xml.write_bytes(bytes(data))
    fresh = load_encoder(backend="openvino", threads=2)
    texts = sts_test.sentences1[:10]
    assert np.min(np.sum(fresh.encode(texts) * ov_fp32.encode(texts), axis=1)) >= 0.9999


def test_spec_round_trip_and_fingerprints(ov_fp32, onnx_encoder):
    spec = ov_fp32.spec()
    assert spec["backend"] == "openvino" and spec["quantization"] == "none"
    again = encoder_from_spec(spec, threads=2)
    assert again.fingerprint == ov_fp32.fingerprint
    assert ov_fp32.fingerprint != onnx_encoder.fingerprint  # another runtime is another vector space identity


def test_int8_passes_the_gate_and_stays_close(accepted, ov_fp32, sts_test):
    assert accepted.passed and accepted.installed, [c.line() for c in accepted.checks]
    info, _ = int8_ir_status(ov_fp32.exported)
    assert info is not None and info["gate"]["passed"] is True
    int8 = load_encoder(backend="openvino", quantization="int8", threads=2)
    texts = sts_test.sentences1[:200]
    cos = np.sum(int8.encode(texts) * ov_fp32.encode(texts), axis=1)
    assert cos.mean() >= 0.99 and cos.min() < 0.99999  # close to float, but really quantised
    spec = int8.spec()
    assert spec["quantization"] == "int8"
    assert encoder_from_spec(spec, threads=2).fingerprint == int8.fingerprint != ov_fp32.fingerprint
    assert not list(ir_root(ov_fp32.exported).glob(".*candidate*"))


def test_gate_failure_refuses_and_keeps_the_accepted_model(accepted, calibration):
    from embedops.config.schema import QuantizationGate

    info_before, _ = int8_ir_status(load_encoder(backend="openvino", threads=2).exported)
    report = quantize_openvino(None, calibration=calibration, threads=2,
                               gate=QuantizationGate(min_mean_cosine=0.99999))
    assert not report.passed and report.installed is None
    failed = report.failures[0]
    assert failed.name == "mean cosine to float model" and "FAILED by" in failed.line()
    exported = load_encoder(backend="openvino", threads=2).exported
    assert int8_ir_status(exported)[0]["ir_hash"] == info_before["ir_hash"]
    assert not list(ir_root(exported).glob(".*candidate*"))


def test_too_small_calibration_is_refused_naming_the_minimum(calibration):
    with pytest.raises(InputError, match=f"at least {MIN_CALIBRATION_TEXTS} non-empty texts, got 20"):
        quantize_openvino(None, calibration=calibration[:20] + ["  "])


def test_int8_without_an_accepted_model_and_unknown_options(accepted, ov_fp32):
    int8_dir = ir_root(ov_fp32.exported) / "int8"
    aside = int8_dir.with_name("int8-aside")
    int8_dir.rename(aside)
    try:
        with pytest.raises(ModelError, match="no usable int8 OpenVINO model") as info:
            load_encoder(backend="openvino", quantization="int8")
        assert "embedops quantize --backend openvino" in (info.value.hint or "")
    finally:
        aside.rename(int8_dir)
    with pytest.raises(ModelError, match="unknown quantization"):
        load_encoder(backend="openvino", quantization="int4")
    with pytest.raises(ModelError, match="unknown performance hint"):
        load_encoder(backend="openvino", hint="FASTEST")


def test_missing_openvino_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "openvino", None)  # importing it now raises ImportError
    with pytest.raises(MissingDependencyError) as info:
        load_encoder(backend="openvino")
    assert "embedops[openvino]" in (info.value.hint or "")


def test_cli_without_backend_uses_openvino(accepted, calibration, tmp_path, monkeypatch):
    """With the extra installed and >= 100 texts, `embedops quantize` picks the recommended backend by itself."""
    import json

    from typer.testing import CliRunner

    from embedops.cli.main import app
    from embedops.models.quantize import RECOMMENDED_BACKEND

    assert RECOMMENDED_BACKEND == "openvino"
    monkeypatch.chdir(tmp_path)
    (tmp_path / "texts.txt").write_text("\n".join(calibration[:MIN_CALIBRATION_TEXTS + 10]) + "\n")
    result = CliRunner().invoke(app, ["quantize", "--calibration", "texts.txt", "--threads", "2", "-o", "gate.json"])
    assert result.exit_code == 0, result.output
    assert "use it with backend openvino, quantization int8" in " ".join(result.output.split())
    assert "note:" not in result.output  # nothing was passed over
    report = json.loads((tmp_path / "gate.json").read_text())
    assert report["backend"] == "openvino" and report["passed"] and report["recipe"]["method"] == "static-nncf"
    assert report["calibration_texts"] == MIN_CALIBRATION_TEXTS + 10
    assert report["installed"] == str(ir_root(load_encoder(backend="openvino", threads=2).exported) / "int8"
                                      / "model.xml")
