"""One real `embedops serve` (API keys on) and one headless Chromium for the console tests of this folder.

The project on disk is small but complete: two collections of the shipped SciFact sample (float32 and int8 vectors),
a registry with three versions of the bundled model (one with a failed quality gate), an interleaving experiment, and
three hours of earlier traffic in the event log (real query embeddings: everyday sentences, then scientific claims,
so the later windows drift) for the monitoring page.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import numpy as np
import pytest

from ..conftest import Server, sts_sentences

KEY = "console-test-key"
SAMPLE = Path(__file__).resolve().parents[3] / "src" / "embedops" / "samples" / "scifact-mini"
N_DOCS = 30
WINDOW_S = 600.0  # the seeded history: 12 windows of 10 minutes ending a minute ago
HISTORY_WINDOWS = 12
PER_WINDOW = 20
REFERENCE = 40  # the first window holds more queries: the reference the later windows are tested against
CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"


def artifacts_dir() -> Path:
    """Where screenshots go: $EMBEDOPS_ARTIFACTS/console, else test-artifacts/console under the repo root."""
    base = os.environ.get("EMBEDOPS_ARTIFACTS")
    root = Path(base) if base else Path(__file__).resolve().parents[3] / "test-artifacts"
    out = root / "console"
    out.mkdir(parents=True, exist_ok=True)
    return out


def sample_docs(n: int = N_DOCS) -> list[dict]:
    """The first `n` abstracts (cut) of the shipped SciFact sample, with their title and a little metadata."""
    docs = []
    with open(SAMPLE / "corpus.jsonl", encoding="utf-8") as fh:
        for i, line in enumerate(fh):
            if i >= n:
                break
            row = json.loads(line)
            # The first 600 characters: enough to search, and quick to embed on a small CI machine.
            docs.append({"id": row["_id"], "title": row["title"], "text": row["text"][:600],
                         "metadata": {"source": "scifact", "position": i}})
    return docs


def sample_claims() -> list[str]:
    """The sample's 40 claims (queries)."""
    with open(SAMPLE / "queries.jsonl", encoding="utf-8") as fh:
        return [json.loads(line)["text"] for line in fh]


def _hardlinked_model(dst: Path) -> Path:
    from embedops.models import bundled_default_path
    from embedops.registry.integrity import link_or_copy

    shutil.copytree(bundled_default_path(), dst, copy_function=link_or_copy, dirs_exist_ok=True)
    return dst


def _registry(root: Path) -> None:
    """minilm v1 (champion), v2 (passed gate, evaluated) and v3 (failed gate), without copying weights."""
    from embedops.registry import Registry

    reg = Registry(root / "registry")
    gate_ok = {"passed": True, "summary": "all criteria measured and pass", "criteria": []}
    gate_bad = {"passed": False, "summary": "ndcg@10 >= 0.7 measured 0.61", "criteria": []}
    evaluation = {"dataset": "held-out", "queries": 40, "key_metric": "ndcg@10", "before": {"ndcg@10": 0.6451},
                  "after": {"ndcg@10": 0.6712}, "comparison": {"ndcg@10": {"diff": 0.0261, "p_value": 0.031}}}
    reg.import_model(_hardlinked_model(root / "m1"), "minilm", move=True, alias="champion",
                     metadata={"gate": gate_ok})
    reg.import_model(_hardlinked_model(root / "m2"), "minilm", move=True,
                     metadata={"kind": "trained", "parent": "minilm@v1", "gate": gate_ok, "evaluation": evaluation,
                               "data": {"examples": 900, "fingerprint": "sha256:0f3a9c5e1b7d2468"}})
    reg.import_model(_hardlinked_model(root / "m3"), "minilm", move=True,
                     metadata={"kind": "trained", "parent": "minilm@v2", "gate": gate_bad})


def _history(root: Path, encoder, doc_vectors: np.ndarray, doc_ids: list[str], shared: Path) -> None:
    """Three hours of searches in the event log, with real query embeddings and real cosine scores against the
    collection: STS sentences for nine windows, then SciFact claims (a shift the drift tests should see)."""
    from embedops.events import EventLog, FeedbackEvent, RequestEvent

    everyday = [s for _, s in sts_sentences(shared, REFERENCE + (HISTORY_WINDOWS // 2 - 1) * PER_WINDOW)]
    claims = sample_claims()
    claims = (claims * 5)[: (HISTORY_WINDOWS // 2) * PER_WINDOW]
    vectors = encoder.encode(everyday + claims, kind="query")
    texts = everyday + claims
    rng = np.random.default_rng(11)
    start = time.time() - 60 - HISTORY_WINDOWS * WINDOW_S
    start -= start % WINDOW_S
    sizes = [REFERENCE] + [PER_WINDOW] * (HISTORY_WINDOWS - 1)
    i = 0
    with EventLog(root / "events.db") as log:
        for w, n in enumerate(sizes):
            for j in range(n):
                t = start + w * WINDOW_S + (j + 0.5) * WINDOW_S / n
                scores = doc_vectors @ vectors[i]
                top = np.argsort(-scores)[:5]
                rid = f"hist-{i}"
                failed = j == 0 and w % 4 == 3  # a failed request now and then: the error rate is not flat
                log.log(RequestEvent(
                    request_id=rid, kind="search", model="all-MiniLM-L6-v2", model_version="minilm@v1",
                    collection="scifact", route="search", latency_ms=float(12 + 6 * w / HISTORY_WINDOWS
                                                                             + rng.gamma(2.0, 4.0)),
                    status=422 if failed else 200, error="invalid_request" if failed else None, query=texts[i], k=5,
                    mode="dense", truncated=int(j % 7 == 0), result_ids=[] if failed else [doc_ids[k] for k in top],
                    scores=[] if failed else [float(scores[k]) for k in top],
                    query_vector=None if failed else vectors[i], user_id=f"u{j % 9}", time=t))
                if not failed and j % 3 == 0:
                    log.log(FeedbackEvent(rid, "click", doc_ids[top[0]], rank=1, dwell_ms=4000.0, time=t + 3))
                i += 1


@pytest.fixture(scope="package")
def console_root(tmp_path_factory, encoder, shared_data) -> Path:
    """The project folder the console server runs in."""
    from embedops.experiment import Experiment, ExperimentStore
    from embedops.index import Collection, IndexSpec

    root = tmp_path_factory.mktemp("console")
    docs = sample_docs()
    vectors = encoder.encode([f"{d['title']} {d['text']}" for d in docs], kind="document")
    with Collection.create(root / "collections" / "scifact", encoder) as col:
        col.add(docs, vectors=vectors)
    with Collection.create(root / "collections" / "scifact-int8", encoder, spec=IndexSpec(vectors="int8")) as col:
        col.add(docs, vectors=vectors)
    _registry(root)
    ExperimentStore(root / "experiments").create(Experiment.new(
        "int8-vs-float", {"model": "default", "collection": "scifact"},
        {"model": "default", "collection": "scifact-int8"}, mode="interleave", k=5))
    (root / "embedops.yaml").write_text(
        "version: 1\nname: console-test\nregistry: registry\n"
        "criteria:\n  success:\n    - p95_latency_ms <= 40\n"
        # A 64 KiB body bound (4 MiB by default): the huge-query test pastes 96 KB, not megabytes, into the page.
        "serving:\n  events: events.db\n  collections_root: collections\n  max_body_bytes: 65536\n",
        encoding="utf-8")
    np.save(root / "doc-vectors.npy", vectors)
    return root


@pytest.fixture(scope="package")
def console_server(console_root, encoder, shared_data) -> Server:
    """`embedops serve embedops.yaml` with an API key, on 127.0.0.1; the history is written while it loads."""
    srv = Server([str(console_root / "embedops.yaml")], console_root, env={"EMBEDOPS_API_KEYS": KEY})
    _history(console_root, encoder, np.load(console_root / "doc-vectors.npy"), [d["id"] for d in sample_docs()],
             shared_data)
    srv.wait_ready()
    yield srv
    srv.stop()


@pytest.fixture(scope="package")
def browser():
    """Headless Chromium through the system chromedriver (Selenium Manager never downloads anything)."""
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not shutil.which(p)]
    if missing:
        pytest.fail(f"{' and '.join(missing)} not found: the console tests need Chromium and its driver; install "
                    "them with `apt-get install chromium chromium-driver`")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,1000",
                "--disable-gpu", "--no-first-run", "--disable-extensions"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()


@pytest.fixture(scope="package")
def console(console_server, browser):
    """The browser, signed in with the API key (typed into the page's key field, as a user would)."""
    from selenium.webdriver.common.by import By

    browser.get(f"{console_server.url}/console/")
    field = browser.find_element(By.ID, "api-key")
    field.send_keys(KEY)
    browser.find_element(By.CSS_SELECTOR, "#key-form button[type=submit]").click()
    assert browser.execute_script("return sessionStorage.getItem('embedops.apiKey')") == KEY
    browser.get_log("browser")  # the 401s of the first load, before the key was typed
    return browser


@pytest.fixture(autouse=True)
def _fresh_browser_log(request):
    """Each test sees only its own page errors (the browser outlives the test)."""
    if "console" in request.fixturenames:
        request.getfixturevalue("console").get_log("browser")


def screenshot(driver, name: str, *, full: bool = True) -> Path:
    """Save the page (all of it, not only the window) as a PNG test artefact."""
    import base64

    path = artifacts_dir() / f"{name}.png"
    if full:
        shot = driver.execute_cdp_cmd("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True})
        path.write_bytes(base64.b64decode(shot["data"]))
    else:
        driver.save_screenshot(str(path))
    return path


def page_errors(driver) -> list[str]:
    """Severe messages in the browser console (script errors, CSP violations) since the last call."""
    return [e["message"] for e in driver.get_log("browser") if e.get("level") == "SEVERE"]
