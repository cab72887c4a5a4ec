"""Monitor over a real event log of real searches: quality per window, drift alerts, gauges, the HTML report."""

from __future__ import annotations

import base64
import logging
import re

import numpy as np
import pytest

from embedops.events import EventLog, FeedbackEvent, RequestEvent
from embedops.monitor import Monitor, quality_signals, set_monitor_gauges, write_html_report

T0 = 1_750_000_000.0 - (1_750_000_000.0 % 3600)  # an hour boundary
HOUR = 3600.0
REF, PER_HOUR = 300, 150


def _search(log: EventLog, i: int, t: float, q: np.ndarray, corpus: np.ndarray, version: str,
            rng: np.random.Generator, logged: list[RequestEvent]) -> None:
    scores = corpus @ q
    top = np.argsort(-scores)[:5]
    event = RequestEvent(request_id=f"{version}-{i}", kind="search", model="minilm", model_version=version,
                         collection="sts", latency_ms=float(rng.gamma(4.0, 3.0)), query=f"query {i}", k=5,
                         result_ids=[f"doc{j}" for j in top], scores=[float(scores[j]) for j in top],
                         query_vector=q, user_id=f"u{i % 7}", time=t)
    assert log.log(event)
    logged.append(event)
    if i % 3 == 0:  # a simulated user clicks the first result of every third search
        assert log.log(FeedbackEvent(event.request_id, "click", event.result_ids[0], rank=1, dwell_ms=900.0,
                                     time=t + 5))


@pytest.fixture(scope="module")
def traffic(drift_data, tmp_path_factory):
    """Five hours of v1 traffic (hour 0 reference, hours 1-2 STS, hours 3-4 SciFact) and a little v2 in hour 4."""
    path = tmp_path_factory.mktemp("monitor") / "events.db"
    rng = np.random.default_rng(0)
    corpus = drift_data.reference[REF:REF + 500]  # the "indexed documents": real vectors, real cosine scores
    queries = [drift_data.reference[:REF], drift_data.same[:PER_HOUR], drift_data.same[PER_HOUR:2 * PER_HOUR],
               drift_data.other[:PER_HOUR], drift_data.other[PER_HOUR:2 * PER_HOUR]]
    logged: list[RequestEvent] = []
    with EventLog(path) as log:
        n = 0
        for hour, qs in enumerate(queries):
            for j, q in enumerate(qs):
                _search(log, n, T0 + hour * HOUR + j * (HOUR - 60) / len(qs), q, corpus, "v1", rng, logged)
                n += 1
            t = T0 + hour * HOUR + 30
            log.log(RequestEvent(f"err-{hour}", kind="search", model_version="v1", status=500, error="InternalError",
                                 latency_ms=1.0, time=t))
            for e in range(5):
                log.log(RequestEvent(f"emb-{hour}-{e}", kind="embed", model_version="v1", n_inputs=4, tokens=80,
                                     truncated=1 if e < 2 else 0, latency_ms=2.0, time=t + e))
        for j, q in enumerate(drift_data.other[-30:]):
            _search(log, n + j, T0 + 4 * HOUR + j, q, corpus, "v2", rng, logged)
    return path, logged


def test_a_version_deployed_mid_span_is_checked_against_its_own_first_hour(drift_data, tmp_path):
    """v1 serves hours 0-3; v2 starts in hour 2 with everyday queries, then gets claims in hour 3: v2's reference is
    its own hour 2 (not hour 0, where it served nothing), so its hour 3 is checked, and flagged."""
    rng = np.random.default_rng(1)
    corpus, logged = drift_data.reference[REF:REF + 500], []
    with EventLog(tmp_path / "events.db") as log:
        for hour in range(4):
            for j, q in enumerate(drift_data.same[hour * 60:(hour + 1) * 60]):
                _search(log, hour * 1000 + j, T0 + hour * HOUR + j * 50, q, corpus, "v1", rng, logged)
        v2 = [drift_data.same[600:600 + PER_HOUR], drift_data.other[:PER_HOUR]]
        for i, qs in enumerate(v2):
            for j, q in enumerate(qs):
                _search(log, 9000 + i * 1000 + j, T0 + (2 + i) * HOUR + j * 20, q, corpus, "v2", rng, logged)
        log.flush()
        report = Monitor(log, window_s=HOUR, min_vectors=50).run(T0, T0 + 4 * HOUR, alert=False)
    assert report.references["v2"] == {"start": T0 + 2 * HOUR, "end": T0 + 3 * HOUR, "n": PER_HOUR}
    assert report.references["v1"] == {"start": T0, "end": T0 + HOUR, "n": 60}
    checked = {(w.model_version, w.quality.start): w.drift for w in report.windows}
    assert checked[("v2", T0 + 2 * HOUR)] is None  # its reference window
    assert checked[("v2", T0 + 3 * HOUR)] is not None and checked[("v2", T0 + 3 * HOUR)].drifted
    assert all(not checked[("v1", T0 + h * HOUR)].drifted for h in (1, 2, 3))


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@pytest.fixture(scope="module")
def monitored(traffic):
    """One monitoring run over the five hours (alerts on), with the warnings it logged."""
    path, _ = traffic
    records = _Records()
    logger = logging.getLogger("embedops.monitor")
    logger.addHandler(records)
    try:
        with EventLog(path) as log:
            report = Monitor(log, window_s=HOUR).run(T0, T0 + 5 * HOUR)
    finally:
        logger.removeHandler(records)
    return report, records.messages


def test_monitor_run_quality_drift_alerts_and_rerun(traffic, monitored):
    path, logged = traffic
    report, warnings = monitored
    with EventLog(path) as log:
        assert [(w.model_version, w.quality.start) for w in report.windows] == [
            ("v1", T0), ("v1", T0 + HOUR), ("v1", T0 + 2 * HOUR), ("v1", T0 + 3 * HOUR), ("v1", T0 + 4 * HOUR),
            ("v2", T0 + 4 * HOUR)]
        v1 = [w for w in report.windows if w.model_version == "v1"]
        assert v1[0].drift is None  # the reference window itself
        assert [w.drift.drifted for w in v1[1:]] == [False, False, True, True]
        assert report.references["v1"] == {"start": T0, "end": T0 + HOUR, "n": REF}
        # v2 starts in hour 4: its reference is its own first hour (30 queries, too few to fit a detector on).
        assert report.references["v2"] == {"start": T0 + 4 * HOUR, "end": T0 + 5 * HOUR, "n": 30}
        assert report.windows[-1].drift is None

        # Quality numbers recomputed here from what was logged.
        hour1 = [e for e in logged if e.model_version == "v1" and T0 + HOUR <= e.time < T0 + 2 * HOUR]
        q = v1[1].quality
        assert q.requests == len(hour1) + 6 and q.searches == len(hour1) + 1 and q.embeds == 5
        assert q.top1["p50"] == pytest.approx(np.quantile([e.scores[0] for e in hour1], 0.5))
        assert q.topk["p95"] == pytest.approx(np.quantile([s for e in hour1 for s in e.scores], 0.95))
        assert q.gap_median == pytest.approx(np.median([e.scores[0] - e.scores[1] for e in hour1]))
        lat = [e.latency_ms for e in hour1] + [1.0] + [2.0] * 5
        assert q.latency_ms["p99"] == pytest.approx(np.quantile(lat, 0.99))
        assert q.error_rate == pytest.approx(1 / (len(hour1) + 6))
        assert q.truncation_rate == pytest.approx(2 / (len(hour1) + 1 + 20))
        clicked = sum(int(e.request_id.split("-")[1]) % 3 == 0 for e in hour1)
        assert q.ctr == pytest.approx(clicked / len(hour1)) and q.clicks == clicked
        assert q.empty_rate == 0.0
        # SciFact queries against an STS corpus match worse: the top-1 score falls with the drift.
        assert v1[3].quality.top1["p50"] < v1[1].quality.top1["p50"]

        alerts = log.alerts(kind="drift")
        assert [(a.model_version, a.window_start, a.window_end) for a in alerts] == [
            ("v1", T0 + 3 * HOUR, T0 + 4 * HOUR), ("v1", T0 + 4 * HOUR, T0 + 5 * HOUR)]
        assert alerts[0].details["drifted"] is True and alerts[0].details["n_window"] == PER_HOUR
        assert len(warnings) == 2 and all("query drift" in w and "'v1'" in w for w in warnings)

        again = Monitor(log, window_s=HOUR).run(T0, T0 + 5 * HOUR)
        assert again.alerts == [] and len(log.alerts(kind="drift")) == 2  # no duplicate alerts on a rerun


def test_gauges_and_html_report(monitored, tmp_path):
    from prometheus_client import CollectorRegistry, generate_latest

    report, _ = monitored
    registry = CollectorRegistry()
    set_monitor_gauges(registry, report)
    set_monitor_gauges(registry, report)  # a second run updates the same gauges
    v1 = {"model_version": "v1"}
    latest = report.latest("v1")
    assert registry.get_sample_value("embedops_drift_detected", v1) == 1.0
    assert registry.get_sample_value("embedops_drift_auc", v1) == pytest.approx(latest.drift.auc)
    assert registry.get_sample_value("embedops_drift_auc_threshold", v1) == pytest.approx(latest.drift.auc_threshold)
    assert registry.get_sample_value("embedops_quality_ctr", v1) == pytest.approx(latest.quality.ctr)
    assert registry.get_sample_value("embedops_quality_latency_ms", {**v1, "quantile": "0.95"}) == pytest.approx(
        latest.quality.latency_ms["p95"])
    assert registry.get_sample_value("embedops_quality_requests", {"model_version": "v2"}) == 30
    assert registry.get_sample_value("embedops_drift_detected", {"model_version": "v2"}) is None
    assert "embedops_monitor_last_run_timestamp_seconds" in generate_latest(registry).decode()

    out = write_html_report(tmp_path / "reports" / "monitor.html", report)
    text = out.read_text()
    images = re.findall(r'src="data:image/png;base64,([^"]+)"', text)
    assert len(images) == 2 and all(base64.b64decode(i)[:8] == b"\x89PNG\r\n\x1a\n" for i in images)
    assert text.count('<tr class="drift">') == 2 and text.count("not checked") == 2
    assert sorted(p.name for p in out.parent.iterdir()) == ["monitor.html"]


def test_quality_of_an_empty_or_failed_window():
    q = quality_signals([])
    assert q.requests == 0 and q.ctr is None and q.error_rate is None and q.top1["p50"] is None
    failed = [RequestEvent("a", status=500, error="InternalError"), RequestEvent("b", scores=[], result_ids=[])]
    q = quality_signals(failed)
    assert q.error_rate == 0.5 and q.empty_rate == 1.0 and q.ctr is None


def test_an_empty_log_gives_an_empty_report(tmp_path):
    with EventLog(tmp_path / "e.db") as log:
        report = Monitor(log).run()
    assert report.windows == [] and report.alerts == []
