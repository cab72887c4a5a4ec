"""Monitoring of served traffic: quality signals per model version and window, embedding drift, alerts, reports.

Entry points: `Monitor(log).run(...)` -> `MonitorReport`; `DriftDetector().fit(reference).check(window)`;
`set_monitor_gauges(registry, report)`; `write_html_report(path, report)`.
"""

from embedops.monitor.drift import DriftDetector, DriftResult
from embedops.monitor.metrics import MonitorGauges, set_monitor_gauges
from embedops.monitor.quality import QualityWindow, quality_signals, quality_windows
from embedops.monitor.report import render_html, write_html_report
from embedops.monitor.runner import Monitor, MonitorReport, WindowReport

__all__ = [
    "DriftDetector",
    "DriftResult",
    "Monitor",
    "MonitorGauges",
    "MonitorReport",
    "QualityWindow",
    "WindowReport",
    "quality_signals",
    "quality_windows",
    "render_html",
    "set_monitor_gauges",
    "write_html_report",
]
