"""Bad input, auth and overload against the real server: each answered with a JSON error, others still served."""

from __future__ import annotations

import json
import threading
import time

import httpx
import pytest

from .conftest import KEYS


def _error(resp: httpx.Response, status: int) -> dict:
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"].startswith("application/json")
    assert resp.headers.get("x-request-id")
    err = resp.json()["error"]
    assert set(err) >= {"message", "type", "code"}
    return err


def test_empty_input_list(client):
    err = _error(client.post("/v1/embeddings", json={"model": "default", "input": []}), 422)
    assert err["param"] == "input" and "empty" in err["message"]


@pytest.mark.parametrize("payload, where", [("", "input[0]"), (["ok", "  "], "input[1]"), ([[1, 2], []], "input[1]")])
def test_empty_string_names_the_index(client, payload, where):
    err = _error(client.post("/v1/embeddings", json={"model": "default", "input": payload}), 422)
    assert where in err["message"]


def test_ten_thousand_inputs_is_too_many(client):
    err = _error(client.post("/v1/embeddings", json={"model": "default", "input": ["hi"] * 10_000}), 413)
    assert err["code"] == "too_many_inputs" and "2048" in err["message"]


def test_five_megabyte_payload(client):
    body = json.dumps({"model": "default", "input": ["x" * 1_000_000] * 5})
    err = _error(client.post("/v1/embeddings", content=body, headers={"content-type": "application/json"}), 413)
    assert err["code"] == "payload_too_large"


def test_oversized_chunked_body_is_cut_while_streaming(client):
    def chunks():
        yield b'{"model": "default", "input": ["'
        for _ in range(50):
            yield b"y" * 100_000
        yield b'"]}'

    err = _error(client.post("/v1/embeddings", content=chunks(), headers={"content-type": "application/json"}), 413)
    assert err["code"] == "payload_too_large"


@pytest.mark.parametrize("body, param", [
    ({"model": "default", "input": 42}, "input"),
    ({"model": "default", "input": [1.5, 2]}, "input"),
    ({"model": "default", "input": ["a", 3]}, "input"),
    ({"model": "default", "input": [True]}, "input"),
    ({"model": 7, "input": "a"}, "model"),
    ({"input": "a"}, "model"),
    ({"model": "default", "input": "a", "encoding_format": "hex"}, "encoding_format"),
    ({"model": "default", "input": "a", "dimensions": "many"}, "dimensions"),
    ({"model": "default", "input": "a", "dimensions": 0}, "dimensions"),
    ({"model": "default", "input": "a", "dimensions": 385}, "dimensions"),
    ({"model": "default", "input": "a", "input_type": "passage"}, "input_type"),
    ({"model": "default", "input": "a", "dimension": 8}, "dimension"),
    ({"model": "default", "input": [[-1, 5]]}, "input"),
    ({"model": "default", "input": [[999999999]]}, "input[0]"),
])
def test_wrong_types_name_the_field(client, body, param):
    err = _error(client.post("/v1/embeddings", json=body), 422)
    assert err["param"] == param, err


def test_not_json(client):
    err = _error(client.post("/v1/embeddings", content=b"{not json", headers={"content-type": "application/json"}),
                 422)
    assert err["type"] == "invalid_request_error"


def test_unknown_model(client):
    err = _error(client.post("/v1/embeddings", json={"model": "text-embedding-3-large", "input": "a"}), 404)
    assert err["code"] == "model_not_found" and err["param"] == "model"
    _error(client.post("/v1/embeddings", json={"model": "../../etc/passwd", "input": "a"}), 404)
    _error(client.get("/v1/models/nope"), 404)


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong-key"}, {"Authorization": "Basic xyz"},
                                     {"Authorization": f"Bearer {KEYS[0]}x"}])
def test_missing_or_wrong_key(server, headers):
    resp = httpx.post(f"{server.url}/v1/embeddings", json={"model": "default", "input": "a"}, headers=headers)
    err = _error(resp, 401)
    assert err["code"] == "invalid_api_key"
    # The same answer for every failure, and nothing of what was sent comes back.
    assert "wrong" not in resp.text and KEYS[0] not in resp.text and "xyz" not in resp.text
    assert resp.headers["www-authenticate"] == "Bearer"


def test_either_key_works_and_keys_never_reach_the_log(server):
    for key in KEYS:
        resp = httpx.get(f"{server.url}/v1/models", headers={"Authorization": f"Bearer {key}"})
        assert resp.status_code == 200
    assert not any(key in server.log for key in KEYS)


def test_request_id_is_echoed_and_logged(client, server):
    resp = client.get("/v1/models", headers={"X-Request-ID": "trace-abc.123"})
    assert resp.headers["x-request-id"] == "trace-abc.123"
    bad = client.get("/v1/models", headers={"X-Request-ID": "x" * 200 + "{}"})
    assert len(bad.headers["x-request-id"]) == 32  # refused: a fresh id instead
    time.sleep(0.2)
    lines = [json.loads(line) for line in server.log.splitlines() if line.startswith("{")]
    assert any(line.get("request_id") == "trace-abc.123" and line.get("status") == 200 for line in lines)


def test_unknown_route_is_a_json_404(client):
    err = _error(client.get("/v1/nothing-here"), 404)
    assert err["code"] == "not_found"


def test_queue_overflow_429_and_other_clients_keep_being_served(server, sentences):
    """Three heavy clients at once against a queue bound of 256 inputs: the first runs, the others get 429 with
    Retry-After, and a small request from another client is served meanwhile."""
    heavy = [" ".join(sentences[i:i + 8]) for i in range(200)]  # ~100 tokens each: seconds of model work
    headers = {"Authorization": f"Bearer {KEYS[1]}"}
    results: list[httpx.Response] = []
    barrier = threading.Barrier(3)

    def send_heavy() -> None:
        barrier.wait()
        results.append(httpx.post(f"{server.url}/v1/embeddings", json={"model": "default", "input": heavy},
                                  headers=headers, timeout=120))

    threads = [threading.Thread(target=send_heavy) for _ in range(3)]
    for t in threads:
        t.start()
    time.sleep(0.3)
    small = httpx.post(f"{server.url}/v1/embeddings", json={"model": "default", "input": ["quick one"]},
                       headers=headers, timeout=60)
    health = httpx.get(f"{server.url}/health", timeout=5)
    for t in threads:
        t.join()
    statuses = sorted(r.status_code for r in results)
    assert statuses.count(200) >= 1 and 429 in statuses, statuses
    refused = next(r for r in results if r.status_code == 429)
    assert int(refused.headers["retry-after"]) >= 1
    assert refused.json()["error"]["code"] == "queue_full"
    assert small.status_code == 200 and health.status_code == 200
    after = httpx.post(f"{server.url}/v1/embeddings", json={"model": "default", "input": heavy[:5]}, headers=headers)
    assert after.status_code == 200


def test_an_unreachable_external_store_is_a_503_not_a_500():
    from embedops.index.remote import StoreUnavailableError
    from embedops.serve.errors import from_library

    api = from_library(StoreUnavailableError("milvus at 127.0.0.1:1 did not answer in 3 s"))
    assert (api.status, api.code) == (503, "store_unavailable")


def _model_metrics(server) -> dict[str, float]:
    """The default model's worker counters from /metrics (summed over its label)."""
    from prometheus_client.parser import text_string_to_metric_families

    text = httpx.get(f"{server.url}/metrics", timeout=10).text
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.labels.get("model") == "all-MiniLM-L6-v2" and sample.name in (
                    "embedops_cancelled_inputs_total", "embedops_batched_texts_total", "embedops_queue_depth",
                    "embedops_in_flight_requests"):
                out[sample.name] = sample.value
    return out


def test_a_client_that_disconnects_while_queued_costs_no_model_time(server, sentences):
    """A client waits behind a heavy request and hangs up: its 40 inputs are dropped before the model (counted in
    embedops_cancelled_inputs), the model runs only the heavy request's texts, and the server keeps serving."""
    import socket

    heavy = [" ".join(sentences[i:i + 8]) for i in range(160)]  # ~100 tokens each: seconds of model work
    headers = {"Authorization": f"Bearer {KEYS[0]}"}
    before = _model_metrics(server)
    done: list[httpx.Response] = []
    first = threading.Thread(target=lambda: done.append(httpx.post(
        f"{server.url}/v1/embeddings", json={"model": "default", "input": heavy}, headers=headers, timeout=120)))
    first.start()
    deadline = time.monotonic() + 30
    while _model_metrics(server)["embedops_in_flight_requests"] < 1:
        assert time.monotonic() < deadline, "the heavy request never reached the model"
        time.sleep(0.01)
    body = json.dumps({"model": "default", "input": [f"queued sentence {i}" for i in range(40)]}).encode()
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(b"POST /v1/embeddings HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                     + f"Authorization: Bearer {KEYS[0]}\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body)
        while _model_metrics(server)["embedops_in_flight_requests"] < 2:  # queued behind the heavy request
            assert time.monotonic() < deadline, "the second request never reached the worker"
            time.sleep(0.01)
    # The socket is closed: the client is gone while its texts wait.
    first.join(timeout=120)
    assert done and done[0].status_code == 200, done
    deadline = time.monotonic() + 30
    while (after := _model_metrics(server))["embedops_in_flight_requests"] > 0:
        assert time.monotonic() < deadline, after
        time.sleep(0.05)
    assert after["embedops_cancelled_inputs_total"] - before.get("embedops_cancelled_inputs_total", 0) == 40
    assert after["embedops_batched_texts_total"] - before["embedops_batched_texts_total"] == len(heavy)
    assert after["embedops_queue_depth"] == 0
    r = httpx.post(f"{server.url}/v1/embeddings", json={"model": "default", "input": ["still served"]},
                   headers=headers, timeout=60)
    assert r.status_code == 200
