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


def test_one_torch_encoder_is_safe_from_many_threads(encoder):
    """8 threads x 20 calls on one encoder while the same threads chunk with `encoder.tokenizer`.

    Before the fix, calls flipped the shared fast tokenizer's truncation/padding: 'Unable to create tensor' (ragged
    batch) or 'Already borrowed' a few times in every such run.
    """
    import sys
    import threading

    from embedops.data.chunk import chunk_text

    words = "the quick brown fox jumps over the lazy dog".split()
    calls = [[" ".join(words[: 1 + (i * 7 + k * 3) % 9]) * (1 + k * (i % 3)) for k in range(3)] for i in range(160)]
    doc = "Vector search finds the nearest documents to a query embedding. " * 15
    expected_chunks = chunk_text(doc, encoder.tokenizer, max_tokens=32, overlap=8)
    ref = {i: encoder.encode(texts) for i, texts in enumerate(calls)}
    got: dict[int, np.ndarray] = {}
    errors: list[BaseException] = []
    start = threading.Barrier(8)

    def work(t: int) -> None:
        start.wait()
        for j in range(20):
            try:
                got[t * 20 + j] = encoder.encode(calls[t * 20 + j])
                for _ in range(10):  # counting/chunking between encodes, as an indexing thread does
                    assert chunk_text(doc, encoder.tokenizer, max_tokens=32, overlap=8) == expected_chunks
            except BaseException as exc:  # noqa: BLE001 - collected and asserted below
                errors.append(exc)

    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)  # switch threads often, so interleavings a server sees over hours happen here
    try:
        threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
    finally:
        sys.setswitchinterval(old)
    assert not errors, errors[:3]
    assert len(got) == 160
    for i, vecs in got.items():
        assert np.min(np.sum(vecs * ref[i], axis=1)) >= 0.99999
