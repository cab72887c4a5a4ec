"""Output precision: int8/uint8 codes from stored per-dimension ranges, binary/ubinary from signs.

Calibrating on each batch (what sentence-transformers' `quantize_embeddings` does without `ranges`) makes a text's code
depend on its batch-mates and cannot encode a single text. Here the ranges come from a fixed calibration set, once per
model identity (fingerprint): kept on the encoder, recorded in its `spec()`, and cached on disk under
`cache_root()/output_ranges/<fingerprint>.json`.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from embedops._io import atomic_write_json, cache_root
from embedops.errors import InputError
from embedops.protocols import OutputPrecision

log = logging.getLogger(__name__)

PRECISIONS: tuple[str, ...] = ("float32", "int8", "uint8", "binary", "ubinary")
RANGED = frozenset({"int8", "uint8"})
_SAMPLE = Path(__file__).resolve().parents[1] / "samples" / "scifact-mini"


@lru_cache(maxsize=1)
def default_calibration_texts() -> tuple[str, ...]:
    """The bundled calibration sample: 300 SciFact titles, the opening of each abstract, and 40 claims."""
    texts: list[str] = []
    with open(_SAMPLE / "corpus.jsonl", encoding="utf-8") as fh:
        for line in fh:
            doc = json.loads(line)
            texts.append(doc.get("title") or "")
            # The opening ~40 words: a sentence-length text, so calibrating stays a few seconds on a CPU.
            texts.append(" ".join((doc.get("text") or "").split()[:40]))
    with open(_SAMPLE / "queries.jsonl", encoding="utf-8") as fh:
        texts.extend(json.loads(line).get("text") or "" for line in fh)
    return tuple(dict.fromkeys(t for t in texts if t.strip()))


def calibrate_output(encoder: Any, texts: Sequence[str] | None = None, *, batch_size: int = 32) -> np.ndarray:
    """Per-dimension [min, max] (shape [2, output_dimension]) of the encoder's normalised embeddings of `texts`."""
    sample = list(texts) if texts is not None else list(default_calibration_texts())
    if len(sample) < 2:
        raise InputError(f"calibrating int8 output needs at least 2 texts, got {len(sample)}")
    vectors = encoder.encode(sample, batch_size=batch_size, normalize=True, precision="float32")
    return np.stack([vectors.min(axis=0), vectors.max(axis=0)]).astype(np.float32)


def check_ranges(ranges: Any, dimension: int) -> np.ndarray:
    """Ranges as a float32 [2, dimension] array with min <= max, or an InputError saying what is wrong."""
    arr = np.asarray(ranges, dtype=np.float32)
    if arr.shape != (2, dimension):
        raise InputError(f"output ranges must have shape (2, {dimension}), got {arr.shape}")
    if not np.all(np.isfinite(arr)) or np.any(arr[0] > arr[1]):
        raise InputError("output ranges must be finite with min <= max in every dimension")
    return arr


def ranges_path(fingerprint: str) -> Path:
    """Where the ranges of an encoder with this fingerprint are cached."""
    return cache_root() / "output_ranges" / f"{fingerprint}.json"


def load_or_calibrate(encoder: Any) -> np.ndarray:
    """The cached ranges for the encoder's fingerprint; else calibrate on the bundled sample and cache them."""
    path = ranges_path(encoder.fingerprint)
    try:
        saved = json.loads(path.read_text(encoding="utf-8"))
        return check_ranges(saved["ranges"], encoder.output_dimension)
    except FileNotFoundError:
        pass
    except (OSError, ValueError, KeyError, InputError) as exc:
        log.warning("ignoring damaged output ranges %s (%s); calibrating again", path, exc)
    ranges = calibrate_output(encoder)
    atomic_write_json(path, {"fingerprint": encoder.fingerprint, "texts": len(default_calibration_texts()),
                             "ranges": ranges.tolist()})
    return ranges


def quantize_output(vectors: np.ndarray, precision: OutputPrecision, ranges: np.ndarray | None = None) -> np.ndarray:
    """float32 -> int8/uint8 codes on fixed `ranges` (values outside are clipped), or sign bits for (u)binary."""
    if precision == "float32":
        return vectors
    if precision in ("binary", "ubinary"):
        packed = np.packbits(vectors > 0, axis=-1)  # one bit per dimension, as sentence-transformers packs them
        return packed if precision == "ubinary" else (packed.astype(np.int16) - 128).astype(np.int8)
    if precision not in RANGED:
        raise InputError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
    if ranges is None:
        raise InputError(f"{precision} output needs calibration ranges",
                         hint="encode through an encoder (it calibrates once), or pass calibrate_output(...)")
    starts = ranges[0].astype(np.float32)
    steps = np.maximum((ranges[1] - ranges[0]).astype(np.float32) / 255, np.float32(1e-12))
    # sentence-transformers' mapping with ranges, but clipped (a value beyond the calibrated range saturates instead
    # of wrapping around) and floored before the int8 shift (its truncation toward zero makes the bin at 0 two wide).
    codes = np.floor(np.clip((vectors - starts) / steps, 0, 255))
    if precision == "uint8":
        return codes.astype(np.uint8)
    return (codes - 128).astype(np.int8)
