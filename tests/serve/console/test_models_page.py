"""The experiments and models page in headless Chromium: the experiment's effect, CI and decision; promote and roll
back through the confirmation dialog, checked in the registry and in the audit trail of the event log."""

from __future__ import annotations

import json
import threading

import httpx
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait

from embedops.events import EventLog
from embedops.registry import Registry

from .conftest import KEY, page_errors, screenshot


def _client(url: str) -> httpx.Client:
    return httpx.Client(base_url=url, headers={"Authorization": f"Bearer {KEY}"}, timeout=120)


def _open(driver, url: str) -> None:
    driver.get(f"{url}/console/models")
    WebDriverWait(driver, 60).until(lambda d: d.execute_script("return document.body.dataset.ready") == "true")


def _loads(driver) -> int:
    return int(driver.execute_script("return document.body.dataset.registryLoads || '0'"))


def _champion(root) -> str:
    return Registry(root / "registry").aliases()["champion"]["version"]


def _confirm(driver, *, reason: str) -> None:
    dialog = WebDriverWait(driver, 10).until(EC.visibility_of_element_located((By.ID, "confirm")))
    reason_box = dialog.find_element(By.ID, "confirm-reason")
    reason_box.send_keys(reason)
    before = _loads(driver)
    dialog.find_element(By.ID, "confirm-ok").click()
    WebDriverWait(driver, 60).until(lambda d: _loads(d) > before)


def test_the_experiment_shows_its_effect_ci_and_decision(console, console_server):
    with _client(console_server.url) as c:
        for i in range(12):  # users of an interleaved test click the first result they are shown
            r = c.post("/v1/experiments/int8-vs-float/search", json={"query": f"cancer stem cells {i}",
                                                                     "user": f"user-{i}"})
            assert r.status_code == 200, r.text
            assert c.post("/v1/feedback", json={"request_id": r.json()["request_id"],
                                                "doc_id": r.json()["data"][0]["id"], "rank": 1}).status_code == 200
        report = c.get("/v1/experiments/int8-vs-float").json()
    _open(console, console_server.url)
    row = console.find_element(By.CSS_SELECTOR, 'tr[data-experiment="int8-vs-float"]')
    cells = [td.text for td in row.find_elements(By.CSS_SELECTOR, "td")]
    assert cells[0] == "running" and cells[4] == str(report["events"]) and report["events"] >= 12
    assert cells[5] == f"{report['effect']:.4f}"
    assert f"[{report['ci'][0]:.4f}, {report['ci'][1]:.4f}]" in cells[6]
    assert row.find_element(By.CSS_SELECTOR, "td.ci svg line")  # the CI drawn against zero
    assert report["note"] in cells[8] and "no decision yet" in cells[8]


def test_promote_and_rollback_through_the_dialog(console, console_server, console_root):
    _open(console, console_server.url)
    assert _champion(console_root) == "minilm@v1"
    promote = console.find_element(By.CSS_SELECTOR, 'tr[data-ref="minilm@v2"] button.promote')
    # Cancel first: nothing moves.
    promote.click()
    dialog = WebDriverWait(console, 10).until(EC.visibility_of_element_located((By.ID, "confirm")))
    assert dialog.find_element(By.ID, "confirm-title").text == "Promote minilm@v2?"
    assert console.switch_to.active_element.get_attribute("id") == "confirm-alias"  # keyboard users start there
    assert not dialog.find_element(By.ID, "confirm-force").is_displayed()  # only offered for a failed gate
    screenshot(console, "models-confirm-promote", full=False)
    dialog.find_element(By.ID, "confirm-cancel").click()
    assert not dialog.is_displayed() and _champion(console_root) == "minilm@v1"
    assert console.switch_to.active_element == promote  # focus back on the button that opened it

    promote.click()
    _confirm(console, reason="held-out nDCG up 2.6 points")
    assert _champion(console_root) == "minilm@v2"
    status = console.find_element(By.ID, "status").text
    assert status == "champion now points at minilm@v2 (was minilm@v1); recorded in the audit trail."
    assert console.find_element(By.CSS_SELECTOR, 'tr[data-alias="champion"] .alias-version').text == "minilm@v2"

    rollback = console.find_element(By.CSS_SELECTOR, 'tr[data-alias="champion"] button.rollback')
    assert rollback.get_attribute("aria-label") == "Roll champion back to minilm@v1"
    rollback.click()
    _confirm(console, reason="latency regression")
    assert _champion(console_root) == "minilm@v1"
    rows = console.find_elements(By.CSS_SELECTOR, "#audit tbody tr")
    assert [(r.get_attribute("data-action"), r.get_attribute("data-outcome")) for r in rows[:2]] == [
        ("rollback", "done"), ("promote", "done")]
    screenshot(console, "models-after-rollback")

    with EventLog(console_root / "events.db") as log:
        audit = [a for a in log.audit(limit=10) if a.target == "champion"]
    assert [(a.action, a.previous, a.version, a.outcome, a.details.get("reason")) for a in audit[:2]] == [
        ("rollback", "minilm@v2", "minilm@v1", "done", "latency regression"),
        ("promote", "minilm@v1", "minilm@v2", "done", "held-out nDCG up 2.6 points")]
    assert audit[0].actor == "http:127.0.0.1" and audit[0].request_id
    assert not [e for e in page_errors(console) if "status of 4" not in e]


def test_a_failed_gate_is_refused_unless_forced(console, console_server, console_root):
    _open(console, console_server.url)
    console.find_element(By.CSS_SELECTOR, 'tr[data-ref="minilm@v3"] button.promote').click()
    force = console.find_element(By.ID, "confirm-force")
    assert force.is_displayed() and not force.is_selected()
    _confirm(console, reason="try without force")
    error = console.find_element(By.ID, "error").text
    assert error.startswith("Promoting minilm@v3 failed: minilm@v3 failed its quality gate (ndcg@10 >= 0.7 measured "
                            "0.61)") and "(HTTP 409, gate_refused)" in error
    assert _champion(console_root) == "minilm@v1"
    refused = console.find_element(By.CSS_SELECTOR, "#audit tbody tr")
    assert refused.get_attribute("data-outcome") == "refused" and "quality gate" in refused.text


def test_concurrent_promotions_are_serialised_and_all_audited(console_server, console_root):
    """Eight promote calls at once on one alias: each lands whole (the registry's lock), none is lost."""
    refs = ["minilm@v1", "minilm@v2"] * 4
    codes: list[int] = []

    def promote(ref: str) -> None:
        with _client(console_server.url) as c:
            codes.append(c.post("/v1/registry/promote", json={"version": ref, "alias": "staging"}).status_code)

    threads = [threading.Thread(target=promote, args=(r,)) for r in refs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert codes == [200] * 8
    aliases = json.loads((console_root / "registry" / "aliases.json").read_text())
    staging = aliases["staging"]
    assert len(staging["log"]) == 8 and {e["version"] for e in staging["log"]} == set(refs)
    assert staging["version"] == staging["log"][-1]["version"]
    with _client(console_server.url) as c:
        audit = c.get("/v1/audit", params={"action": "promote", "limit": 100}).json()["data"]
        reg = c.get("/v1/registry").json()
        bad = c.post("/v1/registry/promote", json={"version": "minilm@v9"})
        no_alias = c.post("/v1/registry/rollback", json={"alias": "nightly"})
        invalid = c.post("/v1/registry/promote", json={"version": "minilm@v1", "alias": "v2"})
    assert len([a for a in audit if a["target"] == "staging" and a["outcome"] == "done"]) == 8
    assert {v["ref"] for v in reg["versions"]} == {"minilm@v1", "minilm@v2", "minilm@v3"}
    assert "/" not in json.dumps(reg["versions"]).replace("N/A", "")  # no server path leaks
    assert bad.status_code == 404 and bad.json()["error"]["code"] == "version_not_found"
    assert no_alias.status_code == 404 and no_alias.json()["error"]["code"] == "alias_not_found"
    assert invalid.status_code == 422 and "invalid alias" in invalid.json()["error"]["message"]
