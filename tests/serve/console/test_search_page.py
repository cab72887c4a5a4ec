"""The search page in headless Chromium against the real server: search, why it ranks, click and judge results (the
feedback lands in the project's event log), compare two collections, and clear messages for bad input."""

from __future__ import annotations

import httpx
import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import Select, WebDriverWait

from embedops.events import EventLog

from ..conftest import wait_for
from .conftest import KEY, page_errors, screenshot


def _wait(driver, condition, timeout: float = 30):
    return WebDriverWait(driver, timeout).until(condition)


def _searches(driver) -> int:
    return int(driver.execute_script("return document.body.dataset.searches || '0'"))


def _open(driver, url: str) -> None:
    driver.get(url)
    _wait(driver, lambda d: d.execute_script("return document.body.dataset.ready") == "true")


def _search(driver, query: str, *, collection: str = "scifact", mode: str = "dense", k: int = 5) -> int:
    before = _searches(driver)
    box = driver.find_element(By.ID, "q")
    box.clear()
    box.send_keys(query)
    Select(driver.find_element(By.ID, "collection")).select_by_value(collection)
    driver.find_element(By.CSS_SELECTOR, f'input[name="mode"][value="{mode}"]').click()
    k_box = driver.find_element(By.ID, "k")
    k_box.clear()
    k_box.send_keys(str(k))
    box.send_keys(Keys.ENTER)  # the keyboard path: Enter in the query box submits
    _wait(driver, lambda d: _searches(d) > before)
    return before + 1


def test_search_click_and_feedback_reach_the_event_log(console, console_server, console_root):
    _open(console, f"{console_server.url}/console/")
    _search(console, "stem cells and tumour growth", mode="hybrid")
    column = console.find_element(By.CSS_SELECTOR, "#results .column")
    rid = column.get_attribute("data-request-id")
    hits = column.find_elements(By.CSS_SELECTOR, "li.hit")
    assert len(hits) == 5 and rid
    # Why it ranks: the fused score with its dense and keyword parts, filled in by the explain call.
    _wait(console, lambda d: len(d.find_elements(By.CSS_SELECTOR, "li.hit[data-explained=true]")) == 5)
    why = hits[0].find_element(By.CSS_SELECTOR, ".why").text
    assert "fused score" in why and "dense" in why and "keyword" in why and "(minmax)" in why
    ids = [h.get_attribute("data-id") for h in hits]

    hits[1].find_element(By.CSS_SELECTOR, ".hit-title").click()  # opening a result is a click
    hits[0].find_element(By.CSS_SELECTOR, ".thumb-up").click()
    hits[2].find_element(By.CSS_SELECTOR, ".thumb-down").click()
    _wait(console, lambda d: "click" in hits[1].get_attribute("data-feedback")
          and "relevant" in hits[0].get_attribute("data-feedback")
          and "irrelevant" in hits[2].get_attribute("data-feedback"))
    assert hits[1].find_element(By.CSS_SELECTOR, ".hit-title").get_attribute("aria-expanded") == "true"
    assert hits[0].find_element(By.CSS_SELECTOR, ".thumb-up").get_attribute("aria-pressed") == "true"
    assert "marked not relevant" in console.find_element(By.ID, "status").text
    screenshot(console, "search-hybrid-feedback")

    with EventLog(console_root / "events.db") as log:
        got = wait_for(lambda: {(f.kind, f.doc_id, f.rank) for f in log.feedback_for(rid)} if len(
            log.feedback_for(rid)) >= 3 else None)
        searched = [r for r in log.requests(kind="search") if r.request_id == rid]
    assert got == {("click", ids[1], 2), ("relevant", ids[0], 1), ("irrelevant", ids[2], 3)}
    assert searched and searched[0].query == "stem cells and tumour growth" and searched[0].mode == "hybrid"
    assert searched[0].result_ids == ids
    assert not [e for e in page_errors(console) if "status of 4" not in e]


def test_explain_parts_add_up_to_the_hybrid_score(console_server):
    with httpx.Client(base_url=console_server.url, headers={"Authorization": f"Bearer {KEY}"}, timeout=60) as c:
        for fusion in ("minmax", "rrf"):
            hits = c.post("/v1/collections/scifact/search", json={"query": "glioma stem cells", "k": 8,
                                                                   "mode": "hybrid", "fusion": fusion}).json()["data"]
            r = c.post("/v1/collections/scifact/explain", json={"query": "glioma stem cells", "fusion": fusion,
                                                                 "ids": [h["id"] for h in hits]})
            assert r.status_code == 200, r.text
            parts = {d["id"]: d for d in r.json()["data"]}
            for h in hits:
                d = parts[h["id"]]
                assert d["fused"] == pytest.approx(h["score"], abs=1e-5)
                assert d["fused"] == pytest.approx(d["dense_part"] + d["keyword_part"], abs=1e-9)
            assert any(d["keyword_rank"] for d in parts.values()) and any(d["dense_rank"] for d in parts.values())
        bad = c.post("/v1/collections/nope/explain", json={"query": "x"})
        assert bad.status_code == 404 and bad.json()["error"]["code"] == "collection_not_found"


def test_two_collections_side_by_side(console, console_server):
    _open(console, f"{console_server.url}/console/")
    console.find_element(By.ID, "compare").click()
    Select(console.find_element(By.ID, "collection-b")).select_by_value("scifact-int8")
    _search(console, "myelodysplastic syndromes and immune response", k=6)
    columns = console.find_elements(By.CSS_SELECTOR, "#results .column")
    assert [c.get_attribute("data-collection") for c in columns] == ["scifact", "scifact-int8"]
    rids = {c.get_attribute("data-request-id") for c in columns}
    assert len(rids) == 2 and "" not in rids  # each side is its own logged search, so feedback goes to the right one
    for column in columns:
        assert len(column.find_elements(By.CSS_SELECTOR, "li.hit")) == 6
        assert column.find_elements(By.CSS_SELECTOR, ".badge")  # where each result ranks on the other side
    # int8 vectors rescored in float32 keep the top result.
    firsts = [c.find_element(By.CSS_SELECTOR, "li.hit").get_attribute("data-id") for c in columns]
    assert firsts[0] == firsts[1]
    assert "#1 in scifact" in columns[1].find_element(By.CSS_SELECTOR, "li.hit .badge").text
    assert "compare=scifact-int8" in console.current_url  # the comparison is a link one can share
    screenshot(console, "search-compare")


def test_empty_query_is_refused_with_a_message(console, console_server):
    _open(console, f"{console_server.url}/console/")
    for text in ("", "   "):
        box = console.find_element(By.ID, "q")
        box.clear()
        box.send_keys(text)
        console.find_element(By.ID, "search-button").click()
        error = _wait(console, EC.visibility_of_element_located((By.ID, "error")))
        assert error.text == "Type a query to search: the query is empty."
        assert box.get_attribute("aria-invalid") == "true"
        assert console.switch_to.active_element == box  # focus goes to what needs fixing
    assert _searches(console) == 0


def test_huge_query_shows_the_servers_limit_not_a_stack_trace(console, console_server):
    _open(console, f"{console_server.url}/console/")
    # A 96 KB paste (set directly: typing it key by key would take minutes) against the test server's 64 KiB
    # body bound (serving.max_body_bytes; 4 MiB by default, which a browser takes seconds to even hold in a field).
    console.execute_script("document.getElementById('q').value = 'protein folding '.repeat(6000);")
    console.find_element(By.ID, "search-button").click()
    _wait(console, lambda d: _searches(d) == 1)
    text = console.find_element(By.ID, "error").text
    assert text.startswith("Search in scifact failed: the request body is over 65536 bytes (HTTP 413")
    assert "Shorten the input" in text and "Traceback" not in text
    column = console.find_element(By.CSS_SELECTOR, "#results .column")
    assert "No results" in column.text and not column.find_elements(By.CSS_SELECTOR, "li.hit")
    screenshot(console, "search-huge-query", full=False)


def test_unknown_collection_in_a_link_is_named(console, console_server):
    console.get(f"{console_server.url}/console/?q=vitamin+D&collection=nope")
    _wait(console, lambda d: _searches(d) == 1 and d.execute_script("return document.body.dataset.ready") == "true")
    text = console.find_element(By.ID, "error").text
    assert text == "Search in nope failed: the collection 'nope' does not exist (HTTP 404, collection_not_found)"
    selected = Select(console.find_element(By.ID, "collection")).first_selected_option.text
    assert selected == "nope (not listed by this server)"


def test_the_pages_are_public_the_data_is_not(console_server, browser):
    with httpx.Client(base_url=console_server.url, timeout=30) as c:
        page = c.get("/console/")
        assert page.status_code == 200 and "text/html" in page.headers["content-type"]
        assert "script-src 'self'" in page.headers["content-security-policy"]
        assert c.get("/console/monitor").status_code == 200 and c.get("/console/charts.js").status_code == 200
        assert c.get("/console/", headers={"If-None-Match": page.headers["etag"]}).status_code == 304
        missing = c.get("/console/secrets.txt")
        assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
        for path in ("/v1/monitor", "/v1/registry", "/v1/experiments", "/v1/audit"):
            assert c.get(path).status_code == 401, path
    # In the browser: a wrong key gets a message that says what to do, and the key field to fix it.
    browser.execute_script("sessionStorage.setItem('embedops.apiKey', 'wrong-key')")
    try:
        browser.get(f"{console_server.url}/console/")
        _wait(browser, lambda d: d.execute_script("return document.body.dataset.ready") == "true")
        assert browser.find_element(By.ID, "error").text == (
            "Loading the collections failed: a valid API key is required: type it in the API key field at the top "
            "of the page")
        assert browser.switch_to.active_element.get_attribute("id") == "api-key"
    finally:
        browser.execute_script(f"sessionStorage.setItem('embedops.apiKey', '{KEY}')")
