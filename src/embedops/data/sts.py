"""STS pairs with gold similarity scores, from the layouts people bring them in.

Layouts read (header names are matched case-insensitively, with the aliases in `COLUMN_ALIASES`):

- STS Benchmark `stsbenchmark.tsv`: split, score, sentence1, sentence2; rows of other splits are skipped.
- The original STS-B files as SentEval reads them (`sts-train.csv`, `sts-dev.csv`, `sts-test.csv`): no header,
  tab-separated genre, file, year, id, score, sentence1, sentence2, sometimes followed by source columns.
- Any TSV / CSV / JSONL / Parquet with sentence1, sentence2 and score columns (MTEB's STS sets, BIOSSES), or SICK's
  sentence_A, sentence_B, relatedness_score (with its SemEval_set split column in the full SICK.txt).

Tab-separated files (.tsv, .tab, .txt, and a .csv whose first line holds a tab, as the original STS-B files do) are
split on tabs and never CSV-unquoted: STS sentences contain quote characters that quoting would swallow or merge
across lines. Comma-separated files go through the csv module.

Splits: a file with a split column keeps the rows of the asked split ("dev", "validation" and SICK's "TRIAL" are one
name). A file without one is a single split chosen by the user when they picked the file: `split` is ignored there,
and `StsPairs.split` is None so reports can say the whole file was used.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from embedops.data.readers import iter_csv, iter_jsonl, iter_lines, iter_parquet, require_file
from embedops.errors import InputError

COLUMN_ALIASES: dict[str, tuple[str, ...]] = {
    "sentence1": ("sentence1", "sentence_1", "sentence_a", "sent1", "s1", "text1", "text_1", "text_a"),
    "sentence2": ("sentence2", "sentence_2", "sentence_b", "sent2", "s2", "text2", "text_2", "text_b"),
    "score": ("score", "similarity_score", "relatedness_score", "similarity", "relatedness", "gold_score", "label"),
    "split": ("split", "semeval_set"),
}
"""Canonical column -> accepted header names (after lower-casing and turning spaces/hyphens into '_')."""

_REQUIRED = ("sentence1", "sentence2", "score")
_DEV_NAMES = {"dev", "validation", "valid", "val", "trial"}
_TSV_SUFFIXES = (".tsv", ".tab", ".txt")
# Original STS-B layout (no header): genre, file, year, id, score, sentence1, sentence2, [source columns].
_ORIGINAL_STSB = {"score": 4, "sentence1": 5, "sentence2": 6}


@dataclass
class StsPairs:
    """Sentence pairs with gold scores; `split` is None when the file had no split column."""

    sentences1: list[str]
    sentences2: list[str]
    scores: list[float]
    split: str | None = None


def _norm_header(name: Any) -> str:
    return re.sub(r"[\s\-]+", "_", str(name).strip().lower())


def _norm_split(name: Any) -> str:
    s = str(name).strip().lower()
    return "dev" if s in _DEV_NAMES else s


def _columns(names: list[Any], where: str) -> dict[str, Any]:
    """Map canonical columns to the file's own names; a missing required column is an error naming `where`."""
    by_norm: dict[str, Any] = {}
    for name in names:
        by_norm.setdefault(_norm_header(name), name)
    found: dict[str, Any] = {}
    for column, aliases in COLUMN_ALIASES.items():
        for alias in aliases:
            if alias in by_norm:
                found[column] = by_norm[alias]
                break
    missing = [c for c in _REQUIRED if c not in found]
    if missing:
        looked = "; ".join(f"{c}: {', '.join(COLUMN_ALIASES[c])}" for c in missing)
        shown = ", ".join(str(n) for n in names[:12]) or "none"
        raise InputError(f"missing column {', '.join(missing)} (accepted names: {looked}); found: {shown}",
                         where=where)
    return found


def _score(value: Any, where: str) -> float:
    if isinstance(value, bool) or value is None:
        raise InputError(f"score {value!r} is not a number", where=where)
    try:
        score = float(value)
    except (TypeError, ValueError) as exc:
        raise InputError(f"score {value!r} is not a number", where=where) from exc
    if not math.isfinite(score):
        raise InputError(f"score {value!r} is not a finite number", where=where)
    return score


def _sentence(value: Any, column: str, where: str) -> str:
    if value is None:
        raise InputError(f"missing {column}", where=where)
    if not isinstance(value, str):
        raise InputError(f"{column} is {type(value).__name__}, expected a string", where=where)
    if not value.strip():
        raise InputError("empty or whitespace-only sentence", where=where)
    return value


Row = tuple[str, Any, Any, Any, Any]
"""(where, sentence1, sentence2, score, split or None) before validation."""


def _tsv_rows(p: Path) -> Iterator[Row]:
    cols: dict[str, int] | None = None
    for lineno, line in iter_lines(p):
        fields = line.split("\t")
        where = f"{p}:{lineno}"
        if cols is None:
            try:
                named = _columns(fields, where)
            except InputError:
                if len(fields) >= 7 and _is_number(fields[4]):
                    cols = dict(_ORIGINAL_STSB)  # headerless original STS-B: this first line is data
                else:
                    raise
            else:
                cols = {c: fields.index(name) for c, name in named.items()}
                continue
        if not line.strip():
            continue
        need = max(cols.values()) + 1
        if len(fields) < need:
            raise InputError(f"expected at least {need} tab-separated fields, got {len(fields)}", where=where)
        split = fields[cols["split"]] if "split" in cols else None
        yield where, fields[cols["sentence1"]], fields[cols["sentence2"]], fields[cols["score"]], split
    if cols is None:
        raise InputError("empty file: expected a header row", where=str(p))


def _dict_rows(p: Path, rows: Iterator[tuple[int, dict[str, Any]]], header_where: str | None) -> Iterator[Row]:
    """Rows from CSV/Parquet (one header, errors at `header_where`) or JSONL (None: each object has its own keys)."""
    cols: dict[str, Any] | None = None
    for lineno, row in rows:
        where = f"{p}:{lineno}"
        if cols is None or header_where is None:
            cols = _columns(list(row), header_where or where)
        missing = [c for c in cols.values() if row.get(c) is None]
        if missing:
            raise InputError(f"missing value for column {', '.join(map(str, missing))}", where=where)
        split = row[cols["split"]] if "split" in cols else None
        yield where, row[cols["sentence1"]], row[cols["sentence2"]], row[cols["score"]], split


def _is_number(text: str) -> bool:
    try:
        return math.isfinite(float(text))
    except ValueError:
        return False


def _first_line_has_tab(p: Path) -> bool:
    lines = iter_lines(p)
    try:
        first = next(lines, None)
    finally:
        lines.close()  # release the file now, not when the generator is collected
    return first is not None and "\t" in first[1]


def _rows(p: Path) -> Iterator[Row]:
    name = p.name.lower().removesuffix(".gz")
    if name.endswith(_TSV_SUFFIXES):
        return _tsv_rows(p)
    if name.endswith(".csv"):
        # The original STS-B files are called .csv but are tab-separated with unbalanced quotes: never unquote them.
        if _first_line_has_tab(p):
            return _tsv_rows(p)
        return _dict_rows(p, iter_csv(p, delimiter=","), f"{p}:1")
    if name.endswith((".jsonl", ".ndjson", ".json")):
        return _dict_rows(p, iter_jsonl(p), None)
    if name.endswith(".parquet"):
        return _dict_rows(p, iter_parquet(p), str(p))
    raise InputError("unsupported STS file type (use .tsv, .csv, .jsonl or .parquet)", where=str(p))


def _in_folder(folder: Path, split: str) -> Path:
    """The STS file of `split` inside a folder: stsbenchmark.tsv, original sts-<split>.csv, or <split>.<ext>."""
    names = [f"sts-{s}.csv" for s in _split_names(split)]
    names += [f"{s}.{ext}" for s in _split_names(split) for ext in ("tsv", "csv", "jsonl", "jsonl.gz", "parquet")]
    for name in ("stsbenchmark.tsv", *names):
        if (folder / name).is_file():
            return folder / name
    raise InputError(f"no STS file for split {split!r} in this folder (looked for stsbenchmark.tsv, "
                     f"{', '.join(names)})", where=str(folder))


def _split_names(split: str) -> list[str]:
    return ["dev", "validation", "trial"] if _norm_split(split) == "dev" else [split]


def load_sts(path: str | Path, split: str = "test") -> StsPairs:
    """Read STS pairs of `split` from a file or folder in any layout the module docstring lists."""
    p = Path(path)
    # A folder holding one file per split (sts-test.csv, test.jsonl) names the split by the file it gives.
    split_by_file = p.is_dir()
    if split_by_file:
        p = _in_folder(p, split)
    p = require_file(p, "STS file")
    wanted = _norm_split(split)
    s1: list[str] = []
    s2: list[str] = []
    scores: list[float] = []
    seen_splits: set[str] = set()
    has_split = False
    for where, a, b, score, row_split in _rows(p):
        if row_split is not None:
            has_split = True
            seen_splits.add(str(row_split))
            if _norm_split(row_split) != wanted:
                continue
        value = _score(score, where)
        s1.append(_sentence(a, "sentence1", where))
        s2.append(_sentence(b, "sentence2", where))
        scores.append(value)
    if not scores:
        if has_split:
            raise InputError(f"no pairs for split {split!r} (the file has: {', '.join(sorted(seen_splits))})",
                             where=str(p))
        raise InputError("no sentence pairs in the file", where=str(p))
    return StsPairs(s1, s2, scores, split=split if has_split or split_by_file else None)
