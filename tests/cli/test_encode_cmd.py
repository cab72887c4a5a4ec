"""`embedops encode`: vectors written as .npy with the requested options; bad input exits 2, nothing written."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np


def _run(*args: str, cwd) -> subprocess.CompletedProcess:
    exe = os.path.join(os.path.dirname(sys.executable), "embedops")
    return subprocess.run([exe, "encode", *args], capture_output=True, text=True, cwd=cwd, env=os.environ.copy())


def test_encode_writes_vectors_with_options(tmp_path):
    src = tmp_path / "texts.txt"
    src.write_text("a first sentence\n\nanother, longer sentence about vectors\nthird\n")
    out = tmp_path / "vecs.npy"
    res = _run(str(src), "-o", str(out), "--backend", "onnx", "--truncate-dim", "64", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    vecs = np.load(out)
    assert vecs.shape == (3, 64) and vecs.dtype == np.float32
    assert np.allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-5)
    assert "3 texts" in res.stdout and "tokens/s" in res.stdout


def test_encode_bad_input_exits_2_and_writes_nothing(tmp_path):
    out = tmp_path / "vecs.npy"
    res = _run(str(tmp_path / "missing.txt"), "-o", str(out), cwd=tmp_path)
    assert res.returncode == 2 and "does not exist" in res.stderr and res.stderr.count("\n") == 1
    src = tmp_path / "texts.txt"
    src.write_text("one text\n")
    res = _run(str(src), "-o", str(tmp_path / "vecs.csv"), cwd=tmp_path)
    assert res.returncode == 2 and ".npy" in res.stderr
    res = _run(str(src), "-o", str(out), "--quantization", "int8", cwd=tmp_path)
    assert res.returncode == 2 and "onnx backend only" in res.stderr
    assert not out.exists()
