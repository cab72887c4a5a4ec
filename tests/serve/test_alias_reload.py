"""A running server follows its registry aliases: promote and rollback (over HTTP, and by the CLI in another process)
move `champion` to the new version's vectors without a restart, with no failed request while it switches; a corrupt
version keeps the previous one serving; the replaced worker is closed, and a collection keeps its own model."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import pytest

from .conftest import Server

KEY = "reload-test-key"
TEXTS = ["A man is playing a flute.", "The cat sat on the mat.", "Stocks fell sharply on Monday.",
         "A woman slices a tomato."]
GATE = {"passed": True, "summary": "all criteria measured and pass", "criteria": []}


def _model_copy(dst: Path) -> Path:
    """The bundled model's files, hard-linked (no copy of the weights)."""
    from embedops.models import bundled_default_path
    from embedops.registry.integrity import link_or_copy

    shutil.copytree(bundled_default_path(), dst, copy_function=link_or_copy, dirs_exist_ok=True)
    return dst


def _perturbed(dst: Path) -> Path:
    """The bundled model with every weight matrix nudged by 10% Gaussian noise: close, but clearly other vectors."""
    import torch
    from safetensors.torch import load_file, save_file

    _model_copy(dst)
    weights = dst / "model.safetensors"
    tensors = load_file(weights)
    gen = torch.Generator().manual_seed(7)
    for name, t in tensors.items():
        if t.ndim == 2 and t.is_floating_point():
            tensors[name] = (t * (1 + 0.1 * torch.randn(t.shape, generator=gen))).contiguous()
    weights.unlink()  # a hard link to the bundled file: replace it, never write through it
    save_file(tensors, weights, metadata={"format": "pt"})
    return dst


def _corrupt(dst: Path) -> Path:
    """A model folder whose weights file is garbage (registered as is: its pinned digests match the garbage)."""
    _model_copy(dst)
    weights = dst / "model.safetensors"
    weights.unlink()
    weights.write_bytes(b"not a safetensors file" * 100)
    return dst


def _cos(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    return (a * b).sum(axis=1)


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    """A registry: minilm v1 (the bundled weights, champion), v2 (perturbed weights), v3 (corrupt weights)."""
    from embedops.registry import Registry

    root = tmp_path_factory.mktemp("reload")
    reg = Registry(root / "registry")
    reg.import_model(_model_copy(root / "m1"), "minilm", move=True, alias="champion", metadata={"gate": GATE})
    reg.import_model(_perturbed(root / "m2"), "minilm", move=True, metadata={"gate": GATE})
    reg.import_model(_corrupt(root / "m3"), "minilm", move=True, metadata={"gate": GATE})
    return root


@pytest.fixture(scope="module")
def expected(root, encoder) -> dict[str, np.ndarray]:
    """The library's vectors of TEXTS for v1 and v2."""
    from embedops.models import load_encoder

    v2 = load_encoder(str(root / "registry" / "minilm" / "v2"))
    out = {"minilm@v1": encoder.encode(TEXTS), "minilm@v2": v2.encode(TEXTS)}
    assert _cos(out["minilm@v1"], out["minilm@v2"]).max() < 0.99  # the versions really differ
    return out


@pytest.fixture(scope="module")
def started(root) -> Server:
    """Serves only `champion` (so it is also the default model), with an API key; still loading."""
    srv = Server(["--model", "champion", "--collections-root", str(root / "collections")], root,
                 env={"EMBEDOPS_API_KEYS": KEY, "EMBEDOPS_REGISTRY": str(root / "registry")})
    yield srv
    # A clean stop: the follower thread and every worker, replaced ones included, shut down with the server.
    assert srv.stop() in (0, -signal.SIGTERM), srv.log
    assert '"message": "stopped"' in srv.log


@pytest.fixture(scope="module")
def server(started, expected) -> Server:
    """The server, ready (it loads while this process computes the expected vectors)."""
    started.wait_ready()
    return started


@pytest.fixture(scope="module")
def client(server) -> httpx.Client:
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {KEY}"}, timeout=60) as c:
        yield c


def _embed(client: httpx.Client, model: str = "champion") -> tuple[str, np.ndarray]:
    resp = client.post("/v1/embeddings", json={"model": model, "input": TEXTS})
    assert resp.status_code == 200, resp.text
    body = resp.json()
    return body["model"], np.array([d["embedding"] for d in body["data"]], dtype=np.float32)


def _which(vectors: np.ndarray, expected: dict[str, np.ndarray]) -> str | None:
    for ref, want in expected.items():
        if _cos(vectors, want).min() >= 0.9999:
            return ref
    return None


def _champion_status(client: httpx.Client) -> dict:
    models = client.get("/v1/models").json()["data"]
    found = [(m, a) for m in models for a in m["registry_aliases"] if a["alias"] == "champion"]
    assert len(found) == 1, models
    model, status = found[0]
    return {**status, "model": model["id"], "model_version": model["registry_version"]}


def _wait_for(client: httpx.Client, expected, ref: str, timeout: float = 30.0) -> float:
    """Seconds until `champion` answers with `ref`'s vectors (fails after `timeout`)."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if _which(_embed(client)[1], expected) == ref:
            return time.monotonic() - started
        time.sleep(0.2)
    pytest.fail(f"champion did not switch to {ref} within {timeout} s: {_champion_status(client)}")


def _cli(root: Path, *args: str) -> None:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "EMBEDOPS_REGISTRY": str(root / "registry")}
    done = subprocess.run([sys.executable, "-m", "embedops.cli.main", "models", *args], cwd=root, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr


def test_promote_over_http_switches_without_a_failed_request(server, client, expected):
    model, vectors = _embed(client)
    assert _which(vectors, expected) == "minilm@v1"
    assert _champion_status(client) == {"alias": "champion", "version": "minilm@v1", "state": "current",
                                        "wanted": None, "error": None, "model": "champion",
                                        "model_version": "minilm@v1"}
    answers: list[str | None] = []
    errors: list[str] = []
    stop = threading.Event()

    def hammer() -> None:
        with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {KEY}"}, timeout=60) as c:
            while not stop.is_set():
                resp = c.post("/v1/embeddings", json={"model": "champion", "input": TEXTS})
                if resp.status_code != 200:
                    errors.append(f"{resp.status_code} {resp.text}")
                    continue
                answers.append(_which(np.array([d["embedding"] for d in resp.json()["data"]], dtype=np.float32),
                                      expected))

    threads = [threading.Thread(target=hammer) for _ in range(8)]
    for t in threads:
        t.start()
    try:
        time.sleep(0.5)
        resp = client.post("/v1/registry/promote", json={"version": "minilm@v2", "alias": "champion"})
        assert resp.status_code == 200, resp.text
        _wait_for(client, expected, "minilm@v2")
        time.sleep(0.5)  # the hammering threads also see the new version
    finally:
        stop.set()
        for t in threads:
            t.join(60)
    assert errors == []
    assert None not in answers  # every answer is exactly v1's or v2's vectors, nothing in between
    assert answers.count("minilm@v1") > 0 and answers.count("minilm@v2") > 0
    first_v2 = answers.index("minilm@v2")
    assert answers[first_v2:].count("minilm@v1") <= 8  # at most the requests already in flight at the switch

    status = _champion_status(client)
    assert (status["version"], status["state"], status["model"], status["model_version"]) == (
        "minilm@v2", "current", "champion", "minilm@v2")
    # The v1 worker is named by nothing now (champion was also the default): closed, not kept in memory.
    deadline = time.monotonic() + 10
    while '"message": "model closed"' not in server.log and time.monotonic() < deadline:
        time.sleep(0.1)
    assert '"version": "minilm@v1"' in server.log.split('"message": "model closed"')[1].split("\n")[0]
    ids = [m["id"] for m in client.get("/v1/models").json()["data"]]
    assert ids == ["champion"]
    metrics = client.get("/metrics").text
    # The worker gauges list the served models only (request counters keep their history under the old name).
    assert 'embedops_queue_depth{model="champion"}' in metrics
    assert 'embedops_queue_depth{model="minilm@v1"}' not in metrics


def test_rollback_over_http_and_promote_by_the_cli_in_another_process(root, client, expected):
    if _which(_embed(client)[1], expected) != "minilm@v2":
        client.post("/v1/registry/promote", json={"version": "minilm@v2", "alias": "champion"})
        _wait_for(client, expected, "minilm@v2")
    assert client.post("/v1/registry/rollback", json={"alias": "champion"}).json()["version"] == "minilm@v1"
    _wait_for(client, expected, "minilm@v1")
    assert _champion_status(client)["version"] == "minilm@v1"
    # Another process moves the alias: the server sees the registry's aliases file change (polled every second).
    _cli(root, "promote", "minilm@v2", "--alias", "champion")
    assert _wait_for(client, expected, "minilm@v2", timeout=20) < 20
    assert _champion_status(client)["version"] == "minilm@v2"


def test_a_corrupt_version_keeps_the_previous_one_serving(root, server, client, expected):
    before = _which(_embed(client)[1], expected)
    resp = client.post("/v1/registry/promote", json={"version": "minilm@v3", "alias": "champion"})
    assert resp.status_code == 200, resp.text  # the registry moved: its files are the ones registered
    deadline = time.monotonic() + 30
    while (status := _champion_status(client))["state"] != "failed" and time.monotonic() < deadline:
        time.sleep(0.2)
    assert status["state"] == "failed" and status["wanted"] == "minilm@v3" and status["version"] == before
    assert status["error"] and "/" not in status["error"].replace("(a local folder)", "")  # no server paths
    assert _which(_embed(client)[1], expected) == before  # never dropped: the previous version still answers
    assert "alias not moved" in server.log
    # Moving on from the bad version works as before.
    assert client.post("/v1/registry/rollback", json={"alias": "champion"}).status_code == 200
    _wait_for(client, expected, before)
    assert _champion_status(client)["state"] == "current"


def test_a_collection_keeps_the_model_it_was_embedded_with(root, client, expected, encoder):
    if _which(_embed(client)[1], expected) != "minilm@v1":
        client.post("/v1/registry/promote", json={"version": "minilm@v1", "alias": "champion"})
        _wait_for(client, expected, "minilm@v1")
    assert client.post("/v1/collections", json={"name": "notes", "model": "champion"}).status_code in (200, 201)
    docs = [{"id": f"d{i}", "text": t} for i, t in enumerate(TEXTS)]
    assert client.post("/v1/collections/notes/documents", json={"documents": docs}).status_code == 200
    client.post("/v1/registry/promote", json={"version": "minilm@v2", "alias": "champion"})
    _wait_for(client, expected, "minilm@v2")
    models = {m["registry_version"]: m for m in client.get("/v1/models").json()["data"]}
    assert set(models) == {"minilm@v1", "minilm@v2"}  # v1 stays: the collection's vectors are in its space
    hits = client.post("/v1/collections/notes/search", json={"query": "a flute player", "k": 4}).json()
    assert hits["model"] == models["minilm@v1"]["id"]
    query = encoder.encode(["a flute player"], kind="query")[0]
    want = {f"d{i}": float(v @ query) for i, v in enumerate(expected["minilm@v1"])}
    for hit in hits["data"]:
        assert abs(hit["score"] - want[hit["id"]]) < 1e-4  # scored with v1's query vector, not v2's
