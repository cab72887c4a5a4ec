"""The onnx backend: equality with sentence-transformers, the export cache and its fingerprint, damaged files."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from embedops.errors import ModelError
from embedops.models import load_encoder, resolve_model
from embedops.models.export import (
    FP32_FILE,
    MANIFEST,
    ensure_export,
    export_folder,
    file_sha256,
    source_fingerprint,
    verify_export,
)

LONG = "Transformers truncate long inputs at the model's maximum length, special tokens included. " * 40


def test_matches_sentence_transformers(onnx_encoder, encoder, sts_test):
    texts = sts_test.sentences1[:80] + sts_test.sentences2[:20] + [LONG, "x"]
    ours = onnx_encoder.encode(texts, batch_size=16)
    ref = encoder.encode(texts, batch_size=16)
    assert ours.dtype == np.float32 and ours.shape == (102, 384)
    assert np.min(np.sum(ours * ref, axis=1)) >= 0.9999


def test_token_ids_equal_sentence_transformers(onnx_encoder, encoder, sts_test):
    texts = sts_test.sentences1[:30] + [LONG, "Ünïcödé ACCENTS and  double  spaces"]
    feats = encoder.model.tokenize(texts)
    _, encs = onnx_encoder.tokenize_all(texts)
    feed = onnx_encoder.feed(encs)
    assert np.array_equal(feed["input_ids"], feats["input_ids"].numpy())
    assert np.array_equal(feed["attention_mask"], feats["attention_mask"].numpy())
    assert feed["input_ids"].shape[1] == 256  # the long text is cut at max_tokens, [SEP] kept last
    assert feed["input_ids"][len(texts) - 2, -1] == 102


def test_truncation_order_and_output_options(onnx_encoder):
    before = onnx_encoder.truncated_count
    texts = ["b " * 50, "a", LONG, "c " * 10]
    together = onnx_encoder.encode(texts, batch_size=2)
    assert onnx_encoder.truncated_count - before == 1
    one_by_one = np.vstack([onnx_encoder.encode([t]) for t in texts])
    assert np.allclose(together, one_by_one, atol=1e-5)
    binary = onnx_encoder.encode(texts, precision="binary")
    assert binary.shape == (4, 48) and binary.dtype == np.int8


def test_export_is_cached_and_reused(onnx_encoder):
    first = ensure_export(onnx_encoder.source)
    mtime = first.fp32_path.stat().st_mtime_ns
    again = ensure_export(onnx_encoder.source)
    assert again.folder == first.folder and again.fp32_path.stat().st_mtime_ns == mtime
    manifest = json.loads((first.folder / MANIFEST).read_text())
    assert manifest["fingerprint"] == source_fingerprint(onnx_encoder.source) == first.folder.name
    assert manifest["files"][FP32_FILE] == file_sha256(first.fp32_path)
    assert manifest["opset"] == 17 and manifest["dimension"] == 384 and manifest["max_tokens"] == 256


def test_every_model_exports_to_the_cache_keyed_by_content(tmp_path):
    from embedops._io import cache_root

    bundled = resolve_model(None)
    fp = source_fingerprint(bundled)
    assert export_folder(bundled, fp) == cache_root() / "onnx" / fp
    local = tmp_path / "my-model"
    local.mkdir()
    (local / "config.json").write_text("{}")
    (local / "model.safetensors").write_bytes(b"weights-v1")
    src = resolve_model(str(local))
    # A writable user folder (a registry version, say) is not written into either: that would change its identity.
    assert export_folder(src, source_fingerprint(src)) == cache_root() / "onnx" / source_fingerprint(src)
    moved = tmp_path / "moved"
    shutil.copytree(local, moved)
    assert source_fingerprint(resolve_model(str(moved))) == source_fingerprint(src)  # same content, same export
    before = source_fingerprint(src)
    (local / "model.safetensors").write_bytes(b"weights-v2")
    assert source_fingerprint(src) != before  # new weights -> the old export is stale


def test_chunking_with_the_onnx_tokenizer_equals_the_torch_one(onnx_encoder, encoder):
    from embedops.data.chunk import chunk_text

    text = LONG + " Ünïcödé ACCENTS and  double  spaces, then (brackets) and numbers 3.14159."
    for size, overlap in ((32, 8), (64, 0), (200, 32)):
        ours = chunk_text(text, onnx_encoder.tokenizer, max_tokens=size, overlap=overlap)
        assert ours == chunk_text(text, encoder.tokenizer, max_tokens=size, overlap=overlap) and len(ours) > 1
    for kwargs in ({"add_special_tokens": False, "return_offsets_mapping": True, "truncation": False},
                   {"truncation": True, "max_length": 16}, {}):
        hf = encoder.tokenizer(["a sentence", text], verbose=False, **kwargs)
        assert onnx_encoder.tokenizer(["a sentence", text], **kwargs) == {k: hf[k] for k in hf}
        assert onnx_encoder.tokenizer("a sentence", **kwargs) == dict(encoder.tokenizer("a sentence", **kwargs))


def test_damaged_export_is_detected_and_exported_again(onnx_encoder, sts_test):
    exported = ensure_export(onnx_encoder.source)
    data = bytearray(exported.fp32_path.read_bytes())
    data[len(data) // 2 : len(data) // 2 + 64] = b"\x00" * 64  # flip weights in the middle of the file
    exported.fp32_path.write_bytes(bytes(data))
    manifest, reason = verify_export(exported.folder, exported.fingerprint)
    assert manifest is None and "does not match its recorded hash" in reason
    fresh = load_encoder(backend="onnx", threads=2)
    texts = sts_test.sentences1[:10]
    assert np.min(np.sum(fresh.encode(texts) * onnx_encoder.encode(texts), axis=1)) >= 0.9999
    assert verify_export(exported.folder, exported.fingerprint)[0] is not None


def test_unloadable_export_with_a_matching_hash_is_exported_again(onnx_encoder):
    exported = ensure_export(onnx_encoder.source)
    exported.fp32_path.write_bytes(b"not an onnx model")
    manifest = json.loads((exported.folder / MANIFEST).read_text())
    manifest["files"][FP32_FILE] = file_sha256(exported.fp32_path)  # hash agrees, content is garbage
    (exported.folder / MANIFEST).write_text(json.dumps(manifest))
    fresh = load_encoder(backend="onnx", threads=2)
    assert fresh.encode(["still works"]).shape == (1, 384)


def test_int8_without_quantize_is_a_clear_error(onnx_encoder):
    assert not onnx_encoder.exported.int8_path.exists()  # test_quantize works in its own cache
    with pytest.raises(ModelError, match="no usable int8 model.*embedops quantize"):
        load_encoder(backend="onnx", quantization="int8")


def test_unknown_options_are_refused():
    with pytest.raises(ModelError, match="unknown quantization"):
        load_encoder(backend="onnx", quantization="int4")
    with pytest.raises(ModelError, match="provider"):
        load_encoder(backend="onnx", provider="no-such-provider")
