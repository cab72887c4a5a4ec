"""`embedops quantize`: every option checked before any work (one `error: <where>: <what>` line, exit 2, nothing
written), the backend it picks without --backend, and what it says when OpenVINO is missing or the gate refuses."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from embedops.cli.main import app
from embedops.errors import InputError
from embedops.models.openvino_quantize import MIN_CALIBRATION_TEXTS
from embedops.models.quantize import RECOMMENDED_BACKEND, choose_backend, openvino_missing

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"


@pytest.fixture()
def texts(tmp_path, monkeypatch):
    """A working folder holding only 20- and 120-line calibration files."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "few.txt").write_text("".join(f"calibration sentence number {i}\n" for i in range(20)))
    (tmp_path / "many.txt").write_text("".join(f"calibration sentence number {i}\n" for i in range(120)))
    return tmp_path


@pytest.fixture()
def workdir(texts, monkeypatch):
    """`texts`, with a cache inside it that must stay absent (so nothing written shows in the folder listing)."""
    monkeypatch.setenv("EMBEDOPS_CACHE", str(texts / "cache"))
    return texts


BAD = [
    (["--backend", "tensorrt"], "--backend: must be one of onnx, openvino, got 'tensorrt'"),
    (["--method", "fast"], "--method: must be dynamic or static, got 'fast'"),
    (["--backend", "openvino", "--method", "static"], "--method: applies to --backend onnx only"),
    (["--backend", "openvino", "--no-per-channel"], "--per-channel: applies to --backend onnx only"),
    (["--exclude", " "], "--exclude: empty node-name pattern"),
    (["--threads", "0"], "--threads: must be at least 1, got 0"),
    (["--beir", str(DATA / "scifact"), "--beir-queries", "0"], "--beir-queries: must be at least 1, got 0"),
    (["--beir", str(DATA / "scifact"), "--beir-documents", "-3"], "--beir-documents: must be at least 1, got -3"),
    (["--beir-documents", "50"], "--beir-documents: needs --beir"),
    (["--sts-split", "dev"], "--sts-split: needs --sts"),
    (["--sts", str(DATA / "stsbenchmark"), "--sts-split", "nope"], "no pairs for split 'nope'"),
    (["--beir", "missing-folder"], "--beir: no such file or folder: missing-folder"),
    (["--beir", "many.txt"], "--beir: many.txt is a file; give a folder"),
    (["--config", "missing.yaml"], "--config: no such file or folder: missing.yaml"),
    (["--output", "no-such-dir/gate.json"], "--output: folder no-such-dir does not exist"),
    (["--output", "."], "--output: . is a folder"),
    (["--output", "many.txt"], "--output: many.txt is one of the inputs"),
    (["--model", "./no-such-model"], "--model: unknown model './no-such-model': no such folder"),
    (["--backend", "openvino", "--calibration", "few.txt"],
     f"--calibration: static int8 calibration needs at least {MIN_CALIBRATION_TEXTS} non-empty texts, got 20"),
]


@pytest.mark.parametrize(("args", "message"), BAD, ids=[" ".join(a) for a, _ in BAD])
def test_bad_option_exits_2_with_one_line_and_writes_nothing(workdir, args, message):
    calibration = [] if "--calibration" in args else ["--calibration", "many.txt"]
    result = CliRunner().invoke(app, ["quantize", *calibration, *args])
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code == 2, result.output
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], result.output
    assert sorted(p.name for p in workdir.iterdir()) == ["few.txt", "many.txt"]  # no cache, no report


def test_calibration_and_its_source_are_checked(workdir):
    runner = CliRunner()
    result = runner.invoke(app, ["quantize"])
    assert result.exit_code == 2 and "error: --calibration: no calibration texts" in result.output
    result = runner.invoke(app, ["quantize", "--calibration", "missing.txt"])
    assert result.exit_code == 2 and "error: --calibration: no such file or folder" in result.output
    result = runner.invoke(app, ["quantize", "--calibration", str(workdir)])
    assert result.exit_code == 2 and "is a folder; give a file" in result.output
    (workdir / "embedops.yaml").write_text("quantization:\n  calibration_size: 50\n")
    result = runner.invoke(app, ["quantize", "--backend", "openvino", "--calibration", "many.txt"])
    assert result.exit_code == 2, result.output
    assert "error: quantization.calibration_size: 50 is below the 100 texts" in result.output
    assert not (workdir / "cache").exists()


def test_backend_choice_without_backend():
    assert openvino_missing() is None  # this environment has the extra: the recommended backend is reachable
    assert choose_backend(None, calibration_texts=MIN_CALIBRATION_TEXTS) == (RECOMMENDED_BACKEND, None)
    backend, note = choose_backend(None, calibration_texts=40)
    assert backend == "onnx" and f"needs at least {MIN_CALIBRATION_TEXTS} calibration texts, got 40" in note
    assert choose_backend(None, calibration_texts=500, onnx_options=True) == ("onnx", None)
    assert choose_backend("onnx", calibration_texts=500) == ("onnx", None)
    with pytest.raises(InputError, match="must be one of onnx, openvino"):
        choose_backend("tflite", calibration_texts=500)


def _without_openvino(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    """The real CLI in a fresh interpreter where `import openvino` fails, as it does when the extra is missing."""
    code = ("import sys; sys.modules['openvino'] = None; sys.argv = ['embedops', *sys.argv[1:]]; "
            "from embedops.cli.main import run; run()")
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, cwd=cwd,
                          env=os.environ.copy(), timeout=600)


def test_openvino_missing_names_the_extra_and_writes_nothing(workdir):
    out = _without_openvino("quantize", "--backend", "openvino", "--calibration", "many.txt", "-o", "gate.json",
                            cwd=workdir)
    assert out.returncode == 2, out.stderr
    assert "error: --backend openvino: openvino is not installed (pip install 'embedops[openvino]')" in out.stderr
    assert sorted(p.name for p in workdir.iterdir()) == ["few.txt", "many.txt"]


def test_openvino_missing_falls_back_to_onnx_and_a_gate_failure_exits_1(texts):
    # The session's cache (not `workdir`'s), so an ONNX export other tests made is reused.
    workdir = texts
    (workdir / "embedops.yaml").write_text("quantization:\n  min_mean_cosine: 0.9999\n")
    out = _without_openvino("quantize", "--calibration", "many.txt", "-o", "gate.json", cwd=workdir)
    assert out.returncode == 1, out.stderr
    assert "note: using onnx dynamic int8 because openvino is not installed (pip install 'embedops[openvino]')" \
        in out.stderr
    assert "refused" in out.stderr and "mean cosine to float model" in out.stderr
    assert "(by 0.0" in out.stderr and "FAILED by" in out.stdout  # how far below the threshold
    report = json.loads((workdir / "gate.json").read_text())
    assert report["backend"] == "onnx" and report["passed"] is False and report["installed"] is None
