"""The server logs every search and embeddings request, takes feedback tied to a request id, and serves experiments;
checked against the real server and its real SQLite event log."""

from __future__ import annotations

import time

import httpx
import pytest

from embedops.events import EventLog
from embedops.experiment import Experiment, ExperimentStore

from .conftest import KEYS, Server, wait_for


def test_search_is_logged_with_its_vector_and_feedback_is_tied_to_it(client, serve_root):
    r = client.post("/v1/collections/sts/search", json={"query": "a man is playing a guitar", "k": 5,
                                                        "user": "u1", "session": "s1"})
    assert r.status_code == 200, r.text
    body = r.json()
    rid = body["request_id"]
    assert rid and rid == r.headers["X-Request-ID"]
    top = body["data"][0]["id"]
    fb = client.post("/v1/feedback", json={"request_id": rid, "kind": "click", "doc_id": top, "rank": 1,
                                           "dwell_ms": 1200, "user": "u1"})
    assert fb.status_code == 200, fb.text
    assert fb.json()["accepted"] is True
    log = EventLog(serve_root / "events.db")
    try:
        pair = wait_for(lambda: [(q, f) for q, f in log.searches_with_feedback() if q.request_id == rid and f])
        assert pair, "the search and its click never reached the event log"
        req, feedback = pair[0]
        assert req.result_ids == [h["id"] for h in body["data"]]
        assert req.scores == pytest.approx([h["score"] for h in body["data"]], abs=1e-6)
        assert req.query_vector is not None and req.query_vector.shape == (384,)
        assert req.user_id == "u1" and req.collection == "sts" and req.latency_ms > 0
        assert feedback[0].doc_id == top and feedback[0].dwell_ms == 1200
    finally:
        log.close()


def test_feedback_for_an_unknown_request_is_a_404_with_a_json_error(client):
    r = client.post("/v1/feedback", json={"request_id": "no-such-request", "doc_id": "s1"})
    assert r.status_code == 404
    assert r.json()["error"]["code"] == "unknown_request"
    bad = client.post("/v1/feedback", json={"request_id": "x", "doc_id": "s1", "kind": "like"})
    assert bad.status_code == 422 and bad.json()["error"]["param"] == "kind"


def test_embeddings_and_failed_searches_are_logged_and_counted_in_metrics(client, serve_root):
    assert client.post("/v1/embeddings", json={"input": ["one", "two"], "model": "default"}).status_code == 200
    assert client.post("/v1/collections/nope/search", json={"query": "x"}).status_code == 404
    log = EventLog(serve_root / "events.db")
    try:
        embeds = wait_for(lambda: [e for e in log.requests(kind="embed") if e.n_inputs == 2])
        assert embeds and embeds[-1].tokens > 0
        errors = wait_for(lambda: [e for e in log.requests(kind="search") if e.error == "collection_not_found"])
        assert errors and errors[-1].status == 404
    finally:
        log.close()
    metrics = client.get("/metrics").text
    assert "embedops_events_written_total" in metrics and "embedops_events_dropped_total" in metrics


def test_an_interleaved_experiment_is_served_logged_and_reported(client, serve_root):
    docs = [{"id": f"t{i}", "text": t} for i, t in enumerate(
        ["A man is playing a guitar.", "A woman is slicing an onion.", "A dog runs in the park.",
         "Kids are playing football.", "A man plays the flute."])]
    assert client.post("/v1/collections", json={"name": "sts-b", "model": "champion"}).status_code in (200, 201)
    assert client.post("/v1/collections/sts-b/documents", json={"documents": docs}).status_code == 200
    ExperimentStore(serve_root / "experiments").create(Experiment.new(
        "guitar", {"model": "default", "collection": "sts"}, {"model": "champion", "collection": "sts-b"},
        mode="interleave", k=4))
    r = client.post("/v1/experiments/guitar/search", json={"query": "someone plays music", "user": "u7"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["arm"] == "interleaved" and len(body["teams"]) == len(body["data"]) == 4
    assert set(body["teams"]) <= {"champion", "challenger"}
    assert client.post("/v1/feedback", json={"request_id": body["request_id"],
                                             "doc_id": body["data"][0]["id"]}).status_code == 200
    time.sleep(1.5)  # the writer batches off the request path
    report = client.get("/v1/experiments/guitar")
    assert report.status_code == 200, report.text
    assert report.json()["winner"] == "none" and report.json()["events"] >= 1
    missing = client.post("/v1/experiments/nope/search", json={"query": "x", "user": "u"})
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "experiment_not_found"


def test_a_corrupt_event_database_does_not_stop_serving(serve_root, tmp_path):
    bad = tmp_path / "events.db"
    bad.write_bytes(b"this is not a database" * 100)
    srv = Server(["--no-auth", "--collections-root", str(serve_root / "collections")], tmp_path,
                 env={"EMBEDOPS_EVENTS": str(bad)})
    try:
        srv.wait_ready()
        with httpx.Client(base_url=srv.url, timeout=60) as c:
            r = c.post("/v1/collections/sts/search", json={"query": "guitar", "k": 2})
            assert r.status_code == 200 and len(r.json()["data"]) == 2
            fb = c.post("/v1/feedback", json={"request_id": r.json()["request_id"], "doc_id": "s1"})
            assert fb.status_code == 503 and fb.json()["error"]["code"] == "events_unavailable"
        assert "event log unavailable" in srv.log and str(bad) in srv.log
    finally:
        srv.stop()
    assert KEYS  # the session server's keys are untouched by this one
