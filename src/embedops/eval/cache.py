"""An on-disk cache of embeddings keyed by model fingerprint and exact input text, so re-evaluation is cheap.

Each entry stores, beside the vectors, what encoding them cost (tokens, which inputs were truncated), so a cache hit
reports the same usage as the miss that wrote it, without touching the encoder: no shared counter is read or
written, which keeps concurrent callers' numbers their own.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np

from embedops._io import atomic_open, cache_root
from embedops.protocols import InputKind, Usage

__all__ = ["cache_root", "encode_cached", "encode_cached_with_usage", "model_fingerprint"]

# Bumped when an entry's contents change, so entries of an older layout are recomputed, never misread.
_FORMAT = "v2"


def _legacy_fingerprint(encoder: Any) -> str:
    """Path + size + mtime of weight files: only for encoders that offer no content `fingerprint`."""
    from embedops.models.loading import WEIGHT_SUFFIXES

    parts = [type(encoder).__name__, encoder.name, str(encoder.max_tokens), str(encoder.output_dimension)]
    path = getattr(getattr(encoder, "source", None), "path", None)
    if path:
        parts.append(str(path))
        for f in sorted(Path(path).rglob("*")):
            if f.suffix in WEIGHT_SUFFIXES:
                st = f.stat()
                parts.append(f"{f.name}:{st.st_size}:{st.st_mtime_ns}")
    extra = getattr(encoder, "fingerprint_extra", None)
    if extra:
        parts.append(str(extra))
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


def model_fingerprint(encoder: Any) -> str:
    """Identify the vector space an encoder produces: its content `fingerprint`, independent of path and mtime."""
    fingerprint = getattr(encoder, "fingerprint", None)
    if isinstance(fingerprint, str) and fingerprint:
        return fingerprint
    return _legacy_fingerprint(encoder)


def _entry_path(encoder: Any, texts: list[str], kind: InputKind | None) -> Path:
    h = hashlib.sha256()
    h.update(f"{_FORMAT}|{model_fingerprint(encoder)}|{kind}|{len(texts)}".encode())
    for t in texts:
        h.update(t.encode("utf-8", "surrogatepass"))
        h.update(b"\x00")
    return cache_root() / "embeddings" / f"{h.hexdigest()[:32]}.npz"


def _read_entry(path: Path, n: int) -> tuple[np.ndarray, Usage] | None:
    if not path.is_file():
        return None
    try:
        with np.load(path) as saved:
            arr = saved["embeddings"]
            indices = tuple(int(i) for i in saved["truncated_indices"])
            tokens, truncated = int(saved["tokens"]), int(saved["truncated"])
    except (OSError, ValueError, KeyError):
        return None  # a damaged or older entry is simply recomputed
    if arr.shape[0] != n:
        return None
    # Usage as recorded when the entry was written; no model time was spent on this call.
    return arr, Usage(inputs=n, tokens=tokens, truncated=truncated, truncated_indices=indices)


def encode_cached_with_usage(encoder: Any, texts: list[str], *, kind: InputKind | None = None, batch_size: int = 32,
                             show_progress: bool = False, use_cache: bool = True) -> tuple[np.ndarray, Usage]:
    """Encode `texts` (normalised) with this call's own usage, reading/writing the cache when `use_cache`."""
    if not use_cache:
        return encoder.encode_with_usage(texts, batch_size=batch_size, kind=kind, show_progress=show_progress)
    path = _entry_path(encoder, texts, kind)
    hit = _read_entry(path, len(texts))
    if hit is not None:
        return hit
    arr, usage = encoder.encode_with_usage(texts, batch_size=batch_size, kind=kind, show_progress=show_progress)
    with atomic_open(path, "wb") as fh:
        np.savez(fh, embeddings=arr, tokens=np.int64(usage.tokens), truncated=np.int64(usage.truncated),
                 truncated_indices=np.asarray(usage.truncated_indices, dtype=np.int64))
    return arr, usage


def encode_cached(encoder: Any, texts: list[str], *, kind: InputKind | None = None, batch_size: int = 32,
                  show_progress: bool = False, use_cache: bool = True) -> np.ndarray:
    """Encode `texts` (normalised), reading/writing the cache when `use_cache`; vectors only."""
    return encode_cached_with_usage(encoder, texts, kind=kind, batch_size=batch_size, show_progress=show_progress,
                                    use_cache=use_cache)[0]
