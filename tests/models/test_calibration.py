"""int8/uint8 embedding output on stored calibration ranges: a text's code does not depend on its batch-mates, a
single text encodes, the ranges are cached per fingerprint and travel in the encoder's spec."""

from __future__ import annotations

import json

import numpy as np
import pytest

from embedops.errors import InputError
from embedops.models import calibrate_output, default_calibration_texts, encoder_from_spec
from embedops.models.calibration import quantize_output, ranges_path

LONG = "Transformers truncate long inputs at the model's maximum length, special tokens included. " * 40


@pytest.fixture(scope="module")
def texts(sts_test) -> list[str]:
    """40 distinct STS-B test sentences."""
    return list(dict.fromkeys(sts_test.sentences2))[:40]


def test_int8_codes_do_not_depend_on_the_batch(onnx_encoder, texts):
    alone = np.vstack([onnx_encoder.encode([t], precision="int8") for t in texts])  # one text: used to raise
    assert alone.dtype == np.int8 and alone.shape == (40, 384)
    batches = [
        onnx_encoder.encode(texts, precision="int8"),
        onnx_encoder.encode(texts[::-1] + [LONG], batch_size=7, precision="int8")[:-1][::-1],
        np.vstack([onnx_encoder.encode(["short", t, "a different neighbour entirely"], precision="int8")[1]
                   for t in texts[:10]] + [onnx_encoder.encode(texts[10:], batch_size=3, precision="int8")]),
    ]
    for codes in batches:
        assert np.array_equal(codes, alone)
    assert len(np.unique(alone, axis=0)) == 40  # real codes, not a constant
    uint8 = onnx_encoder.encode(texts, precision="uint8")
    assert uint8.dtype == np.uint8 and np.array_equal(uint8.astype(np.int16) - 128, alone)


def test_torch_int8_codes_agree_up_to_float_noise(encoder, texts):
    # Padding changes torch's float rounding by ~1e-7, which can move a value across a bin edge: never more than
    # one step, and in a tiny share of codes (per-batch calibration changed most codes).
    alone = np.vstack([encoder.encode([t], precision="int8") for t in texts])
    diff = alone.astype(np.int16) - encoder.encode(texts[::-1] + [LONG], batch_size=7, precision="int8")[:-1][::-1]
    assert np.abs(diff).max() <= 1 and (diff != 0).mean() < 1e-3


def test_ranges_are_cached_by_fingerprint_and_travel_in_the_spec(onnx_encoder, texts):
    onnx_encoder.encode(texts[:1], precision="int8")
    path = ranges_path(onnx_encoder.fingerprint)
    saved = np.asarray(json.loads(path.read_text())["ranges"], dtype=np.float32)
    assert saved.shape == (2, 384) and np.array_equal(saved, onnx_encoder.output_ranges())
    spec = onnx_encoder.spec()
    assert np.array_equal(np.asarray(spec["output_ranges"], dtype=np.float32), saved)
    path.unlink()  # the reloaded encoder must take its ranges from the spec, not from the cache
    again = encoder_from_spec(spec, threads=2)
    assert np.array_equal(again.encode(texts, precision="int8"), onnx_encoder.encode(texts, precision="int8"))
    assert not path.exists()


def test_calibrating_on_own_texts(onnx_encoder, texts):
    from embedops.models import load_encoder

    ranges = calibrate_output(onnx_encoder, texts)
    vecs = onnx_encoder.encode(texts)
    assert ranges.shape == (2, 384) and np.allclose(ranges, [vecs.min(0), vecs.max(0)])
    assert len(default_calibration_texts()) > 600
    short = load_encoder(backend="onnx", truncate_dim=32, threads=2)
    short.set_output_ranges(calibrate_output(short, texts))
    codes = short.encode(texts, precision="int8")
    assert codes.shape == (40, 32) and codes.min() == -128 and codes.max() == 127  # own texts span the range
    with pytest.raises(InputError, match="shape"):
        short.set_output_ranges(ranges)


def test_bad_precision_requests(onnx_encoder):
    with pytest.raises(InputError, match="normalised"):
        onnx_encoder.encode(["x"], precision="int8", normalize=False)
    with pytest.raises(InputError, match="calibration ranges"):
        quantize_output(np.zeros((1, 4), dtype=np.float32), "int8")
    with pytest.raises(InputError, match="unknown precision"):
        quantize_output(np.zeros((1, 4), dtype=np.float32), "int4")  # type: ignore[arg-type]
    assert onnx_encoder.encode([], precision="int8").shape == (0, 384)
