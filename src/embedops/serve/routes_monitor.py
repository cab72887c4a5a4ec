"""GET /v1/monitor (quality and drift over time, by `Project.monitor`) and GET /v1/experiments (every experiment
with its current decision): what the console's monitoring and experiments pages draw."""

from __future__ import annotations

import math
import time
from typing import Any

from fastapi import APIRouter, Depends, Query, Request

from embedops.errors import EmbedopsError, InputError
from embedops.serve.app import ServingState, run_blocking, serving
from embedops.serve.errors import APIError
from embedops.serve.routes_embeddings import ERRORS, bearer
from embedops.serve.schemas_console import ExperimentList, ExperimentOut, MonitorResponse

router = APIRouter(prefix="/v1", tags=["monitoring and experiments"], dependencies=[Depends(bearer)],
                   responses=ERRORS)
_LATENCY_CRITERIA = {"p50_latency_ms": "p50_latency_ms", "p95_latency_ms": "p95_latency_ms",
                     "p99_latency_ms": "p99_latency_ms"}
MAX_WINDOWS = 5000  # per report: a tiny window over a long span would otherwise make millions of empty windows
_EPOCH_MAX = 1e11  # year 5138: bounds every time parameter (and refuses inf and nan)


def finite(value: Any) -> Any:
    """`value` with every NaN or infinity replaced by None (strict JSON has no NaN)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite(v) for v in value]
    return value


def _thresholds(project: Any) -> dict[str, float]:
    """Upper limits on latency that the project's success criteria state (drawn on the latency chart)."""
    out: dict[str, float] = {}
    for c in project.config.criteria.parsed():
        if c.metric in _LATENCY_CRITERIA and c.op in ("<=", "<"):
            out[c.metric] = c.threshold
    return out


def _alert_dict(a: Any) -> dict[str, Any]:
    return {"kind": a.kind, "message": a.message, "model_version": a.model_version, "window_start": a.window_start,
            "window_end": a.window_end, "time": a.time}


def _events_or_503(state: ServingState) -> Any:
    if getattr(state, "events", None) is None:
        raise APIError(503, "the event log is off or unavailable (serving.events)", code="events_unavailable")
    return state.events


@router.get("/monitor", response_model=MonitorResponse, summary="Monitoring report")
async def monitor(request: Request, state: ServingState = Depends(serving),
                  window_s: float = Query(3600.0, gt=0, le=366 * 86400, description="Window length in seconds."),
                  since: float | None = Query(None, ge=0, le=_EPOCH_MAX,
                                              description="Only events at or after this epoch time."),
                  until: float | None = Query(None, ge=0, le=_EPOCH_MAX,
                                              description="Only events before this epoch time."),
                  last_s: float | None = Query(None, gt=0, le=_EPOCH_MAX,
                                               description="Only the last N seconds (instead of since)."),
                  reference_s: float | None = Query(None, gt=0, le=_EPOCH_MAX,
                                                    description="Reference span from the start of the span "
                                                                "(default: one window)."),
                  model_version: str | None = Query(None, max_length=200),
                  min_vectors: int = Query(50, ge=10, le=100_000, description="Query vectors a window needs for a "
                                                                              "drift check."),
                  alert: bool = Query(False, description="Record drifted windows as alert events (as the CLI "
                                                         "does); off by default, so reading is free of effects.")
                  ) -> MonitorResponse:
    """Quality (score distributions, latency, error, truncation and click rates) and query drift per model version
    and window, computed by `Project.monitor` from the event log: the same report as `embedops monitor --json`."""
    log = _events_or_503(state)
    if last_s is not None:
        if since is not None:
            raise APIError(422, "give since or last_s, not both", code="invalid_request", param="last_s")
        since = time.time() - last_s
    if since is not None and until is not None and until <= since:
        raise APIError(422, f"until ({until:g}) must be after since ({since:g})", code="invalid_request",
                       param="until")
    project = state.project

    def run() -> dict[str, Any]:
        start, end = since, until
        span = log.time_range()
        if span is not None:
            if start is not None:
                # A span reaching back before the first event starts at that event: windows then begin with
                # traffic, and the drift reference (the span's first reference_s seconds) holds queries, not nothing.
                first = log.requests(start, end, model_version=model_version, limit=1)
                start = max(start, first[0].time) if first else start
            if end is not None and end > span[1] + 1e-6:
                # A far-off end only adds empty windows: stop at the end of the window holding the last event, on
                # Project.monitor's own grid (from the span's start), so the windows that hold data are the library's.
                origin = span[0] if start is None else start
                end = min(end, origin + math.ceil((span[1] + 1e-6 - origin) / window_s) * window_s)
            a, b = (span[0] if start is None else start), (span[1] + 1e-6 if end is None else end)
            if b <= a:  # nothing logged in the span: an empty report, not an error
                lo = since if since is not None else b
                return {"start": lo, "end": max(until if until is not None else a, lo), "window_s": window_s,
                        "created": time.time(), "versions": [], "windows": [], "references": {}, "alerts": [],
                        "logged_alerts": [], "thresholds": _thresholds(project)}
            if (b - a) / window_s > MAX_WINDOWS:
                raise APIError(422, f"the span holds {math.ceil((b - a) / window_s)} windows of {window_s:g} s; the "
                                    f"bound is {MAX_WINDOWS}: give a longer window_s or a shorter span",
                               code="too_many_windows", param="window_s")
        report = project.monitor(start=start, end=end, window_s=window_s, reference_s=reference_s,
                                 model_version=model_version, alert=alert, min_vectors=min_vectors)
        # Alerts about the span's windows: raised at or after its start (a later run may flag an old window).
        logged = [a for a in log.alerts(report.start) if a.window_start is None
                  or report.start <= a.window_start < report.end]
        out = report.to_dict()
        out.update(versions=report.versions(), thresholds=_thresholds(project),
                   logged_alerts=[_alert_dict(a) for a in reversed(logged[-100:])])
        return finite(out)

    try:
        body = await run_blocking(request, run)
    except InputError as exc:
        raise APIError(422, exc.message, code="invalid_request", param=exc.where) from None
    except EmbedopsError as exc:  # the database failed while reading
        raise APIError(503, f"the event log cannot be read: {exc.message}", code="events_unavailable") from None
    return MonitorResponse(**body)


@router.get("/experiments", response_model=ExperimentList, summary="List experiments")
async def list_experiments(request: Request, state: ServingState = Depends(serving)) -> ExperimentList:
    """Every experiment with its definition and current report (winner, effect, CI, p-value); running ones first."""
    project = state.project

    def collect() -> list[ExperimentOut]:
        out = []
        for e in project.experiments.list():
            d = e.to_dict()
            item = ExperimentOut(**{k: d[k] for k in ExperimentOut.model_fields if k in d})
            if state.events is None:
                item.error = "the event log is off or unavailable (serving.events)"
            else:
                try:
                    item.report = finite(project.experiment_report(e.name).as_dict())
                except EmbedopsError as exc:
                    item.error = exc.message
            out.append(item)
        out.sort(key=lambda x: x.status != "running")  # stable: the store's order within each group
        return out

    try:
        data = await run_blocking(request, collect)
    except EmbedopsError as exc:  # an unreadable experiment file
        raise APIError(503, f"the experiments cannot be read: {exc.message}", code="experiments_unavailable") \
            from None
    return ExperimentList(data=data)
