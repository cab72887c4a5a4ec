"""Index fixtures: the real bundled model (an `Encoder` of embedops.protocols), the loader a collection reopens
its recorded encoder with, and the SciFact sample shipped with the package."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

SAMPLE = Path(__file__).resolve().parents[2] / "src" / "embedops" / "samples" / "scifact-mini"


@pytest.fixture(scope="session")
def encoder():
    """The bundled all-MiniLM-L6-v2 (torch backend)."""
    from embedops._console import quiet_libraries
    from embedops.models import load_encoder

    quiet_libraries()
    return load_encoder()


@pytest.fixture(scope="session")
def loader():
    """The EncoderLoader for recorded specs (embedops.models.encoder_from_spec)."""
    from embedops.models import encoder_from_spec

    return encoder_from_spec


TOPICS = ("cells", "disease", "genes", "drugs")


@pytest.fixture(scope="session")
def scifact_mini(encoder) -> tuple[list[dict[str, Any]], np.ndarray, list[str]]:
    """The real SciFact sample bundled with the package: 300 documents (title + the start of the abstract, so the
    model encodes them in seconds) with metadata to filter on, their document vectors, and 40 queries."""
    rows = [json.loads(line) for line in (SAMPLE / "corpus.jsonl").read_text(encoding="utf-8").splitlines()]
    docs = [{"id": str(r["_id"]), "text": f"{r.get('title', '')} {r['text'][:300]}".strip(),
             "metadata": {"topic": TOPICS[i % 4], "year": 2000 + i % 20, "odd": i % 2 == 1}}
            for i, r in enumerate(rows)]
    vectors = encoder.encode([d["text"] for d in docs], kind="document")
    queries = [json.loads(line)["text"] for line in (SAMPLE / "queries.jsonl").read_text(encoding="utf-8")
               .splitlines()]
    return docs, vectors, queries
