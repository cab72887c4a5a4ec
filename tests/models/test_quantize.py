"""int8 quantisation: exports first when needed, the quality gate accepts or refuses, the CLI reports and exits."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from embedops.config.schema import QuantizationGate
from embedops.errors import InputError
from embedops.models.quantize import GateCheck, _neighbour_agreement, quantize_model


@pytest.fixture(scope="module")
def fresh_cache(tmp_path_factory):
    """A cache with no ONNX export at all, so quantising must export first."""
    old = os.environ.get("EMBEDOPS_CACHE")
    path = tmp_path_factory.mktemp("quantize-cache")
    os.environ["EMBEDOPS_CACHE"] = str(path)
    yield path
    os.environ["EMBEDOPS_CACHE"] = old or ""


@pytest.fixture(scope="module")
def calibration(shared_data):
    """60 STS-B dev sentences."""
    from embedops.data import load_sts

    dev = load_sts(shared_data / "stsbenchmark", "dev")
    return list(dict.fromkeys(dev.sentences1 + dev.sentences2))[:60]


@pytest.fixture(scope="module")
def accepted(fresh_cache, calibration):
    """The default model quantised and accepted in the fresh cache."""
    assert not (fresh_cache / "onnx").exists()
    return quantize_model(None, calibration=calibration)


def test_quantising_without_an_export_exports_first_and_installs(accepted, fresh_cache):
    from embedops.models import load_encoder

    assert accepted.passed and accepted.installed
    # It really exported: the cache held no export before (see the fixture) and holds the float model now.
    assert accepted.seconds["export"] > 0
    assert list(fresh_cache.glob("onnx/*/model.onnx"))
    names = {c.name for c in accepted.checks}
    assert {"mean cosine to float model", "minimum cosine to float model", "10-nearest-neighbour agreement"} <= names
    int8 = load_encoder(backend="onnx", quantization="int8", threads=2)
    fp32 = load_encoder(backend="onnx", threads=2)
    assert str(int8.exported.int8_path) == accepted.installed
    texts = ["A man is playing a guitar.", "The stock market fell sharply today.", "Cats sleep most of the day."]
    cos = np.sum(int8.encode(texts) * fp32.encode(texts), axis=1)
    assert cos.min() > 0.97 and cos.min() < 0.99999  # close to float, but really quantised
    assert int8.exported.manifest["int8"]["passed"] is True


def test_gate_failure_refuses_and_keeps_the_accepted_model(accepted, calibration, sts_test):
    from embedops.data.sts import StsPairs
    from embedops.models.export import ensure_export, file_sha256

    exported = ensure_export(None)
    before = file_sha256(exported.int8_path)
    from embedops.eval.quant_gate import metric_checks

    strict = QuantizationGate(min_mean_cosine=0.99999, max_metric_drop=0.0)
    small_sts = StsPairs(sts_test.sentences1[:40], sts_test.sentences2[:40], sts_test.scores[:40])
    report = quantize_model(None, calibration=calibration, gate=strict,
                            extra_checks=metric_checks(sts=small_sts, gate=strict))
    assert not report.passed and report.installed is None
    failed = {c.name for c in report.failures}
    assert "mean cosine to float model" in failed
    assert "STS Spearman drop" in {c.name for c in report.checks}  # the eval-side check ran through the hook
    mean = next(c for c in report.checks if c.name == "mean cosine to float model")
    assert mean.margin < 0 and "FAILED by" in mean.line()
    assert file_sha256(exported.int8_path) == before
    assert not list(exported.folder.glob(".*candidate*"))


def test_gate_check_arithmetic():
    low = GateCheck("x", 0.98, 0.99, "at least")
    assert not low.passed and low.margin == pytest.approx(-0.01)
    drop = GateCheck("drop", 0.002, 0.005, "at most")
    assert drop.passed and drop.margin == pytest.approx(0.003)
    a = np.eye(12, dtype=np.float32)
    assert _neighbour_agreement(a, a) == 1.0


def test_too_little_calibration_is_bad_input():
    with pytest.raises(InputError, match="at least 2"):
        quantize_model(None, calibration=["only one", "   "])


def _cli(*args: str, cwd) -> subprocess.CompletedProcess:
    exe = os.path.join(os.path.dirname(sys.executable), "embedops")
    return subprocess.run([exe, "quantize", *args], capture_output=True, text=True, cwd=cwd, env=os.environ.copy())


def test_cli_gate_failure_exits_1_with_the_failed_check(accepted, tmp_path, calibration):
    cal = tmp_path / "calibration.txt"
    cal.write_text("\n".join(calibration[:30]) + "\n")
    (tmp_path / "embedops.yaml").write_text("quantization:\n  min_min_cosine: 0.9999\n")
    out = _cli("--calibration", str(cal), "--output", str(tmp_path / "gate.json"), cwd=tmp_path)
    assert out.returncode == 1, out.stderr
    assert "refused" in out.stderr and "minimum cosine to float model" in out.stderr
    assert "FAILED by" in out.stdout
    assert (tmp_path / "gate.json").is_file()


def test_cli_bad_input_exits_2(tmp_path):
    out = _cli(cwd=tmp_path)
    assert out.returncode == 2 and "no calibration texts" in out.stderr
    one = tmp_path / "one.txt"
    one.write_text("just one line\n")
    out = _cli("--calibration", str(one), cwd=tmp_path)
    assert out.returncode == 2 and "at least 2" in out.stderr
    (tmp_path / "embedops.yaml").write_text("quantization:\n  min_mean_cosine: 2\n")
    out = _cli("--calibration", str(one), cwd=tmp_path)
    assert out.returncode == 2 and "quantization.min_mean_cosine" in out.stderr


def test_quantize_file_leaves_the_root_logger_alone(accepted, tmp_path):
    import logging

    from embedops.models.export import ensure_export
    from embedops.models.quantize import quantize_file

    root = logging.getLogger()
    old = root.level
    # Whatever an earlier in-process CLI call (quiet_libraries) left on onnxruntime's logger must be left as it was.
    ort_level = logging.getLogger("onnxruntime").level
    root.setLevel(logging.INFO)
    try:
        quantize_file(ensure_export(None).fp32_path, tmp_path / "int8.onnx")
        assert root.level == logging.INFO and not root.filters  # was: set to ERROR for the whole process
        assert logging.getLogger("onnxruntime").level == ort_level
    finally:
        root.setLevel(old)
    assert (tmp_path / "int8.onnx").stat().st_size > 0


def test_int8_spec_round_trips(accepted):
    from embedops.models import encoder_from_spec, load_encoder

    int8 = load_encoder(backend="onnx", quantization="int8", truncate_dim=64, threads=2)
    spec = int8.spec()
    assert spec["quantization"] == "int8" and spec["truncate_dim"] == 64 and spec["output_dimension"] == 64
    fp32 = load_encoder(backend="onnx", truncate_dim=64, threads=2)
    assert fp32.weights_hash == int8.weights_hash and fp32.fingerprint != int8.fingerprint
    again = encoder_from_spec(spec)
    assert again.quantization == "int8" and again.spec() == spec
    texts = ["A man is playing a guitar.", "The stock market fell sharply today."]
    assert np.allclose(again.encode(texts), int8.encode(texts), atol=1e-6)


def test_cli_unknown_backend_exits_2_before_any_work(tmp_path):
    texts = tmp_path / "texts.txt"
    texts.write_text("first text\nsecond text\n")
    out = _cli("--calibration", str(texts), "--backend", "tensorrt", cwd=tmp_path)
    assert out.returncode == 2 and "error: --backend: must be one of onnx, openvino, got 'tensorrt'" in out.stderr
    assert list(tmp_path.iterdir()) == [texts]  # nothing written
