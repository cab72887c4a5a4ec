"""STS Benchmark: tab-separated pairs with a 0-5 similarity score. Never parsed with CSV quoting."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from embedops.data.readers import iter_lines
from embedops.errors import InputError


@dataclass
class StsPairs:
    """Sentence pairs with gold scores."""

    sentences1: list[str]
    sentences2: list[str]
    scores: list[float]


def load_sts(path: str | Path, split: str = "test") -> StsPairs:
    """Read `stsbenchmark.tsv` (split, score, s1, s2) or a folder holding it; raw tab splitting, no quoting."""
    p = Path(path)
    if p.is_dir():
        p = p / "stsbenchmark.tsv"
    s1: list[str] = []
    s2: list[str] = []
    scores: list[float] = []
    header: list[str] | None = None
    for lineno, line in iter_lines(p):
        fields = line.split("\t")
        if header is None:
            header = fields
            if header[:4] != ["split", "score", "sentence1", "sentence2"]:
                raise InputError("expected the header split, score, sentence1, sentence2", where=f"{p}:1")
            continue
        if not line.strip():
            continue
        if len(fields) < 4:
            raise InputError(f"expected 4 tab-separated fields, got {len(fields)}", where=f"{p}:{lineno}")
        if fields[0] != split:
            continue
        try:
            score = float(fields[1])
        except ValueError as exc:
            raise InputError(f"score {fields[1]!r} is not a number", where=f"{p}:{lineno}") from exc
        if not fields[2].strip() or not fields[3].strip():
            raise InputError("empty or whitespace-only sentence", where=f"{p}:{lineno}")
        s1.append(fields[2])
        s2.append(fields[3])
        scores.append(score)
    if not scores:
        raise InputError(f"no pairs for split {split!r}", where=str(p))
    return StsPairs(s1, s2, scores)
