"""Health, readiness, metrics, graceful shutdown (real processes), and the request deadline (in process)."""

from __future__ import annotations

import json
import signal
import threading
import time

import httpx
import pytest

from .conftest import KEYS, Server


def test_health_ready_and_metrics_need_no_key(server, client):
    assert httpx.get(f"{server.url}/health").json() == {"status": "ok"}
    ready = httpx.get(f"{server.url}/ready").json()
    assert ready["status"] == "ready" and "sts" in ready["collections"]
    client.post("/v1/embeddings", json={"model": "default", "input": ["metrics please", "word " * 300]})
    client.post("/v1/embeddings", json={"model": "nope", "input": "x"})
    text = httpx.get(f"{server.url}/metrics").text
    for name in ('embedops_request_duration_seconds_bucket{le="0.005",method="POST",route="/v1/embeddings"',
                 "embedops_queue_depth{model=\"all-MiniLM-L6-v2\"}", "embedops_batches_total",
                 "embedops_tokens_total{model=\"all-MiniLM-L6-v2\"}",
                 "embedops_truncated_inputs_total{model=\"all-MiniLM-L6-v2\"}",
                 'embedops_errors_total{status="404",type="model_not_found"}',
                 'embedops_model_requests_total{endpoint="embeddings",model="all-MiniLM-L6-v2"}'):
        assert name in text, name
    # The batch-size histogram holds the batches the worker ran (its last 1024 at the first scrape).
    count = next(float(line.split()[-1]) for line in text.splitlines()
                 if line.startswith('embedops_batch_size_count{model="all-MiniLM-L6-v2"}'))
    ran = next(float(line.split()[-1]) for line in text.splitlines()
               if line.startswith('embedops_batches_total{model="all-MiniLM-L6-v2"}'))
    assert 2 <= count <= ran and 'embedops_batch_size_bucket{le="+Inf",model="all-MiniLM-L6-v2"}' in text


def test_sigterm_finishes_in_flight_requests_then_closes(tmp_path, sentences):
    srv = Server(["--no-auth", "--collections-root", str(tmp_path / "cols")], tmp_path)
    srv.wait_ready()
    httpx.post(f"{srv.url}/v1/collections", json={"name": "c1"}).raise_for_status()
    httpx.post(f"{srv.url}/v1/collections/c1/documents",
               json={"documents": [{"id": str(i), "text": s} for i, s in enumerate(sentences[:50])]}
               ).raise_for_status()
    heavy = [" ".join(sentences[i:i + 8]) for i in range(150)]
    result: list[httpx.Response] = []
    t = threading.Thread(target=lambda: result.append(
        httpx.post(f"{srv.url}/v1/embeddings", json={"model": "default", "input": heavy}, timeout=120)))
    t.start()
    time.sleep(0.5)
    srv.proc.send_signal(signal.SIGTERM)
    t.join()
    code = srv.stop()
    assert result[0].status_code == 200 and len(result[0].json()["data"]) == 150
    assert code in (0, -signal.SIGTERM), srv.log
    assert '"message": "stopped"' in srv.log
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{srv.url}/health", timeout=2)
    from embedops.index import Collection

    with Collection.open(tmp_path / "cols" / "c1") as col:  # closed cleanly: reopens with every document
        assert len(col) == 50 and col.integrity_check() == []


def test_ready_is_503_until_loaded_and_deadline_gives_504(tmp_path):
    from fastapi.testclient import TestClient

    from embedops.project import Project
    from embedops.serve.app import create_app
    from embedops.serve.settings import ServeSettings

    settings = ServeSettings.resolve(env={"EMBEDOPS_API_KEYS": KEYS[0]}, request_timeout=0.001,
                                     collections_root=str(tmp_path))
    app = create_app(Project(), settings)
    headers = {"Authorization": f"Bearer {KEYS[0]}"}
    with TestClient(app) as tc:
        first = tc.get("/ready")
        assert first.status_code == 503 and first.json()["error"]["code"] == "not_ready"
        assert tc.post("/v1/embeddings", json={"model": "default", "input": "a"}, headers=headers).status_code == 503
        deadline = time.monotonic() + 120
        while tc.get("/ready").status_code != 200:
            assert time.monotonic() < deadline
            time.sleep(0.2)
        r = tc.post("/v1/embeddings", json={"model": "default", "input": ["text"] * 64}, headers=headers)
        assert r.status_code == 504 and r.json()["error"]["code"] == "request_timeout"
        assert json.loads(tc.get("/health").text) == {"status": "ok"}
