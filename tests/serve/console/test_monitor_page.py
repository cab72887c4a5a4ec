"""The monitoring page in headless Chromium: its charts draw the report of GET /v1/monitor (Project.monitor over the
project's event log) with points, alert thresholds and drifted windows."""

from __future__ import annotations

import httpx
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from embedops import Project

from .conftest import HISTORY_WINDOWS, KEY, WINDOW_S, page_errors, screenshot

CHARTS = ("latency", "rates", "scores", "clicks", "mmd", "auc", "centroid")


def _report(url: str, **params) -> httpx.Response:
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {KEY}"}, timeout=120) as c:
        return c.get("/v1/monitor", params=params)


def test_the_charts_render_the_report_with_thresholds_and_drift(console, console_server):
    console.get(f"{console_server.url}/console/monitor?window_s=600&last_s=14400&min_vectors=15")
    WebDriverWait(console, 60).until(lambda d: d.execute_script("return document.body.dataset.loads") == "1")
    points = {name: len(console.find_elements(By.CSS_SELECTOR, f"#chart-{name} svg circle.pt")) for name in CHARTS}
    # Every chart has data: one point per window (and series) for the quality charts, one per checked window for
    # the drift charts (the reference window itself is not checked).
    assert points["latency"] >= 3 * HISTORY_WINDOWS and points["scores"] >= 2 * HISTORY_WINDOWS, points
    assert points["rates"] >= 3 * HISTORY_WINDOWS and points["clicks"] >= HISTORY_WINDOWS, points
    for name in ("mmd", "auc", "centroid"):
        assert points[name] >= HISTORY_WINDOWS - 2, points
        assert console.find_elements(By.CSS_SELECTOR, f"#chart-{name} path.threshold"), name
    # The latency limit comes from the project's success criteria (p95_latency_ms <= 40).
    limit = console.find_element(By.CSS_SELECTOR, "#chart-latency path.threshold")
    assert "p95_latency_ms ≤ 40" in console.find_element(By.CSS_SELECTOR, "#chart-latency .legend").text
    assert limit.get_attribute("d").startswith("M")
    # The later windows hold scientific claims instead of everyday sentences: the drift tests flag them.
    drifted = console.find_elements(By.CSS_SELECTOR, "#chart-auc circle.drifted")
    assert len(drifted) >= 3
    assert "drift (" in console.find_element(By.ID, "cards").text
    # Reading the report records nothing (alert=false): the drifted windows are drawn, not logged as alerts.
    assert console.find_element(By.ID, "alerts").text == "No alerts in this span."
    label = console.find_element(By.CSS_SELECTOR, "#chart-latency svg").get_attribute("aria-label")
    assert label.startswith("Latency (ms): p50, p95, p99:") and "windows from" in label
    assert "windows of 600 s" in console.find_element(By.ID, "status").text
    screenshot(console, "monitor")
    assert not page_errors(console)


def test_the_route_gives_what_project_monitor_gives(console_server, console_root):
    """GET /v1/monitor is Project.monitor: the same windows and numbers as the library on the same log."""
    body = _report(console_server.url, window_s=WINDOW_S, min_vectors=15, until=_history_end(console_root),
                   alert="true")
    assert body.status_code == 200, body.text
    got = body.json()
    # Asked to (alert=true, as the CLI does by default), the run records its drifted windows as alert events.
    assert got["alerts"] and {a["message"] for a in got["alerts"]} <= {a["message"] for a in got["logged_alerts"]}
    project = Project.open(console_root / "embedops.yaml")
    try:  # quality only here (no drift checks: they cost seconds); the page test shows the route's drift checks
        want = project.monitor(window_s=WINDOW_S, min_vectors=100_000, end=_history_end(console_root), alert=False)
    finally:
        project.close()
    assert [w["quality"] for w in got["windows"]] == [w.quality.to_dict() for w in want.windows]
    assert sum(w["drift"] is not None for w in got["windows"]) >= HISTORY_WINDOWS - 2
    assert got["thresholds"] == {"p95_latency_ms": 40.0} and got["versions"] == ["minilm@v1"]


def test_bad_parameters_are_named(console_server):
    for params, param in (({"window_s": 0}, "window_s"), ({"min_vectors": 3}, "min_vectors"),
                          ({"since": 100, "until": 50}, "until"), ({"since": 1, "last_s": 60}, "last_s"),
                          ({"until": "inf"}, "until"), ({"since": "nan"}, "since"),
                          ({"window_s": 0.001}, "window_s")):  # three hours of 1 ms windows: over the bound
        r = _report(console_server.url, **params)
        assert r.status_code == 422, (params, r.text)
        assert r.json()["error"]["param"] == param
    assert "windows of 0.001 s; the bound is 5000" in _report(console_server.url, window_s=0.001).text
    # A span with nothing logged is an empty report, not an error; an end far in the future adds no empty windows.
    for params in ({"since": 4e9}, {"until": 1000}):
        empty = _report(console_server.url, **params)
        assert empty.status_code == 200 and empty.json()["windows"] == [], params
    far = _report(console_server.url, window_s=WINDOW_S, until=9e10, min_vectors=100_000)
    assert far.status_code == 200 and 1 <= len(far.json()["windows"]) <= HISTORY_WINDOWS + 3


def _history_end(root) -> float:
    from embedops.events import EventLog

    with EventLog(root / "events.db") as log:
        hist = [r.time for r in log.requests() if r.request_id.startswith("hist-")]
    return max(hist) + 1
