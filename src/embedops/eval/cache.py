"""An on-disk cache of embeddings keyed by model fingerprint and exact input text, so re-evaluation is cheap."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np

from embedops._io import atomic_open
from embedops.models.loading import WEIGHT_SUFFIXES


def cache_root() -> Path:
    """`$EMBEDOPS_CACHE` or ~/.cache/embedops."""
    return Path(os.environ.get("EMBEDOPS_CACHE", Path.home() / ".cache" / "embedops"))


def model_fingerprint(encoder) -> str:
    """Identify the weights an encoder runs: name, backend, path, and size/mtime of its weight files."""
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


def encode_cached(encoder, texts: list[str], *, kind=None, batch_size: int = 32, show_progress: bool = False,
                  use_cache: bool = True) -> np.ndarray:
    """Encode `texts` (normalised), reading/writing the cache when `use_cache`."""
    if not use_cache:
        return encoder.encode(texts, batch_size=batch_size, kind=kind, show_progress=show_progress)
    h = hashlib.sha256()
    h.update(f"{model_fingerprint(encoder)}|{kind}|{len(texts)}".encode())
    for t in texts:
        h.update(t.encode("utf-8", "surrogatepass"))
        h.update(b"\x00")
    path = cache_root() / "embeddings" / f"{h.hexdigest()[:32]}.npz"
    if path.is_file():
        try:
            with np.load(path) as saved:
                arr, truncated = saved["embeddings"], int(saved["truncated"])
            if arr.shape[0] == len(texts):
                # A cache hit still reports how many of these inputs the model truncates.
                encoder.stats.truncated += truncated
                return arr
        except (OSError, ValueError, KeyError):
            pass  # a damaged cache entry is simply recomputed
    before = encoder.truncated_count
    arr = encoder.encode(texts, batch_size=batch_size, kind=kind, show_progress=show_progress)
    with atomic_open(path, "wb") as fh:
        np.savez(fh, embeddings=arr, truncated=np.int64(encoder.truncated_count - before))
    return arr
