"""A self-contained HTML monitoring report: quality over time and drift per window with its alert threshold."""

from __future__ import annotations

import base64
import html
import io
import time
from pathlib import Path
from typing import Any

from embedops._io import atomic_write_text
from embedops.monitor.runner import MonitorReport, WindowReport


def _png(fig: Any) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _t(ts: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.gmtime(ts))


def _series(windows: list[WindowReport], get: Any) -> tuple[list[Any], list[float]]:
    import datetime as dt

    xs, ys = [], []
    for w in windows:
        value = get(w)
        if value is not None:
            xs.append(dt.datetime.fromtimestamp(w.quality.start, dt.UTC))
            ys.append(float(value))
    return xs, ys


def _quality_figure(report: MonitorReport) -> str:
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(12, 7), sharex=True)
    for version in report.versions():
        ws = [w for w in report.windows if w.model_version == version]
        label = version or "(no version)"
        x, p50 = _series(ws, lambda w: w.quality.top1.get("p50"))
        _, p05 = _series(ws, lambda w: w.quality.top1.get("p05") if w.quality.top1.get("p50") is not None else None)
        _, p95 = _series(ws, lambda w: w.quality.top1.get("p95") if w.quality.top1.get("p50") is not None else None)
        line = axes[0, 0].plot(x, p50, marker="o", label=f"{label} median")[0]
        if x:
            axes[0, 0].fill_between(x, p05, p95, alpha=0.2, color=line.get_color(), label=f"{label} p05-p95")
        axes[0, 1].plot(*_series(ws, lambda w: w.quality.gap_median), marker="o", label=label)
        for q, style in (("p50", "-"), ("p95", "--"), ("p99", ":")):
            axes[1, 0].plot(*_series(ws, lambda w, q=q: w.quality.latency_ms.get(q)), style, label=f"{label} {q}")
        for name, style in (("error_rate", "-"), ("empty_rate", "--"), ("truncation_rate", ":"), ("ctr", "-.")):
            axes[1, 1].plot(*_series(ws, lambda w, n=name: getattr(w.quality, n)), style, label=f"{label} {name}")
    titles = ("Top-1 cosine score", "Score gap rank 1 - rank 2 (median)", "Latency (ms)", "Rates")
    for ax, title in zip(axes.flat, titles, strict=True):
        ax.set_title(title)
        ax.grid(alpha=0.3)
        if ax.has_data():
            ax.legend(fontsize=7)
    fig.autofmt_xdate()
    out = _png(fig)
    plt.close(fig)
    return out


def _drift_figure(report: MonitorReport) -> str | None:
    import matplotlib.pyplot as plt

    checked = [w for w in report.windows if w.drift is not None]
    if not checked:
        return None
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    panels = (("mmd_p_value", None, "MMD permutation p-value (alert below alpha)"),
              ("auc", "auc_threshold", "Domain-classifier AUC (alert above threshold)"),
              ("centroid_shift", "centroid_threshold", "Centroid cosine shift (alert above threshold)"))
    for version in report.versions():
        ws = [w for w in checked if w.model_version == version]
        for ax, (stat, limit, _title) in zip(axes, panels, strict=True):
            x, y = _series(ws, lambda w, s=stat: getattr(w.drift, s))
            line = ax.plot(x, y, marker="o", label=version or "(no version)")[0]
            limits = _series(ws, lambda w, s=stat, li=limit: w.drift.alpha if li is None else getattr(w.drift, li))
            ax.step(*limits, where="mid", color=line.get_color(), linestyle="--", label="alert threshold")
            flagged = _series(ws, lambda w, s=stat: getattr(w.drift, s) if w.drift.drifted else None)
            ax.scatter(*flagged, color="red", zorder=5, s=60, label="drifted window" if flagged[0] else None)
    for ax, (stat, _limit, title) in zip(axes, panels, strict=True):
        ax.set_title(title, fontsize=10)
        if stat == "mmd_p_value":
            ax.set_yscale("log")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.autofmt_xdate()
    out = _png(fig)
    plt.close(fig)
    return out


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    return html.escape(str(value))


def _table(report: MonitorReport) -> str:
    head = ("version", "window start (UTC)", "requests", "top-1 p50", "latency p95 ms", "error rate", "CTR",
            "queries", "MMD p", "AUC / limit", "centroid / limit", "drifted")
    rows = []
    for w in report.windows:
        q, d = w.quality, w.drift
        cells = [_fmt(q.model_version or "(none)"), _t(q.start), _fmt(q.requests), _fmt(q.top1.get("p50")),
                 _fmt(q.latency_ms.get("p95")), _fmt(q.error_rate), _fmt(q.ctr), _fmt(w.n_vectors)]
        if d is None:
            cells += ["-", "-", "-", "not checked"]
        else:
            cells += [_fmt(d.mmd_p_value), f"{d.auc:.3f} / {d.auc_threshold:.3f}",
                      f"{d.centroid_shift:.4f} / {d.centroid_threshold:.4f}", f"{_fmt(d.drifted)} ({d.votes}/3)"]
        style = ' class="drift"' if d is not None and d.drifted else ""
        rows.append(f"<tr{style}>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    return ("<table><tr>" + "".join(f"<th>{h}</th>" for h in head) + "</tr>" + "".join(rows) + "</table>")


def render_html(report: MonitorReport, *, title: str = "embedops monitoring report") -> str:
    """The report as one HTML string with its plots embedded as PNG."""
    import matplotlib

    matplotlib.use("Agg")  # no display on servers; must precede pyplot's first import
    quality = _quality_figure(report)
    drift = _drift_figure(report)
    refs = "; ".join(f"{html.escape(v or '(none)')}: {r['n']} query vectors" + (
        f" from {_t(r['start'])} to {_t(r['end'])}" if r.get("start") is not None else " (given)")
        for v, r in report.references.items()) or "none"
    alerts = "".join(f"<li>{html.escape(a.message)}</li>" for a in report.alerts) or "<li>none</li>"
    drift_html = (f'<img alt="drift per window" src="data:image/png;base64,{drift}">' if drift
                  else "<p>No window had enough query vectors for a drift check.</p>")
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font-family:sans-serif;margin:2em}} table{{border-collapse:collapse;font-size:13px}}
td,th{{border:1px solid #ccc;padding:3px 6px;text-align:right}} tr.drift td{{background:#fdd}}
img{{max-width:100%}}</style></head><body>
<h1>{html.escape(title)}</h1>
<p>Span {_t(report.start)} to {_t(report.end)} UTC, windows of {report.window_s:g} s, generated {_t(report.created)}
UTC. Reference: {refs}.</p>
<h2>Alerts raised by this run</h2><ul>{alerts}</ul>
<h2>Quality over time</h2><img alt="quality over time" src="data:image/png;base64,{quality}">
<h2>Query drift per window</h2>{drift_html}
<h2>Windows</h2>{_table(report)}
</body></html>
"""


def write_html_report(path: str | Path, report: MonitorReport, *, title: str = "embedops monitoring report") -> Path:
    """Write the report to `path` atomically (temp file + rename); returns the path."""
    path = Path(path)
    atomic_write_text(path, render_html(report, title=title))
    return path
