"""The shared pipeline: length-sorted batches under a token budget, no padding beyond a batch's longest text,
tokenising once, Matryoshka truncation, int8/binary output (checked through the real onnx backend), and each call's
own usage with running totals kept under a lock."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from embedops.errors import InputError
from embedops.models import plan_batches
from embedops.models.base import Encoder, EncodeStats, InputKind, OutputPrecision, Usage, quantize_output

LONG = "Transformers truncate long inputs at the model's maximum length, special tokens included. " * 40


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


def test_old_names_stay_importable_and_the_protocol_is_the_ground_floor_one(onnx_encoder):
    from embedops import protocols

    assert Encoder is protocols.Encoder and Usage is protocols.Usage
    assert InputKind is protocols.InputKind and OutputPrecision is protocols.OutputPrecision
    assert isinstance(onnx_encoder, Encoder) and isinstance(onnx_encoder.stats, EncodeStats)


def test_each_call_gets_its_own_usage_while_other_threads_encode(onnx_encoder):
    lengths = onnx_encoder.token_lengths(["short text", LONG, "another one"])
    mine: dict[int, Usage] = {}
    start = threading.Barrier(6)

    def call(i: int) -> None:
        start.wait()
        for _ in range(5):
            # Thread 0 sends a long text in position 1; the others only short ones, at the same time.
            texts = ["short text", LONG, "another one"] if i == 0 else ["short text", "another one"]
            _, mine[i] = onnx_encoder.encode_with_usage(texts)

    before = onnx_encoder.stats
    threads = [threading.Thread(target=call, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert mine[0].truncated == 1 and mine[0].truncated_indices == (1,) and mine[0].inputs == 3
    assert mine[0].tokens == int(np.minimum(lengths, onnx_encoder.max_tokens).sum())
    for i in range(1, 6):
        assert mine[i].truncated == 0 and mine[i].truncated_indices == () and mine[i].inputs == 2
        assert mine[i].tokens == int(lengths[[0, 2]].sum())
    after = onnx_encoder.stats  # running totals: every call counted exactly once, under the lock
    assert after.inputs - before.inputs == 5 * 3 + 25 * 2
    assert after.truncated - before.truncated == 5 and onnx_encoder.truncated_count == after.truncated


def test_stats_is_a_snapshot(onnx_encoder):
    snap = onnx_encoder.stats
    snap.truncated += 1000  # changes the copy only
    assert onnx_encoder.stats.truncated == onnx_encoder.truncated_count != snap.truncated
    usage = onnx_encoder.encode_with_usage([])[1]
    assert usage == Usage() and usage.as_dict()["truncated_indices"] == []


def test_batches_cut_by_padding_and_call_cost():
    lengths = [8, 9, 9, 10, 12, 12, 14, 60]
    batches = plan_batches(lengths, batch_size=64, max_batch_tokens=4096, batch_overhead_tokens=12)
    assert sorted(np.concatenate([b.indices for b in batches]).tolist()) == list(range(8))
    assert [lengths[i] for i in batches[0].indices] == [60]  # the long text alone: 7 short ones are not padded to 60

    def cost(bs):
        return sum(12 + len(b.indices) * max(lengths[i] for i in b.indices) for b in bs)

    assert cost(batches) < cost(plan_batches(lengths, batch_size=64, max_batch_tokens=4096))
    same = plan_batches([10] * 100, batch_size=32, batch_overhead_tokens=12)
    assert [len(b.indices) for b in same] == [4, 32, 32, 32] and len(plan_batches([], 4, None, 12)) == 0
