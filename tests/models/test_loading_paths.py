"""Real loading code for folders and Hugging Face ids, exercised offline."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap

import numpy as np

from embedops.models import bundled_default_path, load_encoder


def test_a_sentence_transformers_folder_loads_by_path(tmp_path, encoder):
    folder = tmp_path / "my-model"
    shutil.copytree(bundled_default_path(), folder)
    enc = load_encoder(str(folder))
    assert enc.name == "my-model"
    a, b = enc.encode(["vector databases"]), encoder.encode(["vector databases"])
    assert float(np.dot(a[0], b[0])) > 0.9999


def test_a_hugging_face_id_loads_from_the_local_hub_cache(tmp_path):
    # Lay the bundled files out as the hub cache does, then load by id with HF_HUB_OFFLINE=1:
    # the same code path a user's `--model org/name` takes, without a network.
    snap = tmp_path / "hub" / "models--acme--minilm-copy" / "snapshots" / "0123456789abcdef"
    shutil.copytree(bundled_default_path(), snap)
    (tmp_path / "hub" / "models--acme--minilm-copy" / "refs").mkdir()
    (tmp_path / "hub" / "models--acme--minilm-copy" / "refs" / "main").write_text("0123456789abcdef")
    code = textwrap.dedent("""
        from embedops.models import load_encoder
        enc = load_encoder("acme/minilm-copy")
        print(enc.name, enc.dimension, enc.encode(["hello"]).shape)
    """)
    env = {**os.environ, "HF_HUB_CACHE": str(tmp_path / "hub"), "HF_HUB_OFFLINE": "1"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "acme/minilm-copy 384 (1, 384)" in out.stdout
