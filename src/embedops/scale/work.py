"""Embedding one unit: the same function runs in the local engine's process and in every Ray actor."""

from __future__ import annotations

import time
from typing import Any

from embedops.scale.plan import Unit, read_unit
from embedops.scale.shards import ShardResult


def embed_unit(encoder: Any, unit: Unit, *, text_field: str | None = None, id_field: str | None = None,
               batch_size: int = 32, node_id: str = "local", worker: str = "") -> ShardResult:
    """Read the unit's documents and embed `title + ' ' + text` as documents (normalised float32)."""
    started = time.perf_counter()
    docs = read_unit(unit, text_field=text_field, id_field=id_field)
    vectors, usage = encoder.encode_with_usage([d.full_text for d in docs], batch_size=batch_size, kind="document")
    return ShardResult(unit, [d.id for d in docs], vectors, node_id, worker, time.perf_counter() - started,
                       tokens=usage.tokens, truncated=usage.truncated)
