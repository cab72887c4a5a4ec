"""The shared pipeline: length-sorted batches under a token budget, no padding beyond a batch's longest text,
tokenising once, Matryoshka truncation and int8/binary output (checked through the real onnx backend)."""

from __future__ import annotations

import numpy as np
import pytest

from embedops.errors import InputError
from embedops.models import plan_batches
from embedops.models.base import quantize_output


def test_batches_are_length_sorted_and_respect_the_token_budget():
    lengths = [5, 300, 12, 12, 80, 7, 256, 30]
    batches = plan_batches(lengths, batch_size=4, max_batch_tokens=512)
    seen = np.concatenate([b.indices for b in batches])
    assert sorted(seen.tolist()) == list(range(len(lengths)))  # every input exactly once
    longest = [max(lengths[i] for i in b.indices) for b in batches]
    assert longest == sorted(longest, reverse=True)
    for b in batches:  # padded size (rows x longest) stays within the budget unless a single text exceeds it
        assert len(b.indices) * max(lengths[i] for i in b.indices) <= 512 or len(b.indices) == 1
    assert max(len(b.indices) for b in batches) == 4
    with pytest.raises(InputError, match="batch_size"):
        plan_batches(lengths, batch_size=0)


def test_no_padding_beyond_the_batch_maximum(onnx_encoder):
    texts = ["one", "two words", "a sentence with quite a few more words in it", "short again"]
    lengths, encs = onnx_encoder.tokenize_all(texts)
    widths = []
    real = onnx_encoder.session

    class Recorder:  # the real session, with the widths it was fed written down
        def run(self, outputs, feed):
            widths.append((feed["input_ids"].shape[1], feed["attention_mask"].sum(axis=1).max()))
            return real.run(outputs, feed)

    onnx_encoder.session = Recorder()
    try:
        onnx_encoder.encode(texts, batch_size=2)
    finally:
        onnx_encoder.session = real
    assert len(widths) == 2
    assert all(width == longest for width, longest in widths)
    assert sorted(w for w, _ in widths) == sorted(np.sort(lengths)[::-1][[0, 2]].tolist())


def test_texts_are_tokenised_once_per_encode(onnx_encoder):
    calls = []
    real = onnx_encoder._tokenize

    def counting(texts):
        calls.append(len(texts))
        return real(texts)

    onnx_encoder._tokenize = counting
    try:
        onnx_encoder.encode(["alpha", "beta gamma", "delta"] * 5, batch_size=4)
    finally:
        del onnx_encoder._tokenize
    assert calls == [15]


def test_matryoshka_truncation_renormalises(onnx_encoder):
    from embedops.models import load_encoder

    full = onnx_encoder.encode(["vector search with fewer dimensions"])
    short_enc = load_encoder(backend="onnx", truncate_dim=64, threads=2)
    short = short_enc.encode(["vector search with fewer dimensions"])
    assert short.shape == (1, 64) and short_enc.output_dimension == 64
    assert np.allclose(short[0], full[0, :64] / np.linalg.norm(full[0, :64]), atol=1e-5)


def test_int8_and_binary_output(onnx_encoder):
    texts = ["first text", "second text", "a third, different text", "and a fourth"]
    vecs = onnx_encoder.encode(texts)
    i8 = onnx_encoder.encode(texts, precision="int8")
    assert i8.dtype == np.int8 and i8.shape == (4, 384)
    ub = onnx_encoder.encode(texts, precision="ubinary")
    assert ub.dtype == np.uint8 and ub.shape == (4, 48)
    assert np.array_equal(np.unpackbits(ub, axis=1).astype(bool), vecs > 0)  # one bit per dimension: its sign
    assert quantize_output(vecs, "float32") is vecs
