"""Real embeddings for the monitoring tests: STS Benchmark sentences and SciFact queries/titles, encoded once."""

from __future__ import annotations

import gzip
import json
from dataclasses import dataclass

import numpy as np
import pytest

WINDOW = 150  # queries per drift window
REFERENCE = 1000  # reference queries
NO_DRIFT_WINDOWS = 24
DRIFT_WINDOWS = 20


@dataclass
class DriftData:
    """Unit vectors: `reference` and `same` (disjoint STS sentences), `other` (SciFact); texts alongside."""

    reference: np.ndarray
    same: np.ndarray
    other: np.ndarray
    same_texts: list[str]
    other_texts: list[str]
    window: int = WINDOW


def _shared_vectors(tmp_path_factory, encoder, sentences: list[str], other: list[str]) -> tuple[np.ndarray, ...]:
    """Both sets encoded once per test run: pytest-xdist workers share the file (the first one encodes, under a
    lock, the others read it), so the two monitoring test files cost one encoding of 7,600 texts, not two."""
    import fcntl
    import hashlib
    import os

    base = tmp_path_factory.getbasetemp()
    run_dir = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base  # the run's folder, not a worker's
    digest = hashlib.sha256("\n".join(sentences + other).encode()).hexdigest()[:16]
    cache = run_dir / f"drift-vectors-{digest}.npz"
    with open(run_dir / "drift-vectors.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not cache.exists():
            from embedops.eval.cache import encode_cached

            same = encode_cached(encoder, sentences, batch_size=128)
            vectors = encode_cached(encoder, other, batch_size=128)
            tmp = cache.with_suffix(".tmp.npz")
            np.savez(tmp, same=same, other=vectors)
            os.replace(tmp, cache)
    with np.load(cache) as data:
        return data["same"], data["other"]


@pytest.fixture(scope="session")
def drift_data(encoder, shared_data, tmp_path_factory) -> DriftData:
    """STS train sentences, shuffled (genres are grouped in the file), split into reference and windows."""
    from embedops.data import load_sts

    sts = load_sts(shared_data / "stsbenchmark", "train")
    # sentence1 only: a pair's paraphrase on both sides of a split would make them closer than independent queries.
    sentences = list(dict.fromkeys(s.strip() for s in sts.sentences1))
    np.random.default_rng(7).shuffle(sentences)
    need = REFERENCE + NO_DRIFT_WINDOWS * WINDOW
    assert len(sentences) >= need
    sentences = sentences[:need]

    queries = [json.loads(line)["text"] for line in open(shared_data / "scifact" / "queries.jsonl", encoding="utf-8")]
    titles = []
    with gzip.open(shared_data / "scifact" / "corpus.jsonl.gz", "rt", encoding="utf-8") as fh:
        for line in fh:
            titles.append(json.loads(line)["title"])
            if len(titles) >= 2500:
                break
    other = list(dict.fromkeys(t.strip() for t in queries + titles if t.strip()))
    np.random.default_rng(8).shuffle(other)
    other = other[:DRIFT_WINDOWS * WINDOW]
    assert len(other) == DRIFT_WINDOWS * WINDOW

    same, vectors = _shared_vectors(tmp_path_factory, encoder, sentences, other)
    return DriftData(reference=same[:REFERENCE], same=same[REFERENCE:], other=vectors,
                     same_texts=sentences[REFERENCE:], other_texts=other)
