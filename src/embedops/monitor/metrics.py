"""Prometheus gauges of the latest monitoring results, on the registry the server passes in."""

from __future__ import annotations

import threading
import weakref
from typing import TYPE_CHECKING, Any

from embedops._optional import require

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

    from embedops.monitor.runner import MonitorReport

_V = ["model_version"]
_VQ = ["model_version", "quantile"]
# name -> (help, labels)
GAUGES: dict[str, tuple[str, list[str]]] = {
    "embedops_drift_detected": ("1 if the latest checked window drifted from the reference", _V),
    "embedops_drift_votes": ("Drift tests (of 3) rejecting in the latest checked window", _V),
    "embedops_drift_mmd2": ("MMD^2 of the latest window's queries vs the reference", _V),
    "embedops_drift_mmd_p_value": ("Permutation p-value of the MMD test", _V),
    "embedops_drift_auc": ("Cross-validated AUC of a reference-vs-window classifier", _V),
    "embedops_drift_auc_threshold": ("AUC above which the window rejects (calibrated on reference splits)", _V),
    "embedops_drift_centroid_shift": ("1 - cosine between the reference and window query centroids", _V),
    "embedops_drift_centroid_threshold": ("Centroid shift above which the window rejects", _V),
    "embedops_drift_window_vectors": ("Query vectors in the latest checked window", _V),
    "embedops_quality_top1_score": ("Quantiles of the rank-1 score in the latest window", _VQ),
    "embedops_quality_topk_score": ("Quantiles of all returned scores in the latest window", _VQ),
    "embedops_quality_score_gap": ("Median score gap between rank 1 and rank 2 in the latest window", _V),
    "embedops_quality_latency_ms": ("Latency quantiles (ms) in the latest window", _VQ),
    "embedops_quality_empty_rate": ("Share of searches that returned nothing in the latest window", _V),
    "embedops_quality_error_rate": ("Share of requests that failed in the latest window", _V),
    "embedops_quality_truncation_rate": ("Share of inputs cut at the model's max tokens in the latest window", _V),
    "embedops_quality_ctr": ("Share of answered searches with a click in the latest window", _V),
    "embedops_quality_requests": ("Requests in the latest window", _V),
    "embedops_monitor_last_run_timestamp_seconds": ("When the monitor last ran (epoch seconds)", []),
}


class MonitorGauges:
    """The monitor's gauges on one registry; `update(report)` sets them from a run's latest windows."""

    def __init__(self, registry: CollectorRegistry):
        prometheus = require("prometheus_client", "serve")
        self._lock = threading.Lock()
        self.gauges: dict[str, Any] = {name: prometheus.Gauge(name, help_, labels, registry=registry)
                                       for name, (help_, labels) in GAUGES.items()}

    def _set(self, name: str, value: float | None, *labels: str) -> None:
        gauge = self.gauges[name].labels(*labels) if labels else self.gauges[name]
        gauge.set(float("nan") if value is None else float(value))

    def update(self, report: MonitorReport) -> None:
        """Set every gauge from the newest window (and newest drift check) of each model version in `report`."""
        with self._lock:  # two monitor runs must not interleave their label sets
            self._set("embedops_monitor_last_run_timestamp_seconds", report.created)
            for version in report.versions():
                latest = report.latest(version)
                assert latest is not None
                q = latest.quality
                for name, quantiles in (("embedops_quality_top1_score", q.top1),
                                        ("embedops_quality_topk_score", q.topk),
                                        ("embedops_quality_latency_ms", q.latency_ms)):
                    for key, value in quantiles.items():
                        self._set(name, value, version, f"{int(key[1:]) / 100:g}")
                for name, value in (("embedops_quality_score_gap", q.gap_median),
                                    ("embedops_quality_empty_rate", q.empty_rate),
                                    ("embedops_quality_error_rate", q.error_rate),
                                    ("embedops_quality_truncation_rate", q.truncation_rate),
                                    ("embedops_quality_ctr", q.ctr), ("embedops_quality_requests", q.requests)):
                    self._set(name, value, version)
                checked = report.latest_drift(version)
                if checked is None or checked.drift is None:
                    continue
                d = checked.drift
                for name, value in (("embedops_drift_detected", d.drifted), ("embedops_drift_votes", d.votes),
                                    ("embedops_drift_mmd2", d.mmd2), ("embedops_drift_mmd_p_value", d.mmd_p_value),
                                    ("embedops_drift_auc", d.auc), ("embedops_drift_auc_threshold", d.auc_threshold),
                                    ("embedops_drift_centroid_shift", d.centroid_shift),
                                    ("embedops_drift_centroid_threshold", d.centroid_threshold),
                                    ("embedops_drift_window_vectors", d.n_window)):
                    self._set(name, value, version)


_by_registry: weakref.WeakKeyDictionary[Any, MonitorGauges] = weakref.WeakKeyDictionary()
_by_registry_lock = threading.Lock()


def set_monitor_gauges(registry: CollectorRegistry, report: MonitorReport) -> MonitorGauges:
    """Set the monitor's gauges on `registry` from `report` (gauges are created on the first call per registry)."""
    with _by_registry_lock:
        gauges = _by_registry.get(registry)
        if gauges is None:
            gauges = _by_registry[registry] = MonitorGauges(registry)
    gauges.update(report)
    return gauges
