"""Shared fixtures: the real bundled model (loaded once), real evaluation data, small samples of it."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("EMBEDOPS_SHARED_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture(scope="session", autouse=True)
def _hermetic_cache(tmp_path_factory):
    """Each test session gets its own embedding/export cache, so no test depends on a warm cache."""
    if "EMBEDOPS_CACHE" not in os.environ:
        os.environ["EMBEDOPS_CACHE"] = str(tmp_path_factory.mktemp("embedops-cache"))
    yield


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The shared evaluation data folder (SciFact, STS Benchmark, digits)."""
    if not (SHARED_DATA / "scifact").is_dir():
        pytest.fail(f"shared evaluation data not found at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(scope="session")
def encoder():
    """The bundled all-MiniLM-L6-v2 through our torch backend."""
    from embedops._console import quiet_libraries
    from embedops.models import load_encoder

    quiet_libraries()
    return load_encoder()


@pytest.fixture(scope="session")
def small_beir(tmp_path_factory, shared_data) -> Path:
    """A real SciFact sample in BEIR layout: 20 test queries, their judged docs plus distractors, 120 docs."""
    from embedops.data import load_beir, sample_beir

    ds = sample_beir(load_beir(shared_data / "scifact", "test"), queries=20, documents=120, seed=3)
    root = tmp_path_factory.mktemp("beir") / "scifact-small"
    (root / "qrels").mkdir(parents=True)
    with open(root / "corpus.jsonl", "w", encoding="utf-8") as fh:
        for doc in ds.corpus.values():
            fh.write(json.dumps(doc.to_json()) + "\n")
    with open(root / "queries.jsonl", "w", encoding="utf-8") as fh:
        for qid, text in ds.queries.items():
            fh.write(json.dumps({"_id": qid, "text": text}) + "\n")
    with open(root / "qrels" / "test.tsv", "w", encoding="utf-8") as fh:
        fh.write("query-id\tcorpus-id\tscore\n")
        for qid, rel in ds.qrels.items():
            for did, score in rel.items():
                fh.write(f"{qid}\t{did}\t{score}\n")
    return root
