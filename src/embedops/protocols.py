"""The pluggable pieces' contracts, on the ground floor beside `errors`.

`index` takes an `Encoder` and `serve` a `VectorStore` through these protocols, without importing the packages that
implement them (`models`, `index`), so the layers of DESIGN.md hold: arrows point down only.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np

Modality = Literal["text", "image"]
InputKind = Literal["query", "document"]
OutputPrecision = Literal["float32", "int8", "uint8", "binary", "ubinary"]
Filter = dict[str, Any]


@dataclass(frozen=True)
class Usage:
    """What one encode call cost: its own inputs, tokens and truncated inputs (never a shared counter's difference)."""

    inputs: int = 0
    tokens: int = 0
    truncated: int = 0
    truncated_indices: tuple[int, ...] = ()
    seconds: float = 0.0

    def __add__(self, other: Usage) -> Usage:
        shift = self.inputs
        return Usage(self.inputs + other.inputs, self.tokens + other.tokens, self.truncated + other.truncated,
                     self.truncated_indices + tuple(i + shift for i in other.truncated_indices),
                     self.seconds + other.seconds)

    def as_dict(self) -> dict[str, Any]:
        """Plain dict for reports and API responses."""
        return {"inputs": self.inputs, "tokens": self.tokens, "truncated": self.truncated,
                "truncated_indices": list(self.truncated_indices), "seconds": round(self.seconds, 4)}


@runtime_checkable
class Encoder(Protocol):
    """What every encoder (a backend, or a worker that owns one) offers; safe to call from any thread.

    `spec()` is the full identity of the vector space the encoder produces: model name and location, content
    fingerprint of the weights, backend, quantisation, truncate_dim, prompts, dimension, max tokens and (for int8/
    uint8 output) the stored calibration ranges. A collection records it and reopens with it.
    """

    name: str
    dimension: int
    max_tokens: int
    modality: Modality

    @property
    def output_dimension(self) -> int:
        """Dimension of returned vectors (after Matryoshka truncation, if set)."""
        ...

    @property
    def fingerprint(self) -> str:
        """Content hash identifying the vector space (weights + backend + quantisation + truncate_dim + prompts)."""
        ...

    def spec(self) -> dict[str, Any]:
        """JSON-serialisable identity from which `EncoderLoader` can load the same encoder again."""
        ...

    def encode(self, inputs: Sequence[Any], *, batch_size: int = 32, normalize: bool = True,
               kind: InputKind | None = None, show_progress: bool = False,
               precision: OutputPrecision = "float32") -> np.ndarray:
        """Embed `inputs`; rows follow the input order."""
        ...

    def encode_with_usage(self, inputs: Sequence[Any], *, batch_size: int = 32, normalize: bool = True,
                          kind: InputKind | None = None, show_progress: bool = False,
                          precision: OutputPrecision = "float32") -> tuple[np.ndarray, Usage]:
        """`encode` plus this call's own usage (tokens, truncated inputs and which)."""
        ...


EncoderLoader = Callable[[dict[str, Any]], Encoder]
"""Loads an encoder from a recorded `Encoder.spec()` (the models package provides one: `models.encoder_from_spec`)."""


@dataclass(slots=True)
class Hit:
    """One search result: document id, similarity score (higher is better), and stored content."""

    id: str
    score: float
    text: str | None = None
    # None until content is attached (Collection always attaches it); saves a dict per hit on the hot path.
    metadata: dict[str, Any] | None = None

    def as_dict(self) -> dict[str, Any]:
        """Plain dict for JSON output."""
        return {"id": self.id, "score": self.score, "text": self.text, "metadata": self.metadata or {}}


@dataclass
class Record:
    """A stored document as `get` returns it."""

    id: str
    text: str | None
    metadata: dict[str, Any] = field(default_factory=dict)
    vector: np.ndarray | None = None


@runtime_checkable
class VectorStore(Protocol):
    """What a collection needs from a store engine (FAISS + SQLite embedded; Milvus/Qdrant adapters later).

    Thread contract: one writer at a time (the store serialises writes itself), any number of concurrent readers,
    each seeing one committed state.
    """

    dimension: int

    def count(self) -> int:
        """Live documents."""
        ...

    def ids(self) -> list[str]:
        """Ids of all live documents."""
        ...

    def facts(self) -> dict[str, Any]:
        """Facts recorded with the store at creation (model spec ...)."""
        ...

    def upsert(self, ids: Sequence[str], vectors: np.ndarray, metadata: Sequence[dict[str, Any]] | None = None,
               texts: Sequence[str | None] | None = None) -> int:
        """Insert or replace (same id) documents; returns how many were written."""
        ...

    def delete(self, ids: Sequence[str]) -> int:
        """Remove documents by id; returns how many existed."""
        ...

    def search(self, queries: np.ndarray, k: int = 10, filter: Filter | None = None, *,
               exclude_ids: Sequence[str] | None = None) -> list[list[Hit]]:
        """Top-k neighbours per query row, best first; never fewer than min(k, matching documents)."""
        ...

    def get(self, ids: Sequence[str], *, with_vectors: bool = False) -> list[Record | None]:
        """Stored records in the order asked (None for unknown ids)."""
        ...

    def vectors(self, ids: Sequence[str]) -> np.ndarray:
        """Stored float vectors of `ids` (unknown ids are an error naming them)."""
        ...

    def attach_content(self, hits: list[Hit]) -> None:
        """Fill text and metadata of hits."""
        ...

    def info(self) -> dict[str, Any]:
        """Cheap facts: counts, index kind, files (never serialises the index)."""
        ...

    def rebuild(self, spec: Any = None) -> dict[str, Any]:
        """Compact deletions and rebuild the index beside the live one, then swap."""
        ...

    def flush(self) -> None:
        """Persist in-memory state (checkpoint)."""
        ...

    def close(self) -> None:
        """Flush and release files."""
        ...
