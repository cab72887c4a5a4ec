"""A tiny real SciFact project for the loop: a BEIR sample, a registry with the bundled model as champion, clicks."""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path

import pytest

from embedops.data import load_beir


@dataclass
class Sample:
    """A SciFact sample in BEIR layout: train qrels (the clicks) and test qrels (the golden set) on one corpus."""

    root: Path
    queries: dict[str, str]          # train query id -> text
    relevant: dict[str, list[str]]   # train query id -> judged documents
    doc_ids: list[str]


def write_sample(shared: Path, root: Path, *, train_queries: int = 12, golden_queries: int = 20,
                 documents: int = 60, seed: int = 0) -> Sample:
    """Train and test queries of SciFact with their judged documents plus random distractors, as one BEIR folder."""
    train, test = load_beir(shared / "scifact", "train"), load_beir(shared / "scifact", "test")
    rng = random.Random(seed)
    # Train queries whose first judged documents all differ: one click each makes pairs with no repeated text.
    first: dict[str, str] = {}
    for q in sorted(train.qrels):
        first.setdefault(sorted(train.qrels[q])[0], q)
    tq = sorted(rng.sample(sorted(first.values()), train_queries))
    gq = sorted(rng.sample(sorted(test.qrels), golden_queries))
    needed = {d for q in tq for d in train.qrels[q]} | {d for q in gq for d in test.qrels[q]}
    others = sorted(set(train.corpus) - needed)
    docs = sorted(needed | set(rng.sample(others, max(0, documents - len(needed)))))
    (root / "qrels").mkdir(parents=True)
    with open(root / "corpus.jsonl", "w", encoding="utf-8") as fh:
        for d in docs:
            fh.write(json.dumps(train.corpus[d].to_json()) + "\n")
    with open(root / "queries.jsonl", "w", encoding="utf-8") as fh:
        for q in tq:
            fh.write(json.dumps({"_id": q, "text": train.queries[q]}) + "\n")
        for q in gq:
            fh.write(json.dumps({"_id": q, "text": test.queries[q]}) + "\n")
    for split, qs, ds in (("train", tq, train), ("test", gq, test)):
        with open(root / "qrels" / f"{split}.tsv", "w", encoding="utf-8") as fh:
            fh.write("query-id\tcorpus-id\tscore\n")
            for q in qs:
                for d, s in ds.qrels[q].items():
                    fh.write(f"{q}\t{d}\t{s}\n")
    return Sample(root, {q: train.queries[q] for q in tq}, {q: sorted(train.qrels[q]) for q in tq}, docs)


@pytest.fixture(scope="session")
def scifact_sample(tmp_path_factory, shared_data) -> Sample:
    """12 SciFact train queries (clicked) and 20 golden test queries over a 60-document corpus."""
    return write_sample(shared_data, tmp_path_factory.mktemp("loop-data") / "scifact")


def make_project(folder: Path) -> Path:
    """A project file and a registry whose champion is the bundled model (`minilm@v1`); returns the config path."""
    from embedops import Project
    from embedops.models import bundled_default_path

    folder.mkdir(parents=True, exist_ok=True)
    cfg = folder / "embedops.yaml"
    # 128 tokens: a SciFact abstract is cut in half, which halves the encoding time of the gate and the collection.
    cfg.write_text("version: 1\nname: loop-test\nmodel:\n  max_tokens: 128\n", encoding="utf-8")
    Project.open(cfg).registry.import_model(bundled_default_path(), "minilm", alias="champion")
    return cfg


def log_clicks(folder: Path, sample: Sample, *, shuffled: bool = False, t0: float = 1_000_000.0,
               seed: int = 1) -> None:
    """One search per train query, served by the champion and clicked: the judged document at rank 2 under a
    distractor (skipped above a click: a hard negative), three more below. `shuffled` shows and clicks another
    query's document instead: pairs of noise. All texts of the pairs differ, so one batch holds them all."""
    from embedops.events import EventLog, FeedbackEvent, RequestEvent

    rng = random.Random(seed)
    qids = list(sample.queries)
    judged = {d for r in sample.relevant.values() for d in r}
    pool = [d for d in sample.doc_ids if d not in judged]
    above = rng.sample(pool, len(qids))
    clicked = [sample.relevant[q][0] for q in qids]
    if shuffled:
        clicked = clicked[1:] + clicked[:1]  # each query clicks the next query's document
    with EventLog(folder / "events.db") as log:
        for n, (qid, doc) in enumerate(zip(qids, clicked, strict=True)):
            below = rng.sample([d for d in pool if d != above[n]], 3)
            rid = f"req{n}"
            log.log(RequestEvent(rid, kind="search", model="champion", model_version="minilm@v1",
                                 query=sample.queries[qid], k=5, result_ids=[above[n], doc, *below],
                                 user_id=f"user{n % 3}", time=t0 + n))
            log.log(FeedbackEvent(rid, "click", doc, time=t0 + n + 0.5))
