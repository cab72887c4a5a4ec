"""Two Ray Serve replicas of the embedops app on the session's local Ray, over one collection in a real local Milvus
server: they answer like the app in one process, and a document written through one replica is found through the
other."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np
import pytest

MODEL = "all-MiniLM-L6-v2"
TEXTS = ["Vitamin D deficiency and type 2 diabetes.", "How do zebrafish regenerate heart tissue?"]
QUERY = {"query": "stem cells in the heart", "k": 5}
COLLECTION = "ray_serve_scifact"  # the Milvus server is the session's: a name no other test uses


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def config(milvus_url, tmp_path_factory, shared_data):
    """A project whose collection (20 SciFact abstracts) lives in the session's Milvus server, served with events
    off."""
    from embedops.config import ProjectConfig
    from embedops.data import load_beir
    from embedops.project import Project

    cfg = ProjectConfig(root=tmp_path_factory.mktemp("served"))
    # Strong consistency: a search waits for writes acknowledged by any process, so one replica reads another's.
    cfg.index.store, cfg.index.path = milvus_url + "?consistency=strong", COLLECTION
    cfg.serving.events, cfg.serving.collections = "", {COLLECTION: COLLECTION}
    docs = list(load_beir(shared_data / "scifact", "test").corpus.values())[:20]
    with Project(cfg) as project:
        project.build_collection(docs)
    return cfg


@pytest.fixture(scope="module")
def settings(config):
    from embedops.serve.settings import ServeSettings

    return ServeSettings.resolve(config.serving, auth=False, port=_free_port())


@pytest.fixture(scope="module")
def one_process(config, settings):
    """The reference: the same app in this process (FastAPI's test client runs its lifespan)."""
    from fastapi.testclient import TestClient

    from embedops.project import Project
    from embedops.serve.app import create_app

    with TestClient(create_app(Project(config), settings)) as client:
        deadline = time.monotonic() + 120
        while client.get("/ready").status_code != 200:
            assert time.monotonic() < deadline, "the one-process app did not become ready"
            time.sleep(0.2)
        yield client


@pytest.fixture(scope="module")
def replicas(ray_local, config, settings):
    """Two replicas on Ray Serve, 0.25 CPU each so both fit beside the rest on two cores."""
    from embedops.project import Project
    from embedops.scale.ray_serve import serve_on_ray

    serving = serve_on_ray(Project(config), settings, replicas=2, num_cpus=0.25)
    with httpx.Client(base_url=serving.url, timeout=60) as client:
        yield client
    serving.close()
    from ray import serve

    serve.shutdown()  # the controller and proxy too: the session's Ray stays up for other tests, Serve need not


def _replica(response: httpx.Response) -> str:
    assert response.status_code == 200, response.text
    return response.headers["x-embedops-replica"]


def _vectors(response) -> np.ndarray:
    return np.asarray([d["embedding"] for d in response.json()["data"]], dtype=np.float32)


def test_replicas_answer_like_one_process_under_concurrent_requests(replicas, one_process, ray_local):
    reference = _vectors(one_process.post("/v1/embeddings", json={"input": TEXTS, "model": MODEL}))
    reference_hits = one_process.post(f"/v1/collections/{COLLECTION}/search", json=QUERY).json()["data"]

    def both(_: int) -> tuple[str, np.ndarray, str, list]:
        emb = replicas.post("/v1/embeddings", json={"input": TEXTS, "model": MODEL})
        hits = replicas.post(f"/v1/collections/{COLLECTION}/search", json=QUERY)
        return _replica(emb), _vectors(emb), _replica(hits), hits.json()["data"]

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(both, range(24)))
    seen = {a[0] for a in answers} | {a[2] for a in answers}
    assert len(seen) == 2  # both replicas answered
    for _, vectors, _, hits in answers:
        assert ((vectors * reference).sum(1) >= 0.9999).all()
        assert [h["id"] for h in hits] == [h["id"] for h in reference_hits]
        assert np.allclose([h["score"] for h in hits], [h["score"] for h in reference_hits], atol=1e-4)
    nodes = {replicas.post("/v1/embeddings", json={"input": "x", "model": MODEL}).headers["x-embedops-node"]
             for _ in range(4)}
    assert nodes <= set(ray_local.nodes())


def test_a_write_through_one_replica_is_seen_by_the_other(replicas, one_process):
    new = {"id": "zebrafish-1", "text": "Zebrafish regrow heart muscle within weeks of a cryoinjury."}
    writer = _replica(replicas.post(f"/v1/collections/{COLLECTION}/documents", json={"documents": [new]}))
    query = {"query": "zebrafish heart muscle regrowth", "k": 3}

    def search(_: int) -> tuple[str, str]:
        response = replicas.post(f"/v1/collections/{COLLECTION}/search", json=query)
        return _replica(response), response.json()["data"][0]["id"]

    answers: list[tuple[str, str]] = []
    with ThreadPoolExecutor(8) as pool:
        # Concurrent searches: the proxy spreads them by queue length (one at a time may all go to one replica).
        for _ in range(10):
            answers += pool.map(search, range(8))
            if any(replica != writer for replica, _ in answers):
                break
    assert any(replica != writer for replica, _ in answers), "only the writing replica answered"
    assert {top for _, top in answers} == {"zebrafish-1"}  # every search after the write finds it, on either
    found = one_process.post(f"/v1/collections/{COLLECTION}/search", json=query).json()["data"]
    assert found[0]["id"] == "zebrafish-1"


def test_cli_refuses_replicas_without_ray_and_an_address_where_no_ray_answers(tmp_path):
    exe = os.path.join(os.path.dirname(sys.executable), "embedops")

    def serve(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([exe, "serve", "--no-auth", "--port", str(_free_port()), *args], capture_output=True,
                              text=True, timeout=60, cwd=tmp_path, env={**os.environ, "NO_COLOR": "1"})

    res = serve("--replicas", "2")
    assert res.returncode == 2 and "--replicas and --address need --engine ray" in res.stderr
    port = _free_port()
    res = serve("--engine", "ray", "--address", f"127.0.0.1:{port}")
    assert res.returncode == 2 and f"no Ray cluster answers at 127.0.0.1:{port}" in res.stderr
