"""The collections API against the real server: a library-built collection served, and one created over HTTP."""

from __future__ import annotations

import time

import numpy as np
import pytest


def test_a_library_built_collection_is_served(client, encoder):
    listed = client.get("/v1/collections").json()
    names = [c["name"] for c in listed["data"]]
    assert "sts" in names
    info = client.get("/v1/collections/sts").json()
    assert info["documents"] == 120 and info["dimension"] == 384 and info["model"] == "all-MiniLM-L6-v2"
    assert "/" not in str(info)  # no server path leaks
    hits = client.post("/v1/collections/sts/search", json={"query": "A plane is taking off.", "k": 3}).json()
    assert hits["data"][0]["text"] == "A plane is taking off."
    vec = encoder.encode(["A plane is taking off."])[0].tolist()
    by_vector = client.post("/v1/collections/sts/search", json={"vector": vec, "k": 3}).json()
    assert [h["id"] for h in by_vector["data"]] == [h["id"] for h in hits["data"]]


def test_filter_and_filter_on_a_missing_field(client):
    r = client.post("/v1/collections/sts/search", json={"query": "a man", "k": 5, "filter": {"n": {"lt": 10}}})
    assert r.status_code == 200 and all(h["metadata"]["n"] < 10 for h in r.json()["data"])
    missing = client.post("/v1/collections/sts/search", json={"query": "a man", "filter": {"no_such_field": "x"}})
    assert missing.status_code == 200 and missing.json()["data"] == []  # matches nothing, as the library says
    wrong = client.post("/v1/collections/sts/search", json={"query": "a man", "filter": {"n": {"gte": "ten"}}})
    assert wrong.status_code == 422 and "n" in wrong.json()["error"]["message"]


def test_unknown_collection_and_bad_names(client):
    for call in (lambda: client.get("/v1/collections/nope"),
                 lambda: client.post("/v1/collections/nope/search", json={"query": "x"}),
                 lambda: client.post("/v1/collections/nope/documents", json={"documents": [{"id": "1", "text": "a"}]}),
                 lambda: client.post("/v1/collections/nope/recommend", json={"positive": ["1"]})):
        r = call()
        assert r.status_code == 404 and r.json()["error"]["code"] == "collection_not_found"
    for name in ("../escape", "a/b", "..", ".hidden", "x" * 65, ""):
        r = client.post("/v1/collections", json={"name": name})
        assert r.status_code == 422, (name, r.text)
    assert client.get("/v1/collections/..%2F..%2Fetc").status_code == 404


def test_search_request_errors(client):
    both = client.post("/v1/collections/sts/search", json={"query": "a", "vector": [0.1] * 384})
    assert both.status_code == 422
    short = client.post("/v1/collections/sts/search", json={"vector": [0.1] * 3})
    assert short.status_code == 422 and short.json()["error"]["param"] == "vector"
    assert client.post("/v1/collections/sts/search", json={"query": "a", "k": 0}).status_code == 422
    assert client.post("/v1/collections/sts/search", json={"query": "a", "mode": "fuzzy"}).status_code == 422


def test_create_upsert_search_recommend_delete(client, serve_root):
    created = client.post("/v1/collections", json={"name": "notes", "model": "champion", "index": {"kind": "flat"}})
    assert created.status_code == 201, created.text
    assert created.json()["model"] == "all-MiniLM-L6-v2"
    assert client.post("/v1/collections", json={"name": "notes"}).status_code == 409
    assert (serve_root / "collections" / "notes").is_dir()
    docs = [{"id": "cat", "text": "The cat sleeps on the warm windowsill.", "metadata": {"animal": True}},
            {"id": "dog", "text": "A dog chases the ball in the park.", "metadata": {"animal": True}},
            {"id": "tax", "text": "Quarterly tax filings are due in April.", "metadata": {"animal": False}},
            {"id": "kitten", "text": "A kitten naps in a sunny spot by the window.", "metadata": {"animal": True}}]
    up = client.post("/v1/collections/notes/documents", json={"documents": docs})
    assert up.status_code == 200 and up.json()["upserted"] == 4 and up.json()["documents"] == 4
    dense = client.post("/v1/collections/notes/search", json={"query": "sleepy cat", "k": 2}).json()
    assert dense["data"][0]["id"] in ("cat", "kitten") and dense["mode"] == "dense"
    # Keyword search follows writes through the background refresh (refresh=False by default).
    deadline = time.monotonic() + 20
    while True:
        kw = client.post("/v1/collections/notes/search", json={"query": "tax", "mode": "keyword", "k": 2}).json()
        if kw["data"] or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert kw["data"][0]["id"] == "tax"
    hybrid = client.post("/v1/collections/notes/search",
                         json={"query": "kitten window", "mode": "hybrid", "fusion": "rrf", "k": 2}).json()
    assert hybrid["data"][0]["id"] == "kitten"
    rec = client.post("/v1/collections/notes/recommend", json={"positive": ["cat"], "k": 1}).json()
    assert rec["data"][0]["id"] == "kitten"
    unknown = client.post("/v1/collections/notes/recommend", json={"positive": ["ghost"]})
    assert unknown.status_code == 422 and "ghost" in unknown.json()["error"]["message"]
    gone = client.request("DELETE", "/v1/collections/notes/documents", json={"ids": ["tax", "ghost"]})
    assert gone.status_code == 200 and gone.json()["deleted"] == 1 and gone.json()["documents"] == 3
    after = client.post("/v1/collections/notes/search", json={"query": "tax filings", "k": 5}).json()
    assert "tax" not in [h["id"] for h in after["data"]]
    replaced = client.post("/v1/collections/notes/documents", json={"refresh": True, "documents": [
        {"id": "dog", "text": "Income tax forms for the dog walker.", "metadata": {"animal": False}}]})
    assert replaced.json()["documents"] == 3
    top = client.post("/v1/collections/notes/search", json={"query": "tax", "mode": "keyword", "k": 1}).json()
    assert top["data"][0]["id"] == "dog"


def test_documents_validation(client):
    bad = client.post("/v1/collections/sts/documents", json={"documents": [{"id": "x", "text": ""}]})
    assert bad.status_code == 422 and "documents[0].text" in bad.json()["error"]["param"]
    dup = client.post("/v1/collections/sts/documents",
                      json={"documents": [{"id": "x", "text": "a"}, {"id": "x", "text": "b"}]})
    assert dup.status_code == 422 and "duplicate" in dup.json()["error"]["message"]
    assert client.request("DELETE", "/v1/collections/sts/documents", json={"ids": []}).status_code == 422


@pytest.mark.parametrize("k", [1, 7])
def test_vector_search_returns_k(client, k):
    vec = np.full(384, 1 / np.sqrt(384)).tolist()
    r = client.post("/v1/collections/sts/search", json={"vector": vec, "k": k})
    assert r.status_code == 200 and len(r.json()["data"]) == k


def test_a_collection_built_beside_the_running_server_is_served_by_name(client, serve_root, encoder):
    """What `embedops loop run` does: another process builds a collection under the root; no restart needed."""
    from embedops.index import Collection

    assert client.post("/v1/collections/later/search", json={"query": "x"}).status_code == 404
    docs = [{"id": f"l{i}", "text": t} for i, t in enumerate(["A cat sleeps on the sofa.", "Stocks fell sharply.",
                                                              "The rocket reached orbit."])]
    Collection.build(serve_root / "collections" / "later", encoder, docs).close()
    hits = client.post("/v1/collections/later/search", json={"query": "a sleeping cat", "k": 1})
    assert hits.status_code == 200, hits.text
    assert hits.json()["data"][0]["id"] == "l0"
    assert "later" in [c["name"] for c in client.get("/v1/collections").json()["data"]]
    # a folder that is not a collection, or a name that is not a valid one, stays a 404
    (serve_root / "collections" / "empty").mkdir()
    assert client.post("/v1/collections/empty/search", json={"query": "x"}).status_code == 404


def test_many_threads_find_a_new_collection_at_once(client, serve_root, encoder):
    """Discovery mutates the server's name -> folder map: many requests for a just-built collection, all at once."""
    from concurrent.futures import ThreadPoolExecutor

    from embedops.index import Collection

    docs = [{"id": f"c{i}", "text": t} for i, t in enumerate(["Bread rises in a warm oven.", "Tides follow the moon."])]
    Collection.build(serve_root / "collections" / "fresh", encoder, docs).close()

    def one(i: int) -> int:
        if i % 3 == 0:
            return 200 if "fresh" in [c["name"] for c in client.get("/v1/collections").json()["data"]] else 500
        r = client.post("/v1/collections/fresh/search", json={"query": "baking bread", "k": 1})
        return r.status_code if r.status_code != 200 or r.json()["data"][0]["id"] == "c0" else 500

    with ThreadPoolExecutor(16) as pool:
        codes = list(pool.map(one, range(48)))
    assert codes == [200] * 48
