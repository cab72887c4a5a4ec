"""The shared batching pipeline of every backend (encode_pre / encode_core / encode_post), with per-call usage.

The `Encoder` protocol itself lives in `embedops.protocols` (the ground floor, so `index` can take an encoder without
importing this package); it and its types are re-exported here under their old names.
"""

from __future__ import annotations

import abc
import dataclasses
import os
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np

from embedops._progress import start_progress
from embedops.errors import InputError
from embedops.models.calibration import RANGED, check_ranges, load_or_calibrate, quantize_output
from embedops.models.identity import encoder_fingerprint, model_location, source_weights_hash
from embedops.protocols import Encoder, InputKind, Modality, OutputPrecision, Usage

__all__ = ["BaseEncoder", "Batch", "EncodeStats", "Encoder", "InputKind", "Modality", "OutputPrecision", "Prepared",
           "Usage", "check_texts", "physical_cores", "plan_batches", "quantize_output"]


@dataclass
class EncodeStats:
    """Running totals an encoder keeps over all its calls (read `encoder.stats`: a snapshot, never shared)."""

    inputs: int = 0
    tokens: int = 0
    truncated: int = 0
    batches: int = 0
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        """Counters as a plain dict (for reports and metrics)."""
        return {
            "inputs": self.inputs,
            "tokens": self.tokens,
            "truncated": self.truncated,
            "batches": self.batches,
            "seconds": round(self.seconds, 3),
        }


@dataclass(frozen=True)
class Batch:
    """One planned batch: positions into the original input list."""

    indices: np.ndarray
    tokens: int


@dataclass
class Prepared:
    """One call's checked texts (prompt added), untruncated token lengths and the backend's per-text tokenisation."""

    texts: list[str]
    lengths: np.ndarray
    items: Any  # a per-text list the backend's run_batch can index (or None: it tokenises again)
    max_tokens: int

    @property
    def clipped(self) -> np.ndarray:
        """Lengths after truncation at max_tokens (what the model really runs)."""
        return np.minimum(self.lengths, self.max_tokens)

    def usage(self, seconds: float = 0.0) -> Usage:
        """This call's own usage: inputs, tokens run, and which inputs were truncated."""
        cut = np.flatnonzero(self.lengths > self.max_tokens)
        return Usage(inputs=len(self.texts), tokens=int(self.clipped.sum()), truncated=len(cut),
                     truncated_indices=tuple(int(i) for i in cut), seconds=seconds)


def physical_cores() -> int:
    """Cores this process may use (affinity-aware); ORT's default of all logical CPUs oversubscribes SMT."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def plan_batches(
    lengths: Sequence[int], batch_size: int, max_batch_tokens: int | None = None,
    batch_overhead_tokens: int | None = None,
) -> list[Batch]:
    """Sort by length (longest first) and cut batches by count and by padded-token budget.

    Longest first so that a memory problem shows on the first batch, not the last; sorting means
    padding never goes beyond the batch's own maximum, so no work is wasted on pad tokens.
    With `batch_overhead_tokens` (what one more model call costs, in tokens), cuts are placed to minimise padded
    tokens plus calls instead: a short text is not padded to a long one when a call of its own is cheaper.
    """
    if batch_size < 1:
        raise InputError(f"batch_size must be >= 1, got {batch_size}")
    lengths_arr = np.asarray(lengths, dtype=np.int64)
    order = np.argsort(-lengths_arr, kind="stable")
    sizes = _cheapest_cuts(lengths_arr[order], batch_size, max_batch_tokens, batch_overhead_tokens) \
        if batch_overhead_tokens is not None else None
    batches: list[Batch] = []
    start = 0
    n = len(order)
    while start < n:
        longest = int(lengths_arr[order[start]])
        size = batch_size
        if max_batch_tokens:
            size = max(1, min(batch_size, max_batch_tokens // max(longest, 1)))
        if sizes is not None:
            size = sizes[len(batches)]
        idx = order[start : start + size]
        batches.append(Batch(indices=idx, tokens=int(lengths_arr[idx].sum())))
        start += size
    return batches


def _cheapest_cuts(desc: np.ndarray, batch_size: int, max_batch_tokens: int | None, overhead: int) -> list[int]:
    """Batch sizes over lengths sorted longest first minimising sum(overhead + rows * longest) (dynamic programming)."""
    n = len(desc)
    best = [0.0] + [float("inf")] * n  # best[i]: cheapest cost of the first i texts
    cut = [0] * (n + 1)
    for j in range(n):  # a batch starting at j has desc[j] as its longest text
        longest = int(desc[j])
        limit = min(batch_size, n - j)
        if max_batch_tokens:
            limit = max(1, min(limit, max_batch_tokens // max(longest, 1)))
        for size in range(1, limit + 1):
            cost = best[j] + overhead + size * longest
            if cost < best[j + size]:
                best[j + size], cut[j + size] = cost, size
    sizes = []
    i = n
    while i > 0:
        sizes.append(cut[i])
        i -= cut[i]
    return sizes[::-1]


def check_texts(inputs: Sequence[Any]) -> list[str]:
    """Refuse non-strings and empty or whitespace-only texts, naming the index."""
    if isinstance(inputs, str):
        raise InputError("encode() takes a list of texts, got a single string", hint="wrap it in a list")
    texts = list(inputs)
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise InputError(f"input {i} is {type(text).__name__}, expected str")
        if not text or text.isspace():  # no copy of a huge text
            raise InputError(f"input {i} is empty or whitespace-only")
    return texts


class BaseEncoder(abc.ABC):
    """Shared pipeline: validate and plan (pre), run the model per batch (core), reorder and post-process (post).

    Safe to call from several threads: each call keeps its own usage, the running `stats` are updated under a lock,
    and each backend guards whatever state its tokenizer or runtime shares.
    """

    name: str
    dimension: int
    max_tokens: int
    modality: Modality = "text"
    truncate_dim: int | None = None
    backend: str = "base"
    quantization: str = "none"
    # What one more model call costs, in padded tokens (a model worker cuts its batches with it); measured for
    # all-MiniLM-L6-v2 on a CPU, where a single short text costs about this much beyond its own tokens.
    batch_overhead_tokens: int = 16
    source: Any = None  # the ModelSource a backend was loaded from

    def __init__(self) -> None:
        self._stats = EncodeStats()
        self._stats_lock = threading.Lock()
        self._ranges: np.ndarray | None = None
        self._ranges_lock = threading.Lock()

    # -- running totals -------------------------------------------------------------------------
    @property
    def stats(self) -> EncodeStats:
        """A snapshot of the running totals (a copy: mutating it changes nothing)."""
        with self._stats_lock:
            return dataclasses.replace(self._stats)

    @property
    def truncated_count(self) -> int:
        """How many inputs so far were cut at `max_tokens` (prefer each call's own `Usage`)."""
        with self._stats_lock:
            return self._stats.truncated

    def record_usage(self, usage: Usage | None = None, *, batches: int = 0) -> None:
        """Add one call's usage (and batches run) to the running totals, under the lock."""
        with self._stats_lock:
            if usage is not None:
                self._stats.inputs += usage.inputs
                self._stats.tokens += usage.tokens
                self._stats.truncated += usage.truncated
                self._stats.seconds += usage.seconds
            self._stats.batches += batches

    # -- shape and prompts ----------------------------------------------------------------------
    @property
    def output_dimension(self) -> int:
        """Dimension of returned vectors (after Matryoshka truncation, if set)."""
        return self.truncate_dim or self.dimension

    @property
    def prompts(self) -> dict[str, str]:
        """The prompts the model defines (e.g. {'query': 'query: '}); none by default."""
        return {}

    def prompt_for(self, kind: InputKind | None) -> str:
        """Prefix the model defines for this kind of input ('' when none)."""
        return self.prompts.get(kind, "") if kind else ""

    def set_intra_op_threads(self, threads: int) -> None:
        """Size the backend's intra-op thread pool (a model worker calls this once); default: nothing to do."""
        return None

    # -- the pipeline ---------------------------------------------------------------------------
    @abc.abstractmethod
    def token_lengths(self, texts: list[str]) -> np.ndarray:
        """Untruncated token count of each text, special tokens included."""

    @abc.abstractmethod
    def encode_core(self, texts: list[str]) -> np.ndarray:
        """Embed one batch of already-prepared texts; returns float32 [n, dimension], not normalised."""

    def tokenize_all(self, texts: list[str]) -> tuple[np.ndarray, Any]:
        """Untruncated lengths for planning, plus a per-text list a backend can reuse per batch (default: None).

        A backend that tokenises here once and hands the result to `run_batch` avoids tokenising twice, which
        on short sentences is a visible share of the time.
        """
        return self.token_lengths(texts), None

    def run_batch(self, texts: list[str], indices: np.ndarray, prepared: Any) -> np.ndarray:
        """Embed the texts at `indices`; `prepared` is what `tokenize_all` returned (default: re-tokenise)."""
        return self.encode_core([texts[i] for i in indices])

    def prepare(self, inputs: Sequence[Any], kind: InputKind | None = None) -> Prepared:
        """Check the inputs (naming a bad one by index), add the prompt, tokenise once."""
        texts = check_texts(inputs)
        prompt = self.prompt_for(kind)
        if prompt:
            texts = [prompt + t for t in texts]
        if not texts:
            return Prepared([], np.zeros(0, dtype=np.int64), None, self.max_tokens)
        lengths, items = self.tokenize_all(texts)
        return Prepared(texts, np.asarray(lengths, dtype=np.int64), items, self.max_tokens)

    def encode_with_usage(
        self,
        inputs: Sequence[Any],
        *,
        batch_size: int = 32,
        normalize: bool = True,
        kind: InputKind | None = None,
        show_progress: bool = False,
        precision: OutputPrecision = "float32",
        max_batch_tokens: int | None = None,
    ) -> tuple[np.ndarray, Usage]:
        """Embed `inputs` in length-sorted batches, with this call's own usage; rows follow the input order."""
        started = time.perf_counter()
        prep = self.prepare(inputs, kind)
        if not prep.texts:
            return self.finish(np.zeros((0, self.dimension), dtype=np.float32), normalize, precision), Usage()
        batches = plan_batches(prep.clipped, batch_size, max_batch_tokens)
        out = np.empty((len(prep.texts), self.dimension), dtype=np.float32)
        progress = start_progress(show_progress, len(prep.texts), f"encoding with {self.name}")
        try:
            for batch in batches:
                out[batch.indices] = self.run_batch(prep.texts, batch.indices, prep.items)
                if progress is not None:
                    progress[0].advance(progress[1], len(batch.indices))
        finally:
            if progress is not None:
                progress[0].stop()
        vectors = self.finish(out, normalize, precision)
        usage = prep.usage(time.perf_counter() - started)
        self.record_usage(usage, batches=len(batches))
        return vectors, usage

    def encode(
        self,
        inputs: Sequence[Any],
        *,
        batch_size: int = 32,
        normalize: bool = True,
        kind: InputKind | None = None,
        show_progress: bool = False,
        max_batch_tokens: int | None = None,
        precision: OutputPrecision = "float32",
    ) -> np.ndarray:
        """Embed `inputs` in length-sorted batches; rows follow the input order."""
        return self.encode_with_usage(inputs, batch_size=batch_size, normalize=normalize, kind=kind,
                                      show_progress=show_progress, max_batch_tokens=max_batch_tokens,
                                      precision=precision)[0]

    def encode_post(self, vectors: np.ndarray, normalize: bool) -> np.ndarray:
        """Matryoshka truncation, then L2 normalisation."""
        if self.truncate_dim:
            vectors = np.ascontiguousarray(vectors[:, : self.truncate_dim])
        if normalize:
            norms = np.linalg.norm(vectors, axis=1, keepdims=True)
            vectors = vectors / np.maximum(norms, 1e-12)
        return vectors.astype(np.float32, copy=False)

    def finish(self, raw: np.ndarray, normalize: bool, precision: OutputPrecision) -> np.ndarray:
        """Raw model rows -> returned vectors: truncate, normalise, then the output precision (fixed ranges)."""
        if precision in RANGED and not normalize:
            raise InputError(f"{precision} output is calibrated on normalised vectors; pass normalize=True")
        vectors = self.encode_post(raw, normalize)
        if precision not in RANGED:
            return quantize_output(vectors, precision)
        if not len(vectors):  # nothing to code: no reason to calibrate
            return quantize_output(vectors, precision, np.zeros((2, vectors.shape[1]), dtype=np.float32))
        return quantize_output(vectors, precision, self.output_ranges())

    # -- int8/uint8 output ranges ---------------------------------------------------------------
    def output_ranges(self) -> np.ndarray:
        """Per-dimension [min, max] for int8/uint8 output: set, cached for this fingerprint, or calibrated once."""
        with self._ranges_lock:
            if self._ranges is None:
                self._ranges = load_or_calibrate(self)
            return self._ranges

    def set_output_ranges(self, ranges: Any) -> None:
        """Use these ranges (shape [2, output_dimension]) for int8/uint8 output, e.g. from a recorded spec."""
        checked = check_ranges(ranges, self.output_dimension)
        with self._ranges_lock:
            self._ranges = checked

    # -- identity -------------------------------------------------------------------------------
    @cached_property
    def weights_hash(self) -> str:
        """Content hash of the model's own weight, config and tokenizer files (path- and mtime-independent)."""
        return source_weights_hash(self.source)

    def int8_hash(self) -> str:
        """Hash of the int8 weights when quantised ('' otherwise)."""
        return ""

    @property
    def fingerprint(self) -> str:
        """Content hash of the vector space: weights + backend + quantisation + truncate_dim + max_tokens + prompts."""
        return encoder_fingerprint(weights=self.weights_hash, backend=self.backend, quantization=self.quantization,
                                   int8_hash=self.int8_hash(), truncate_dim=self.truncate_dim,
                                   max_tokens=self.max_tokens, prompts=self.prompts)

    def spec(self) -> dict[str, Any]:
        """JSON identity from which `embedops.models.encoder_from_spec` loads the same encoder again."""
        out: dict[str, Any] = {
            "name": self.name,
            "location": model_location(self.source),
            "backend": self.backend,
            "quantization": self.quantization,
            "truncate_dim": self.truncate_dim,
            "max_tokens": self.max_tokens,
            "prompts": dict(self.prompts),
            "dimension": self.dimension,
            "output_dimension": self.output_dimension,
            "modality": self.modality,
            "fingerprint": self.fingerprint,
            "weights_hash": self.weights_hash,
        }
        if getattr(self.source, "registry_ref", None):
            out["registry_ref"] = self.source.registry_ref
        with self._ranges_lock:
            if self._ranges is not None:
                out["output_ranges"] = self._ranges.tolist()
        return out

    def describe(self) -> dict[str, Any]:
        """What this encoder is, for manifests and reports."""
        return {
            "name": self.name,
            "backend": type(self).__name__,
            "dimension": self.output_dimension,
            "max_tokens": self.max_tokens,
            "modality": self.modality,
        }
