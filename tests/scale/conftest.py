"""One local Ray instance for every Ray test of the session (it takes seconds to start on two cores), bound to
127.0.0.1 with telemetry off, and a small real SciFact sample to embed."""

from __future__ import annotations

import gzip
import itertools

import pytest


@pytest.fixture(scope="session")
def ray_local():
    """A local Ray instance with 2 CPUs (stopped at the end of the session)."""
    from embedops.scale.cluster import connect

    conn = connect(None, num_cpus=2)
    yield conn
    conn.close()


@pytest.fixture(scope="session")
def scifact_sample(tmp_path_factory, shared_data):
    """The first 24 SciFact abstracts as a JSONL file (BEIR layout: _id, title, text)."""
    path = tmp_path_factory.mktemp("scale-data") / "scifact-24.jsonl"
    with gzip.open(shared_data / "scifact" / "corpus.jsonl.gz", "rt", encoding="utf-8") as fh:
        path.write_text("".join(itertools.islice(fh, 24)), encoding="utf-8")
    return path
