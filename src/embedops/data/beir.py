"""BEIR folders: corpus.jsonl[.gz], queries.jsonl[.gz], qrels/<split>.tsv."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from embedops.data.documents import document_from_row
from embedops.data.readers import iter_csv, iter_jsonl
from embedops.data.records import Document, Qrels
from embedops.errors import InputError


@dataclass
class BeirDataset:
    """A retrieval test collection: documents, queries and graded judgements for one split."""

    corpus: dict[str, Document]
    queries: dict[str, str]
    qrels: Qrels
    name: str = ""
    split: str = "test"


def corpus_fingerprint(doc_ids: Iterable[str]) -> str:
    """Order-free hash of a corpus's document ids: equal for the same documents however they were listed or sampled."""
    h = hashlib.sha256()
    for doc_id in sorted(set(doc_ids)):
        h.update(doc_id.encode("utf-8", "surrogatepass"))
        h.update(b"\x00")  # a separator no id contains, so ("ab", "c") and ("a", "bc") differ
    return h.hexdigest()[:16]


def _find(folder: Path, stem: str) -> Path:
    for name in (f"{stem}.jsonl", f"{stem}.jsonl.gz"):
        if (folder / name).is_file():
            return folder / name
    raise InputError(f"{stem}.jsonl not found in the BEIR folder", where=str(folder))


def read_beir_corpus(path: Path, allow_empty: bool = False) -> dict[str, Document]:
    """Read a BEIR corpus file (rows read by `data.documents` rules, `_id` required, text may be absent when a
    title is there); duplicate ids and empty documents are errors naming the line."""
    corpus: dict[str, Document] = {}
    for lineno, obj in iter_jsonl(path):
        where = f"{path}:{lineno}"
        if "_id" not in obj:
            raise InputError("record has no _id", where=where)
        doc = document_from_row({"text": "", **obj}, where, text_field="text", id_field="_id",
                                allow_empty=allow_empty)
        if doc.id in corpus:
            raise InputError(f"duplicate document id {doc.id!r}", where=where)
        corpus[doc.id] = doc
    if not corpus:
        raise InputError("corpus is empty", where=str(path))
    return corpus


def read_beir_queries(path: Path) -> dict[str, str]:
    """Read BEIR queries (ids to text); `metadata` is ignored, as retrieval must."""
    queries: dict[str, str] = {}
    for lineno, obj in iter_jsonl(path):
        where = f"{path}:{lineno}"
        if "_id" not in obj or not isinstance(obj.get("text"), str):
            raise InputError("query needs _id and a text string", where=where)
        if not obj["text"].strip():
            raise InputError(f"query {obj['_id']!r} is empty or whitespace-only", where=where)
        queries[str(obj["_id"])] = obj["text"]
    return queries


def read_qrels(path: Path) -> Qrels:
    """Read a BEIR qrels TSV (query-id, corpus-id, score) with a header line."""
    qrels: Qrels = {}
    for lineno, row in iter_csv(path, delimiter="\t"):
        where = f"{path}:{lineno}"
        qid, did, score = row.get("query-id"), row.get("corpus-id"), row.get("score")
        if qid is None or did is None or score is None:
            raise InputError("qrels need the columns query-id, corpus-id, score", where=where)
        try:
            rel = int(float(score))
        except ValueError as exc:
            raise InputError(f"score {score!r} is not a number", where=where) from exc
        qrels.setdefault(str(qid), {})[str(did)] = rel
    return qrels


def load_beir(folder: str | Path, split: str = "test", *, check_ids: bool = True) -> BeirDataset:
    """Load a BEIR folder for one split; qrels that name unknown query or document ids are errors."""
    root = Path(folder)
    if not root.exists():
        raise InputError("BEIR folder not found", where=str(root))
    if not root.is_dir():
        raise InputError("expected a BEIR folder (corpus.jsonl, queries.jsonl, qrels/)", where=str(root))
    qrels_path = root / "qrels" / f"{split}.tsv"
    if not qrels_path.is_file():
        available = sorted(p.stem for p in (root / "qrels").glob("*.tsv")) if (root / "qrels").is_dir() else []
        raise InputError(f"no qrels for split {split!r} (available: {', '.join(available) or 'none'})",
                         where=str(qrels_path))
    corpus = read_beir_corpus(_find(root, "corpus"))
    all_queries = read_beir_queries(_find(root, "queries"))
    qrels = read_qrels(qrels_path)
    if check_ids:
        bad_q = [q for q in qrels if q not in all_queries]
        if bad_q:
            raise InputError(f"qrels name {len(bad_q)} unknown query id(s), e.g. {bad_q[:3]}",
                             where=str(qrels_path))
        bad_d = sorted({d for rel in qrels.values() for d in rel if d not in corpus})
        if bad_d:
            raise InputError(f"qrels name {len(bad_d)} unknown document id(s), e.g. {bad_d[:3]}",
                             where=str(qrels_path))
    queries = {q: all_queries[q] for q in qrels if q in all_queries}
    return BeirDataset(corpus=corpus, queries=queries, qrels=qrels, name=root.name, split=split)


def sample_beir(dataset: BeirDataset, *, queries: int | None = None, documents: int | None = None,
                seed: int = 0) -> BeirDataset:
    """A small, still-valid sample: `queries` random queries, and a corpus of every document they judge plus
    random distractors up to `documents`. For validating a model on a small sample before a full run."""
    import random

    rng = random.Random(seed)
    qids = sorted(dataset.queries)
    if queries is not None and queries < len(qids):
        qids = sorted(rng.sample(qids, queries))
    qrels = {q: dataset.qrels[q] for q in qids}
    needed = {d for rel in qrels.values() for d in rel}
    doc_ids = list(dataset.corpus)
    if documents is not None and documents < len(doc_ids):
        others = [d for d in doc_ids if d not in needed]
        extra = rng.sample(others, max(0, min(len(others), documents - len(needed))))
        keep = needed | set(extra)
        doc_ids = [d for d in doc_ids if d in keep]
    return BeirDataset(
        corpus={d: dataset.corpus[d] for d in doc_ids},
        queries={q: dataset.queries[q] for q in qids},
        qrels=qrels,
        name=dataset.name,
        split=dataset.split,
    )
