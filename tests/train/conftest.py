"""Small real training data: highly similar STS-B train pairs (short sentences, so a step takes a second)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from embedops.data import load_sts

STS = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "stsbenchmark"
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def similar_pairs(n: int) -> list[tuple[str, str]]:
    """The first `n` STS-B train pairs scored >= 4 (distinct anchors)."""
    sts = load_sts(STS, "train")
    out, seen = [], set()
    for a, b, s in zip(sts.sentences1, sts.sentences2, sts.scores, strict=True):
        if s >= 4.0 and a not in seen and b not in seen:
            seen.update((a, b))
            out.append((a, b))
        if len(out) == n:
            break
    return out


def write_pairs(path: Path, n: int) -> Path:
    """A JSONL pairs file with `n` rows."""
    with open(path, "w", encoding="utf-8") as fh:
        for a, b in similar_pairs(n):
            fh.write(json.dumps({"anchor": a, "positive": b}) + "\n")
    return path


@pytest.fixture()
def pairs_file(tmp_path: Path) -> Path:
    """40 pairs in JSONL."""
    return write_pairs(tmp_path / "pairs.jsonl", 40)
