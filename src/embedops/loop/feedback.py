"""Training pairs from what users did: a clicked result is a positive, a result shown above it and skipped is a
hard negative (the cascade reading of a ranked list: the user looked at it and passed it by)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from embedops._io import atomic_open
from embedops.errors import InputError


@dataclass(frozen=True)
class Impression:
    """One served ranking and what the user clicked in it."""

    query: str
    result_ids: tuple[str, ...]
    clicked_ids: frozenset[str] = field(default_factory=frozenset)
    request_id: str = ""
    user_id: str = ""


def training_rows(impressions: Iterable[Impression], *, max_negatives: int = 3) -> list[dict[str, Any]]:
    """Rows in `embedops.train.read_feedback`'s schema: one per click, skipped-above results as negatives.

    A click below position 1 makes every unclicked result above it a negative (at most `max_negatives`, nearest
    first); results below the last click are never negatives, since the user may not have looked at them.
    """
    rows: list[dict[str, Any]] = []
    for n, imp in enumerate(impressions):
        if not isinstance(imp.query, str) or not imp.query.strip():
            raise InputError("impression has an empty query", where=f"impression {n}")
        shown = [str(d) for d in imp.result_ids]
        clicked = {str(c) for c in imp.clicked_ids}
        for rank, doc_id in enumerate(shown):
            if doc_id not in clicked:
                continue
            skipped = [d for d in shown[:rank] if d not in clicked]
            rows.append({"query": imp.query, "clicked_id": doc_id,
                         "negative_ids": list(reversed(skipped))[:max_negatives],
                         "request_id": imp.request_id, "rank": rank + 1})
    return rows


def write_training_rows(rows: list[dict[str, Any]], path: str | Path) -> Path:
    """Write rows as JSONL atomically (a crash leaves the old file or none, never half of one)."""
    if not rows:
        raise InputError("no clicks in the feedback: nothing to train on", where=str(path))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_open(path) as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    return path
