"""The torch backend against sentence-transformers called directly, truncation reporting, and loading errors."""

from __future__ import annotations

import numpy as np
import pytest

from embedops.errors import InputError, ModelError
from embedops.models import load_encoder, resolve_model


def test_matches_sentence_transformers_exactly(encoder, shared_data):
    from sentence_transformers import SentenceTransformer

    from embedops.data import load_sts

    pairs = load_sts(shared_data / "stsbenchmark", "test")
    texts = pairs.sentences1[:64] + ["a much longer input " * 80]
    ours = encoder.encode(texts, batch_size=16)
    st = SentenceTransformer(str(encoder.source.path), device="cpu")
    ref = st.encode(texts, batch_size=16, normalize_embeddings=True)
    assert ours.dtype == np.float32 and ours.shape == (65, 384)
    assert np.min(np.sum(ours * ref, axis=1)) >= 0.9999
    assert np.allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-5)


def test_truncation_is_counted(encoder):
    before = encoder.truncated_count
    encoder.encode(["short", "long " * 600, "also long " * 400])
    assert encoder.truncated_count - before == 2


def test_order_is_preserved_under_length_sorting(encoder):
    texts = ["b " * 50, "a", "c " * 10]
    together = encoder.encode(texts)
    one_by_one = np.vstack([encoder.encode([t]) for t in texts])
    assert np.allclose(together, one_by_one, atol=1e-5)


def test_matryoshka_and_quantised_output(encoder):
    full = encoder.encode(["vector search"], normalize=True)
    binary = encoder.encode(["vector search"], precision="binary")
    assert binary.shape == (1, 48) and binary.dtype == np.int8
    enc = load_encoder(truncate_dim=128)
    short = enc.encode(["vector search"])
    assert short.shape == (1, 128)
    assert np.allclose(short[0], full[0, :128] / np.linalg.norm(full[0, :128]), atol=1e-5)


def test_bad_inputs(encoder):
    with pytest.raises(InputError, match="input 1 is empty"):
        encoder.encode(["ok", "   "])
    with pytest.raises(InputError, match="single string"):
        encoder.encode("not a list")
    with pytest.raises(InputError, match="input 0 is int"):
        encoder.encode([3])


def test_unknown_models_are_named(tmp_path):
    with pytest.raises(ModelError, match="no-such-org/no-such-model"):
        load_encoder("no-such-org/no-such-model")
    (tmp_path / "notamodel").mkdir()
    with pytest.raises(ModelError, match="not a model folder"):
        resolve_model(tmp_path / "notamodel")
    with pytest.raises(ModelError, match="unknown backend"):
        load_encoder(backend="tensorrt")
