"""--max-queue-wait: a request arriving while the work queued ahead (tokens over the model's measured tokens/s) would
take longer than the bound gets an immediate 429 with Retry-After, against a real server."""

from __future__ import annotations

import threading
import time

import httpx

from .conftest import Server


def _embed(url: str, texts: list[str], timeout: float = 60) -> httpx.Response:
    return httpx.post(url, json={"model": "default", "input": texts}, timeout=timeout)


def test_requests_over_the_wait_bound_are_refused_at_once(tmp_path, sentences):
    srv = Server(["--no-auth", "--model", "default", "--max-queue-wait", "0.5", "--collections-root",
                  str(tmp_path / "collections")], tmp_path, env={"EMBEDOPS_EVENTS": "off"})
    srv.wait_ready()
    try:
        url = f"{srv.url}/v1/embeddings"
        # The model's rate is measured from its batches; a request alone in the queue is always admitted.
        assert _embed(url, sentences[:64]).status_code == 200
        heavy = [" ".join(sentences[i:i + 8]) for i in range(200)]  # ~100 tokens each: seconds of model work
        first: list[httpx.Response] = []
        runner = threading.Thread(target=lambda: first.append(_embed(url, heavy, timeout=120)))
        runner.start()
        deadline = time.monotonic() + 30
        while 'embedops_in_flight_requests{model="all-MiniLM-L6-v2"} 1.0' not in httpx.get(
                f"{srv.url}/metrics", timeout=5).text:
            assert time.monotonic() < deadline, "the heavy request never reached the model"
            time.sleep(0.01)
        refused = _embed(url, sentences[:8])
        runner.join(timeout=120)
        assert first and first[0].status_code == 200, first
        assert refused.status_code == 429, refused.status_code
        err = refused.json()["error"]
        assert err["code"] == "queue_full" and "over the wait bound of 0.5 s" in err["message"], err
        assert int(refused.headers["retry-after"]) >= 1
        # Once the backlog has run, the same request is served.
        assert _embed(url, sentences[:8]).status_code == 200
    finally:
        srv.stop()
