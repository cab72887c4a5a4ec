"""`Monitor`: read an event log window by window, compute quality signals and query drift, raise alerts."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from embedops.errors import InputError
from embedops.events import AlertEvent, EventLog, FeedbackEvent
from embedops.monitor.drift import MIN_WINDOW, DriftDetector, DriftResult
from embedops.monitor.quality import QualityWindow, quality_windows

logger = logging.getLogger("embedops.monitor")


@dataclass
class WindowReport:
    """One (model version, window): its quality signals and, when it had enough query vectors, its drift check."""

    quality: QualityWindow
    drift: DriftResult | None = None
    n_vectors: int = 0

    @property
    def model_version(self) -> str:
        """The model version the window's requests were served by."""
        return self.quality.model_version

    def to_dict(self) -> dict[str, Any]:
        """Plain types, for JSON and reports."""
        return {"quality": self.quality.to_dict(), "drift": None if self.drift is None else self.drift.to_dict(),
                "n_vectors": self.n_vectors}


@dataclass
class MonitorReport:
    """The result of one monitoring run: windows oldest first, the reference each version was compared with."""

    start: float
    end: float
    window_s: float
    windows: list[WindowReport] = field(default_factory=list)
    references: dict[str, dict[str, Any]] = field(default_factory=dict)  # version -> {start, end, n}
    alerts: list[AlertEvent] = field(default_factory=list)  # raised by this run
    created: float = field(default_factory=time.time)

    def versions(self) -> list[str]:
        """Model versions seen in the run."""
        return sorted({w.model_version for w in self.windows})

    def latest(self, model_version: str) -> WindowReport | None:
        """The newest window of a version (the one gauges show)."""
        found = [w for w in self.windows if w.model_version == model_version]
        return found[-1] if found else None

    def latest_drift(self, model_version: str) -> WindowReport | None:
        """The newest window of a version that has a drift check."""
        found = [w for w in self.windows if w.model_version == model_version and w.drift is not None]
        return found[-1] if found else None

    def to_dict(self) -> dict[str, Any]:
        """Plain types, for JSON."""
        return {"start": self.start, "end": self.end, "window_s": self.window_s, "created": self.created,
                "references": self.references, "windows": [w.to_dict() for w in self.windows],
                "alerts": [{"kind": a.kind, "message": a.message, "model_version": a.model_version,
                            "window_start": a.window_start, "window_end": a.window_end} for a in self.alerts]}


class Monitor:
    """Quality and drift over an event log, per model version and window of `window_s` seconds.

    Drift compares each window's query vectors with a reference: by default the version's first `reference_s`
    seconds of traffic in the run, counted from the window holding its first request (so a version deployed
    mid-span is judged against its own start, not against a span in which it served nothing), or vectors/a time span
    given to `run`. Windows with fewer than `min_vectors` query vectors get quality signals but no drift check.
    """

    def __init__(self, log: EventLog, *, window_s: float = 3600.0, reference_s: float | None = None,
                 min_vectors: int = 50, detector: dict[str, Any] | None = None):
        self.log = log
        self.window_s = window_s
        self.reference_s = reference_s if reference_s is not None else window_s
        self.min_vectors = max(min_vectors, MIN_WINDOW)
        self.detector_options = detector or {}

    def run(self, start: float | None = None, end: float | None = None, *, model_version: str | None = None,
            reference: np.ndarray | tuple[float, float] | None = None, alert: bool = True) -> MonitorReport:
        """Compute every window in [start, end) (default: the whole log); log an alert per newly drifted window."""
        span = self.log.time_range()
        if span is None:
            now = time.time()
            return MonitorReport(start=start or now, end=end or now, window_s=self.window_s)
        start = span[0] if start is None else float(start)
        end = span[1] + 1e-6 if end is None else float(end)
        if end <= start:
            raise InputError(f"the monitoring span is empty (start {start} >= end {end})", where="monitor")
        report = MonitorReport(start=start, end=end, window_s=self.window_s)
        requests = self.log.requests(start, end, model_version=model_version)
        feedback: dict[str, list[FeedbackEvent]] = {}
        for req, fb in self.log.searches_with_feedback(start, end, model_version=model_version):
            if fb:
                feedback[req.request_id] = fb
        windows = quality_windows(requests, feedback, start=start, end=end, window_s=self.window_s)
        first_seen: dict[str, float] = {}  # each version's first request in the span: where its own reference starts
        for r in requests:
            if r.time < first_seen.get(r.model_version, float("inf")):
                first_seen[r.model_version] = r.time
        detectors: dict[str, DriftDetector | None] = {}
        for q in windows:
            version = q.model_version
            if version not in detectors:
                begins = start + (first_seen.get(version, start) - start) // self.window_s * self.window_s
                detectors[version] = self._detector(version, begins, end, reference, report)
            vectors = self.log.query_vectors(q.start, q.end, model_version=version)
            window = WindowReport(quality=q, n_vectors=len(vectors))
            det, ref_span = detectors[version], report.references.get(version, {})
            in_reference = ref_span.get("end") is not None and q.end <= ref_span["end"]
            if det is not None and not in_reference and len(vectors) >= self.min_vectors:
                window.drift = det.check(vectors)
                if window.drift.drifted and alert:
                    self._alert(window, report)
            report.windows.append(window)
        if report.alerts:
            self.log.flush()  # so the alerts are readable (and deduplicated) as soon as run() returns
        return report

    def _detector(self, version: str, start: float, end: float, reference: np.ndarray | tuple[float, float] | None,
                  report: MonitorReport) -> DriftDetector | None:
        """The version's drift detector, fitted on `reference` or on its first `reference_s` seconds from `start`
        (the start of the window holding its first request, so a version deployed mid-span has its own)."""
        if isinstance(reference, np.ndarray):
            vectors, span = reference, {"start": None, "end": None}
        else:
            a, b = reference if reference is not None else (start, start + self.reference_s)
            vectors, span = self.log.query_vectors(a, b, model_version=version), {"start": a, "end": b}
        report.references[version] = {**span, "n": int(len(vectors))}
        if len(vectors) < max(2 * MIN_WINDOW, self.min_vectors):
            logger.info("monitor: model version %r has %d reference query vectors; drift is not checked",
                        version, len(vectors))
            return None
        return DriftDetector(**self.detector_options).fit(vectors)

    def _alert(self, window: WindowReport, report: MonitorReport) -> None:
        q, d = window.quality, window.drift
        assert d is not None
        # A rerun over the same span must not raise the same alert twice.
        for old in self.log.alerts(kind="drift"):
            if (old.model_version, old.window_start, old.window_end) == (q.model_version, q.start, q.end):
                return
        message = (f"query drift for model version {q.model_version!r} in window "
                   f"{time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime(q.start))}Z: {d.votes}/3 tests reject "
                   f"(MMD p={d.mmd_p_value:.3g}; AUC {d.auc:.3f}, limit {d.auc_threshold:.3f}; "
                   f"centroid shift {d.centroid_shift:.4f}, limit {d.centroid_threshold:.4f}) on {d.n_window} queries")
        event = AlertEvent(kind="drift", message=message, model_version=q.model_version, window_start=q.start,
                           window_end=q.end, details=d.to_dict())
        logger.warning("%s", message)
        self.log.log(event)
        report.alerts.append(event)
