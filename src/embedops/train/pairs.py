"""Training examples from pairs/triplets files, a BEIR folder's qrels, or production feedback.

Every reader returns a `TrainingSet`; bad rows raise InputError naming the file and line.

Feedback schema (JSONL, one event per line; written by the production loop, readable by hand):

    {"query": "how do statins work", "clicked": "Statins inhibit HMG-CoA reductase ...",
     "negatives": ["shown but skipped text", ...]}            # optional

`clicked` may be replaced by `clicked_id` (with a corpus given to the reader); `negatives` may be
replaced by `negative_ids`. Optional `label` (default 1): rows with label <= 0 are skipped, so an
export of all impressions can be fed in directly.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from embedops.data.beir import load_beir
from embedops.data.readers import iter_rows
from embedops.data.records import Document, Qrels
from embedops.errors import InputError

ANCHOR_FIELDS = ("anchor", "query", "question", "sentence1", "text1")
POSITIVE_FIELDS = ("positive", "pos", "document", "answer", "sentence2", "text2")
NEGATIVE_FIELDS = ("negative", "neg", "hard_negative", "negatives")


@dataclass
class TrainingSet:
    """(anchor, positive, negatives) examples plus what is needed to mine and evaluate with them."""

    anchors: list[str]
    positives: list[str]
    negatives: list[list[str]]
    source: str = ""
    # Optional retrieval view: anchor index -> query id, relevance of docs, and the corpus to mine from.
    query_ids: list[str] = field(default_factory=list)
    qrels: Qrels = field(default_factory=dict)
    corpus: dict[str, Document] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.anchors)

    @property
    def num_negatives(self) -> int:
        """Negatives per example (the minimum over examples; columns must be rectangular to train)."""
        return min((len(n) for n in self.negatives), default=0)

    def fingerprint(self) -> str:
        """sha256 over the examples themselves: same data, same fingerprint, whatever file it came from."""
        h = hashlib.sha256()
        for a, p, n in zip(self.anchors, self.positives, self.negatives, strict=True):
            h.update(json.dumps([a, p, n], ensure_ascii=False).encode())
            h.update(b"\n")
        return h.hexdigest()

    def columns(self, num_negatives: int | None = None) -> dict[str, list[str]]:
        """Columns for a datasets.Dataset: anchor, positive, negative_1..k (k = num_negatives)."""
        k = self.num_negatives if num_negatives is None else min(num_negatives, self.num_negatives)
        cols: dict[str, list[str]] = {"anchor": list(self.anchors), "positive": list(self.positives)}
        for j in range(k):
            cols["negative" if k == 1 else f"negative_{j + 1}"] = [n[j] for n in self.negatives]
        return cols

    def subset(self, idx: Iterable[int]) -> TrainingSet:
        """A new set with the examples at `idx` (corpus and qrels are shared)."""
        idx = list(idx)
        return TrainingSet(
            anchors=[self.anchors[i] for i in idx],
            positives=[self.positives[i] for i in idx],
            negatives=[list(self.negatives[i]) for i in idx],
            source=self.source,
            query_ids=[self.query_ids[i] for i in idx] if self.query_ids else [],
            qrels=self.qrels,
            corpus=self.corpus,
        )


def _text(row: dict[str, Any], names: tuple[str, ...], what: str, where: str, required: bool) -> Any:
    for name in names:
        if name in row and row[name] is not None:
            value = row[name]
            if isinstance(value, str):
                if not value.strip():
                    raise InputError(f"field {name!r} ({what}) is empty", where=where)
                return value
            if isinstance(value, list) and what == "negative":
                if not all(isinstance(v, str) and v.strip() for v in value):
                    raise InputError(f"field {name!r} must be a list of non-empty strings", where=where)
                return value
            raise InputError(f"field {name!r} ({what}) is {type(value).__name__}, expected a string", where=where)
    if required:
        raise InputError(f"row has no {what} field (one of: {', '.join(names)})", where=where)
    return None


def _check_not_empty(ts: TrainingSet, path: Path) -> TrainingSet:
    if not ts.anchors:
        raise InputError("training file has no examples", where=str(path))
    return ts


def read_pairs(path: str | Path) -> TrainingSet:
    """Pairs or triplets from JSONL/CSV/Parquet: anchor + positive [+ negative]; field aliases accepted."""
    p = Path(path)
    anchors: list[str] = []
    positives: list[str] = []
    negatives: list[list[str]] = []
    with_neg: bool | None = None
    for lineno, row in iter_rows(p):
        where = f"{p}:{lineno}"
        a = _text(row, ANCHOR_FIELDS, "anchor", where, True)
        pos = _text(row, POSITIVE_FIELDS, "positive", where, True)
        neg = _text(row, NEGATIVE_FIELDS, "negative", where, False)
        has = neg is not None and neg != []
        if with_neg is None:
            with_neg = has
        elif has != with_neg:
            # A training batch needs the same columns in every row: mixing pairs and triplets is an error.
            raise InputError("row has no negative but earlier rows do (or the reverse); "
                             "give every row a negative or none", where=where)
        anchors.append(a)
        positives.append(pos)
        negatives.append([neg] if isinstance(neg, str) else list(neg or []))
    return _check_not_empty(TrainingSet(anchors, positives, negatives, source=str(p)), p)


def pairs_from_beir(folder: str | Path, split: str = "train", min_score: int = 1) -> TrainingSet:
    """(query, relevant document) pairs from a BEIR folder's qrels; document = title + ' ' + text."""
    ds = load_beir(folder, split)
    anchors, positives, qids = [], [], []
    for qid, rels in ds.qrels.items():
        for did, score in rels.items():
            if score >= min_score:
                anchors.append(ds.queries[qid])
                positives.append(ds.corpus[did].full_text)
                qids.append(qid)
    if not anchors:
        raise InputError(f"qrels for split {split!r} have no relevant pairs", where=str(folder))
    return TrainingSet(anchors, positives, [[] for _ in anchors], source=f"{folder}#{split}",
                       query_ids=qids, qrels=ds.qrels, corpus=ds.corpus)


def read_feedback(path: str | Path, corpus: dict[str, Document] | None = None) -> TrainingSet:
    """Production feedback (see the module docstring for the schema) as training examples."""
    p = Path(path)
    corpus = corpus or {}
    anchors, positives, negatives = [], [], []

    def doc_text(doc_id: Any, where: str) -> str:
        if not corpus:
            raise InputError("clicked_id/negative_ids need a corpus to look the ids up", where=where)
        if str(doc_id) not in corpus:
            raise InputError(f"unknown document id {doc_id!r}", where=where)
        return corpus[str(doc_id)].full_text

    for lineno, row in iter_rows(p):
        where = f"{p}:{lineno}"
        label = row.get("label", 1)
        if not isinstance(label, int | float) or label <= 0:
            continue
        query = _text(row, ("query",), "query", where, True)
        if row.get("clicked") is not None:
            clicked = _text(row, ("clicked",), "clicked", where, True)
        elif row.get("clicked_id") is not None:
            clicked = doc_text(row["clicked_id"], where)
        else:
            raise InputError("row has neither 'clicked' (text) nor 'clicked_id'", where=where)
        negs = row.get("negatives")
        if negs is None and row.get("negative_ids") is not None:
            negs = [doc_text(d, where) for d in row["negative_ids"]]
        if negs is not None and (not isinstance(negs, list) or not all(isinstance(n, str) and n.strip()
                                                                       for n in negs)):
            raise InputError("'negatives' must be a list of non-empty strings", where=where)
        anchors.append(query)
        positives.append(clicked)
        negatives.append([n for n in (negs or []) if n != clicked])
    return _check_not_empty(TrainingSet(anchors, positives, negatives, source=str(p)), p)


def load_training_set(source: str | Path, *, kind: str = "auto", split: str = "train",
                      corpus: dict[str, Document] | None = None) -> TrainingSet:
    """Read any supported training source; `kind` is pairs, beir, feedback or auto (folder -> beir)."""
    p = Path(source)
    if not p.exists():
        raise InputError("training data not found", where=str(p))
    if kind == "auto":
        kind = "beir" if p.is_dir() else "pairs"
    if kind == "beir":
        return pairs_from_beir(p, split)
    if kind == "feedback":
        return read_feedback(p, corpus)
    if kind == "pairs":
        if p.is_dir():
            raise InputError("expected a pairs file, found a folder (use --format beir for BEIR folders)",
                             where=str(p))
        if p.stat().st_size == 0:
            raise InputError("training file is empty", where=str(p))
        return read_pairs(p)
    raise InputError(f"unknown training data format {kind!r} (use pairs, beir, feedback or auto)")
