"""Argument checks shared by the CLI and the `Project` API: each failure is one InputError naming where and what.

They run before any work starts (before a model loads, before anything is written), so a bad value costs nothing.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from embedops.errors import InputError

# Retrieval metrics with a cut-off: `ndcg@10`; `p@k` is precision@k (trec_eval's name).
RETRIEVAL_KINDS = ("ndcg", "recall", "mrr", "map", "precision")
_RETRIEVAL = re.compile(r"^(ndcg|recall|mrr|map|precision|p)@(-?\d+)$")
RETRIEVAL_HELP = "ndcg@k, recall@k, mrr@k, map@k or precision@k with k >= 1 (e.g. ndcg@10)"


def parse_retrieval_metric(name: str, where: str = "metric") -> tuple[str, int]:
    """('ndcg', 10) for 'ndcg@10'; an unknown name or a cut-off below 1 is an InputError listing the valid ones."""
    text = str(name).strip().lower()
    m = _RETRIEVAL.match(text)
    if not m:
        raise InputError(f"unknown metric {name!r}; use {RETRIEVAL_HELP}", where=where)
    k = int(m.group(2))
    if k < 1:
        raise InputError(f"metric {name!r} has cut-off {k}; the cut-off must be at least 1 (e.g. ndcg@10)",
                         where=where)
    return ("precision" if m.group(1) == "p" else m.group(1)), k


def is_retrieval_metric(name: str) -> bool:
    """True for a well-formed retrieval metric name such as recall@100."""
    m = _RETRIEVAL.match(str(name).strip().lower())
    return bool(m) and int(m.group(2)) >= 1


def retrieval_metrics(value: str | Iterable[str], where: str = "metrics") -> list[str]:
    """A comma-separated string (or list) of retrieval metrics, each checked, duplicates dropped, order kept."""
    names = [m.strip() for m in value.split(",")] if isinstance(value, str) else [str(m).strip() for m in value]
    names = [n.lower() for n in names if n]
    if not names:
        raise InputError(f"no metrics given; use {RETRIEVAL_HELP}", where=where)
    for name in names:
        parse_retrieval_metric(name, where)
    return list(dict.fromkeys(names))


def at_least(value: Any, minimum: float, where: str, *, optional: bool = True) -> None:
    """`value` is a number >= minimum (None allowed when optional); booleans are refused."""
    if value is None and optional:
        return
    if isinstance(value, bool) or not isinstance(value, int | float) or value != value or value < minimum:
        raise InputError(f"must be a number >= {minimum:g}, got {value!r}", where=where)


def positive_int(value: Any, where: str, *, minimum: int = 1, optional: bool = True) -> None:
    """`value` is an int >= minimum (None allowed when optional)."""
    if value is None and optional:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise InputError(f"must be an integer >= {minimum}, got {value!r}", where=where)


def fraction(value: Any, where: str, *, low: float = 0.0, high: float = 1.0, include_low: bool = True,
             include_high: bool = False, optional: bool = True) -> None:
    """`value` lies in the range low..high (ends included as asked)."""
    if value is None and optional:
        return
    ok = isinstance(value, int | float) and not isinstance(value, bool) and value == value
    if ok:
        ok = (value >= low if include_low else value > low) and (value <= high if include_high else value < high)
    if not ok:
        rng = f"{'[' if include_low else '('}{low:g}, {high:g}{']' if include_high else ')'}"
        raise InputError(f"must be in {rng}, got {value!r}", where=where)


def choice(value: Any, choices: Sequence[str], where: str, *, optional: bool = True) -> None:
    """`value` is one of `choices` (None allowed when optional)."""
    if value is None and optional:
        return
    if value not in choices:
        raise InputError(f"must be one of {', '.join(choices)}; got {value!r}", where=where)


def chunking(chunk_tokens: int | None, chunk_overlap: int, where: str = "chunk_overlap") -> None:
    """Chunks of at least 16 tokens whose overlap is smaller than the chunk (else it never advances)."""
    positive_int(chunk_tokens, "chunk_tokens", minimum=16)
    positive_int(chunk_overlap, where, minimum=0, optional=False)
    if chunk_tokens is not None and chunk_overlap >= chunk_tokens:
        raise InputError(f"the overlap ({chunk_overlap}) must be smaller than the chunk ({chunk_tokens} tokens)",
                         where=where)


def existing(path: str | os.PathLike[str] | None, where: str, *, kind: str = "any") -> Path | None:
    """The path, which must exist (kind 'file', 'dir' or 'any'); None passes through."""
    if path is None:
        return None
    p = Path(path).expanduser()
    if not p.exists():
        raise InputError(f"{'folder' if kind == 'dir' else 'file' if kind == 'file' else 'path'} not found: {p}",
                         where=where)
    if kind == "file" and not p.is_file():
        raise InputError(f"expected a file, got a folder: {p}", where=where)
    if kind == "dir" and not p.is_dir():
        raise InputError(f"expected a folder, got a file: {p}", where=where)
    return p


def writable_target(path: str | os.PathLike[str] | None, where: str, *, folder: bool = False) -> Path | None:
    """An output path whose parent exists or can be created (no file in the way, writable); None passes through.

    `folder` says the output is a folder: an existing file at the path is refused; otherwise an existing folder is.
    """
    if path is None:
        return None
    p = Path(path).expanduser().absolute()
    if folder and p.exists() and not p.is_dir():
        raise InputError(f"expected a folder, but a file is there: {p}", where=where)
    if not folder and p.is_dir():
        raise InputError(f"expected a file name, but a folder is there: {p}", where=where)
    parent = p.parent
    while not parent.exists():
        if parent.parent == parent:
            break
        parent = parent.parent
    if not parent.is_dir():
        raise InputError(f"cannot create {p}: {parent} is a file, not a folder", where=where)
    if not os.access(parent, os.W_OK | os.X_OK):
        raise InputError(f"cannot write under {parent} (permission denied)", where=where)
    return p


def non_empty_text(value: Any, where: str) -> None:
    """A string with at least one non-space character."""
    if not isinstance(value, str) or not value.strip():
        raise InputError(f"must be a non-empty text, got {value!r}", where=where)


def beir_layout(path: Path, split: str, split_where: str = "split") -> None:
    """A BEIR folder with a corpus, queries and the split's qrels (checked without reading them)."""
    existing(path, str(path), kind="dir")
    for stem in ("corpus", "queries"):
        if not any((path / f"{stem}{ext}").is_file() for ext in (".jsonl", ".jsonl.gz")):
            raise InputError(f"no {stem}.jsonl: expected a BEIR folder", where=str(path))
    qrels = path / "qrels" / f"{split}.tsv"
    if not qrels.is_file():
        available = sorted(q.stem for q in (path / "qrels").glob("*.tsv")) if (path / "qrels").is_dir() else []
        raise InputError(f"no qrels for split {split!r} in {path} (available: {', '.join(available) or 'none'})",
                         where=split_where)
