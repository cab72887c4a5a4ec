"""Huge single inputs: cut before tokenisation to what the model reads, with the same vectors and truncation flags.

Every comparison is against the full tokenisation + truncation path of the same encoder (its clipper switched off),
on the real bundled model; the memory check runs a fresh process and measures its peak RSS.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from tokenizers import Tokenizer

from embedops.models.tokenizer import InputClipper

SENTENCE = "The protein binds the receptor and changes the cell's response to insulin. "


def _cases() -> dict[str, str]:
    """Inputs of every awkward shape (each long enough that the encoders cut it, or at the limit)."""
    return {
        "sentences": SENTENCE * 100,
        "300 tokens": "word " * 300,
        "254 tokens (fits)": "word " * 254,
        "255 tokens (one over)": "word " * 255,
        "giant word 1 MB": "a" * 1_000_000,
        "giant word then words": "b" * 50_000 + " then some words" * 200,
        "whitespace then words": " \n\t" * 20_000 + SENTENCE * 50,
        "cjk without spaces": "自然語言處理中文字符漢語" * 500,
        "emoji": "😀🎉👍🏽🇫🇷" * 1_000,
        "combining marks": "e\u0301\u0302n\u0303 " * 1_000,
        "a letter and many marks": "a" + "\u0301" * 20_000 + " end" * 400,
        "control characters": "ab" + "\x01" * 20_000 + "cd " * 400,
        "punctuation run": "x.y,z;" * 2_000,
        "literal special tokens": "[SEP][CLS] [MASK]x" * 500,
    }


@pytest.fixture(scope="module")
def rust_tokenizer(encoder) -> Tokenizer:
    """The bundled model's Rust tokenizer, truncation and padding off."""
    tok = Tokenizer.from_str(encoder.model.tokenizer.backend_tokenizer.to_str())
    tok.no_truncation()
    tok.no_padding()
    return tok


def test_clipped_text_starts_with_the_same_tokens(rust_tokenizer):
    """For every case, window size (default, tiny, small) and token need: the cut text's first `need` tokens are the
    full text's, and it has `need` tokens exactly when the full text has."""
    clippers = [InputClipper(rust_tokenizer, window=window, min_window=16) for window in (0, 48, 300)]
    assert all(c.safe and c.giant_words for c in clippers)
    for name, text in _cases().items():
        full = rust_tokenizer.encode(text, add_special_tokens=False).ids
        for clipper in clippers:
            for need in (1, 7, 255):
                cut = clipper.clip(text, need)
                got = rust_tokenizer.encode(cut, add_special_tokens=False).ids
                where = (name, clipper.window, need)
                assert got[:need] == full[:need], where
                assert (len(got) >= need) == (len(full) >= need), where
                if len(full) < need:
                    assert got == full, where


def test_cut_is_bounded_whatever_the_input(rust_tokenizer):
    """A cut text is a few windows long, whatever the input: whitespace runs, deleted characters, giant words."""
    clipper = InputClipper(rust_tokenizer)
    bound = 4 * clipper.window_for(255)
    for name, text in _cases().items():
        assert len(clipper.clip(text, 255)) <= bound, name


def test_a_tokenizer_outside_the_proven_class_is_not_cut(rust_tokenizer):
    """A normaliser that may rewrite across characters (Replace) turns cutting off: full tokenisation as before."""
    spec = json.loads(rust_tokenizer.to_str())
    spec["normalizer"] = {"type": "Sequence", "normalizers": [
        spec["normalizer"], {"type": "Replace", "pattern": {"String": "ab"}, "content": "x"}]}
    clipper = InputClipper(Tokenizer.from_str(json.dumps(spec)))
    text = SENTENCE * 1_000
    assert not clipper.safe and clipper.clip(text, 255) is text


def _ov_encoder():
    from embedops.models import load_encoder

    return load_encoder(backend="openvino", threads=2)


@pytest.fixture(scope="module", params=["torch", "onnx", "openvino"])
def any_encoder(request, encoder, onnx_encoder):
    """Each backend over the bundled model."""
    if request.param == "torch":
        return encoder
    if request.param == "onnx":
        return onnx_encoder
    pytest.importorskip("openvino")
    return _ov_encoder()


def _reference(enc, texts, monkeypatch):
    """Vectors and usage with cutting off: full tokenisation, then truncation at max_tokens."""
    with monkeypatch.context() as m:
        if enc.backend == "torch":
            m.setattr(enc, "clipper", None)
        else:
            m.setattr(enc.clipper, "safe", False)
        return enc.encode_with_usage(texts, batch_size=4)


def test_vectors_and_truncation_flags_equal_full_tokenisation(any_encoder, monkeypatch):
    """Every backend: same vectors (cosine >= 0.99999) and the same truncated inputs as tokenising whole, with the
    default window and (onnx: the cutting is the same code for all) a tiny one, which sends even the short cases
    through the cutting path."""
    enc = any_encoder
    cases = _cases()
    texts = list(cases.values()) + ["a short sentence", "another one, with punctuation!"]
    ref, ref_usage = _reference(enc, texts, monkeypatch)
    for window in (0, 48) if enc.backend == "onnx" else (0,):
        with monkeypatch.context() as m:
            if window:
                m.setattr(enc.clipper, "window", window)
            vecs, usage = enc.encode_with_usage(texts, batch_size=4)
        cos = np.sum(vecs * ref, axis=1)
        assert cos.min() >= 0.99999, (window, dict(zip(cases, cos, strict=False)))
        assert usage.truncated_indices == ref_usage.truncated_indices, window
        assert usage.tokens == ref_usage.tokens, window
    names = list(cases)
    flagged = {names[i] for i in usage.truncated_indices if i < len(names)}
    assert "255 tokens (one over)" in flagged and "sentences" in flagged
    assert "254 tokens (fits)" not in flagged and "giant word 1 MB" not in flagged  # one [UNK]: it fits


def test_worker_cuts_huge_inputs_too(onnx_encoder, monkeypatch):
    """A model worker runs the cut texts (its callers' tokenisation is the encoder's prepare)."""
    from embedops.models.worker import ModelWorker

    texts = [SENTENCE * 20_000, "a" * 500_000, "short text"]
    ref, _ = _reference(onnx_encoder, texts, monkeypatch)
    with ModelWorker(onnx_encoder, threads=2) as worker:
        vecs, usage = worker.encode_with_usage(texts)
    assert np.sum(vecs * ref, axis=1).min() >= 0.99999
    assert usage.truncated_indices == (0,)  # the giant word is one [UNK]: it fits


_CHILD = textwrap.dedent("""
    import json, resource, sys, time
    from pathlib import Path

    def hwm():  # peak RSS since the last clear_refs (ru_maxrss also keeps exited threads' peaks: no reset for it)
        line = next(x for x in Path("/proc/self/status").read_text().splitlines() if x.startswith("VmHWM:"))
        return int(line.split()[1]) / 1024
    from embedops.models import load_encoder

    text = ("The protein binds the receptor and changes the cell's response to insulin. " * 270_000)[:20_000_000]
    giant = "a" * 20_000_000
    out = {}
    for backend in ("onnx", "torch"):
        enc = load_encoder(backend=backend, **({"threads": 2} if backend == "onnx" else {}))
        enc.encode(["warm up"])
        for name, big in (("words", text), ("giant", giant)):
            rss = int(Path("/proc/self/statm").read_text().split()[1]) * resource.getpagesize() / 2**20
            Path("/proc/self/clear_refs").write_text("5")  # reset the peak: only this encode's own
            started = time.perf_counter()
            _, usage = enc.encode_with_usage([big])
            peak = hwm()
            out[f"{backend}/{name}"] = {"extra_mb": peak - rss, "seconds": time.perf_counter() - started,
                                        "truncated": usage.truncated}
    print(json.dumps(out))
""")


def test_a_20_mb_text_encodes_in_bounded_memory_and_seconds():
    """A fresh process encodes a 20 MB text (words, and one giant word) with onnx and torch: the peak RSS grows by
    tens of MB at most (tokenising it whole took GBs) and each encode takes seconds."""
    done = subprocess.run([sys.executable, "-c", _CHILD], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    for key, row in result.items():
        assert row["truncated"] == (0 if key.endswith("giant") else 1), key  # a giant word is one [UNK]
        assert row["extra_mb"] < 64, (key, row)
        assert row["seconds"] < 10, (key, row)
