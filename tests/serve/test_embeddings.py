"""POST /v1/embeddings and GET /v1/models against a real server, through the official openai client and raw HTTP."""

from __future__ import annotations

import base64
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from openai import OpenAI

KEY = "test-key-alpha"


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    return (a * b).sum(axis=1)


@pytest.fixture(scope="module")
def openai_client(server) -> OpenAI:
    return OpenAI(base_url=f"{server.url}/v1", api_key=KEY, max_retries=0, timeout=120)


@pytest.mark.parametrize("encoding_format", ["float", "base64"])
def test_openai_client_gets_the_library_vectors(openai_client, encoder, sentences, encoding_format):
    texts = sentences[:20]
    resp = openai_client.embeddings.create(model="all-MiniLM-L6-v2", input=texts, encoding_format=encoding_format)
    rows = [d.embedding for d in sorted(resp.data, key=lambda d: d.index)]
    if encoding_format == "base64":  # asked for explicitly, the client hands the string over as it came
        rows = [np.frombuffer(base64.b64decode(r), dtype="<f4") for r in rows]
    got = np.array(rows, dtype=np.float32)
    assert got.shape == (20, 384)
    assert [d.index for d in resp.data] == list(range(20))
    assert _cosines(got, encoder.encode(texts)).min() >= 0.9999
    assert resp.model == "all-MiniLM-L6-v2"
    assert resp.usage.prompt_tokens == resp.usage.total_tokens > 20


def test_openai_client_default_encoding_is_base64_and_decodes(openai_client, encoder):
    # The openai client asks for base64 unless told otherwise and decodes it itself: the common path.
    resp = openai_client.embeddings.create(model="default", input="A man is playing a flute.")
    got = np.array(resp.data[0].embedding, dtype=np.float32)
    assert _cosines(got[None], encoder.encode(["A man is playing a flute."]))[0] >= 0.9999


def test_token_id_inputs(client, encoder):
    text = "a plane is taking off."
    ids = encoder.tokenizer(text, add_special_tokens=False)["input_ids"]
    one = client.post("/v1/embeddings", json={"model": "default", "input": ids}).json()
    many = client.post("/v1/embeddings", json={"model": "default", "input": [ids, ids[:2]]}).json()
    assert len(one["data"]) == 1 and len(many["data"]) == 2
    expected = encoder.encode([text])
    assert _cosines(np.array([one["data"][0]["embedding"]]), expected)[0] >= 0.9999
    assert _cosines(np.array([many["data"][0]["embedding"]]), expected)[0] >= 0.9999


def test_dimensions_truncates_and_renormalises(client, encoder):
    body = client.post("/v1/embeddings", json={"model": "default", "input": ["hello there"], "dimensions": 64}).json()
    vec = np.array(body["data"][0]["embedding"])
    assert vec.shape == (64,)
    assert abs(np.linalg.norm(vec) - 1) < 1e-5
    full = encoder.encode(["hello there"])[0][:64]
    assert _cosines(vec[None], full[None])[0] >= 0.9999


def test_truncation_is_reported_or_refused(client):
    long_text = "word " * 400
    ok = client.post("/v1/embeddings", json={"model": "default", "input": ["short", long_text, "short again"]})
    assert ok.status_code == 200
    assert ok.json()["truncated_inputs"] == [1]
    refused = client.post("/v1/embeddings", json={"model": "default", "input": ["short", long_text],
                                                  "truncate": False})
    assert refused.status_code == 422
    err = refused.json()["error"]
    assert err["param"] == "input[1]" and "input[1]" in err["message"] and "256" in err["message"]


def test_input_type_and_user_are_accepted(client):
    for input_type in ("query", "document"):
        r = client.post("/v1/embeddings", json={"model": "default", "input": "x y z", "input_type": input_type,
                                                "user": "someone"})
        assert r.status_code == 200, r.text


def test_models_list_and_registry_alias(client, openai_client, encoder):
    models = openai_client.models.list()
    ids = [m.id for m in models.data]
    assert ids == ["all-MiniLM-L6-v2"]  # champion is a copy of the same weights: one worker, one id, an alias
    body = client.get("/v1/models").json()
    assert body["object"] == "list"
    entry = body["data"][0]
    assert entry["object"] == "model" and entry["dimension"] == 384
    assert {"champion", "default", "minilm@v1"} <= set(entry["aliases"])
    resp = openai_client.embeddings.create(model="champion", input=["A cat sits."], encoding_format="float")
    assert _cosines(np.array([resp.data[0].embedding]), encoder.encode(["A cat sits."]))[0] >= 0.9999
    assert client.get("/v1/models/champion").json()["id"] == "all-MiniLM-L6-v2"


def test_concurrent_clients_get_their_own_vectors(server, encoder, sentences):
    texts = sentences[40:200]
    expected = encoder.encode(texts)

    def call(i: int) -> tuple[int, np.ndarray]:
        with OpenAI(base_url=f"{server.url}/v1", api_key=KEY, max_retries=0, timeout=120) as c:
            chunk = texts[i * 10:(i + 1) * 10]
            r = c.embeddings.create(model="default", input=chunk, encoding_format="float")
            return i, np.array([d.embedding for d in r.data], dtype=np.float32)

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(call, range(16)))
    for i, got in results:
        assert _cosines(got, expected[i * 10:(i + 1) * 10]).min() >= 0.9999
