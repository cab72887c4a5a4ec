"""The `Encoder` protocol and the shared batching pipeline (encode_pre / encode_core / encode_post)."""

from __future__ import annotations

import abc
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np

from embedops._progress import start_progress
from embedops.errors import InputError

Modality = Literal["text", "image"]
InputKind = Literal["query", "document"]
OutputPrecision = Literal["float32", "int8", "uint8", "binary", "ubinary"]


@dataclass
class EncodeStats:
    """Running counters an encoder keeps; truncation is reported, never silent."""

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


@runtime_checkable
class Encoder(Protocol):
    """What every backend offers: inputs in, float32 (optionally normalised) vectors out."""

    name: str
    dimension: int
    max_tokens: int
    modality: Modality
    stats: EncodeStats

    def encode(
        self,
        inputs: Sequence[Any],
        *,
        batch_size: int = 32,
        normalize: bool = True,
        kind: InputKind | None = None,
        show_progress: bool = False,
    ) -> np.ndarray:
        """Embed `inputs`; rows follow the input order."""
        ...

    @property
    def truncated_count(self) -> int:
        """How many inputs so far were cut at `max_tokens`."""
        ...


@dataclass(frozen=True)
class Batch:
    """One planned batch: positions into the original input list."""

    indices: np.ndarray
    tokens: int


def plan_batches(
    lengths: Sequence[int], batch_size: int, max_batch_tokens: int | None = None
) -> list[Batch]:
    """Sort by length (longest first) and cut batches by count and by padded-token budget.

    Longest first so that a memory problem shows on the first batch, not the last; sorting means
    padding never goes beyond the batch's own maximum, so no work is wasted on pad tokens.
    """
    if batch_size < 1:
        raise InputError(f"batch_size must be >= 1, got {batch_size}")
    lengths_arr = np.asarray(lengths, dtype=np.int64)
    order = np.argsort(-lengths_arr, kind="stable")
    batches: list[Batch] = []
    start = 0
    n = len(order)
    while start < n:
        longest = int(lengths_arr[order[start]])
        size = batch_size
        if max_batch_tokens:
            size = max(1, min(batch_size, max_batch_tokens // max(longest, 1)))
        idx = order[start : start + size]
        batches.append(Batch(indices=idx, tokens=int(lengths_arr[idx].sum())))
        start += size
    return batches


def check_texts(inputs: Sequence[Any]) -> list[str]:
    """Refuse non-strings and empty or whitespace-only texts, naming the index."""
    if isinstance(inputs, str):
        raise InputError("encode() takes a list of texts, got a single string", hint="wrap it in a list")
    texts = list(inputs)
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise InputError(f"input {i} is {type(text).__name__}, expected str")
        if not text.strip():
            raise InputError(f"input {i} is empty or whitespace-only")
    return texts


def quantize_output(vectors: np.ndarray, precision: OutputPrecision) -> np.ndarray:
    """Convert float32 embeddings to int8/uint8/binary output (sentence-transformers' conventions)."""
    if precision == "float32":
        return vectors
    try:
        from sentence_transformers.util.quantization import quantize_embeddings
    except ImportError:  # sentence-transformers < 6
        from sentence_transformers.quantization import quantize_embeddings

    return quantize_embeddings(vectors, precision=precision)


class BaseEncoder(abc.ABC):
    """Shared pipeline: validate and plan (pre), run the model per batch (core), reorder and post-process (post)."""

    name: str
    dimension: int
    max_tokens: int
    modality: Modality = "text"
    truncate_dim: int | None = None

    def __init__(self) -> None:
        self.stats = EncodeStats()

    @property
    def truncated_count(self) -> int:
        """How many inputs so far were cut at `max_tokens`."""
        return self.stats.truncated

    @property
    def output_dimension(self) -> int:
        """Dimension of returned vectors (after Matryoshka truncation, if set)."""
        return self.truncate_dim or self.dimension

    @abc.abstractmethod
    def token_lengths(self, texts: list[str]) -> np.ndarray:
        """Untruncated token count of each text, special tokens included."""

    @abc.abstractmethod
    def encode_core(self, texts: list[str]) -> np.ndarray:
        """Embed one batch of already-prepared texts; returns float32 [n, dimension], not normalised."""

    def prompt_for(self, kind: InputKind | None) -> str:
        """Prefix the model defines for this kind of input ('' when none)."""
        return ""

    def tokenize_all(self, texts: list[str]) -> tuple[np.ndarray, Any]:
        """Untruncated lengths for planning, plus anything a backend can reuse per batch (default: nothing).

        A backend that tokenises here once and hands the result to `run_batch` avoids tokenising twice, which
        on short sentences is a visible share of the time.
        """
        return self.token_lengths(texts), None

    def run_batch(self, texts: list[str], indices: np.ndarray, prepared: Any) -> np.ndarray:
        """Embed the texts at `indices`; `prepared` is what `tokenize_all` returned (default: re-tokenise)."""
        return self.encode_core([texts[i] for i in indices])

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
        import time

        texts = check_texts(inputs)
        if not texts:
            return np.zeros((0, self.output_dimension), dtype=np.float32)
        prompt = self.prompt_for(kind)
        if prompt:
            texts = [prompt + t for t in texts]
        lengths, prepared = self.tokenize_all(texts)
        clipped = np.minimum(lengths, self.max_tokens)
        batches = plan_batches(clipped, batch_size, max_batch_tokens)
        out = np.empty((len(texts), self.dimension), dtype=np.float32)
        started = time.perf_counter()
        progress = start_progress(show_progress, len(texts), f"encoding with {self.name}")
        try:
            for batch in batches:
                vecs = self.run_batch(texts, batch.indices, prepared)
                out[batch.indices] = vecs
                if progress is not None:
                    progress[0].advance(progress[1], len(batch.indices))
        finally:
            if progress is not None:
                progress[0].stop()
        self.stats.inputs += len(texts)
        self.stats.tokens += int(clipped.sum())
        self.stats.truncated += int((lengths > self.max_tokens).sum())
        self.stats.batches += len(batches)
        self.stats.seconds += time.perf_counter() - started
        return quantize_output(self.encode_post(out, normalize), precision)

    def encode_post(self, vectors: np.ndarray, normalize: bool) -> np.ndarray:
        """Matryoshka truncation, then L2 normalisation."""
        if self.truncate_dim:
            vectors = np.ascontiguousarray(vectors[:, : self.truncate_dim])
        if normalize:
            norms = np.linalg.norm(vectors, axis=1, keepdims=True)
            vectors = vectors / np.maximum(norms, 1e-12)
        return vectors.astype(np.float32, copy=False)

    def describe(self) -> dict[str, Any]:
        """What this encoder is, for manifests and reports."""
        return {
            "name": self.name,
            "backend": type(self).__name__,
            "dimension": self.output_dimension,
            "max_tokens": self.max_tokens,
            "modality": self.modality,
        }
