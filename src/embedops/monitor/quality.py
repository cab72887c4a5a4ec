"""Quality signals of served traffic per model version and time window, computed from logged events."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from embedops.events import FeedbackEvent, RequestEvent

SCORE_QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)
LATENCY_QUANTILES = (0.5, 0.95, 0.99)


def _quantiles(values: Sequence[float], qs: Iterable[float]) -> dict[str, float | None]:
    keys = [f"p{round(q * 100):02d}" for q in qs]
    if not len(values):
        return dict.fromkeys(keys)
    got = np.quantile(np.asarray(values, dtype=np.float64), list(qs))
    return {k: float(v) for k, v in zip(keys, got, strict=True)}


def _rate(num: int, den: int) -> float | None:
    return num / den if den else None


@dataclass
class QualityWindow:
    """Signals of one model version over [start, end): score distributions, latency, error and click rates.

    Rates and quantiles are None where the window has nothing to compute them from (no searches, no clicks ...).
    """

    model_version: str
    start: float
    end: float
    requests: int = 0
    searches: int = 0
    embeds: int = 0
    top1: dict[str, float | None] = field(default_factory=dict)  # quantiles of the rank-1 cosine score
    topk: dict[str, float | None] = field(default_factory=dict)  # quantiles of all returned scores
    gap_median: float | None = None  # median of score(rank 1) - score(rank 2)
    empty_rate: float | None = None  # successful searches that returned nothing
    latency_ms: dict[str, float | None] = field(default_factory=dict)
    error_rate: float | None = None
    truncation_rate: float | None = None  # inputs cut at max tokens / inputs
    ctr: float | None = None  # successful non-empty searches with at least one click
    clicks: int = 0
    judged_relevant: int = 0
    judged_irrelevant: int = 0

    def to_dict(self) -> dict[str, Any]:
        """Plain types, for JSON and reports."""
        return asdict(self)


def quality_signals(requests: Sequence[RequestEvent], feedback: dict[str, list[FeedbackEvent]] | None = None, *,
                    model_version: str = "", start: float = math.nan, end: float = math.nan) -> QualityWindow:
    """Quality signals of one group of request events (one version, one window) and the feedback on them."""
    feedback = feedback or {}
    ok_searches = [r for r in requests if r.kind == "search" and r.error is None]
    answered = [r for r in ok_searches if r.scores]
    top1 = [r.scores[0] for r in answered]
    topk = [s for r in answered for s in r.scores]
    gaps = [r.scores[0] - r.scores[1] for r in answered if len(r.scores) > 1]
    inputs = sum(max(r.n_inputs, 0) for r in requests)
    clicked = sum(1 for r in answered if any(f.kind == "click" for f in feedback.get(r.request_id, ())))
    all_feedback = [f for r in requests for f in feedback.get(r.request_id, ())]
    return QualityWindow(
        model_version=model_version, start=start, end=end, requests=len(requests),
        searches=sum(r.kind == "search" for r in requests), embeds=sum(r.kind == "embed" for r in requests),
        top1=_quantiles(top1, SCORE_QUANTILES), topk=_quantiles(topk, SCORE_QUANTILES),
        gap_median=float(np.median(gaps)) if gaps else None,
        empty_rate=_rate(len(ok_searches) - len(answered), len(ok_searches)),
        latency_ms=_quantiles([r.latency_ms for r in requests], LATENCY_QUANTILES),
        error_rate=_rate(sum(r.error is not None for r in requests), len(requests)),
        truncation_rate=_rate(sum(max(r.truncated, 0) for r in requests), inputs),
        ctr=_rate(clicked, len(answered)),
        clicks=sum(f.kind == "click" for f in all_feedback),
        judged_relevant=sum(f.kind == "relevant" for f in all_feedback),
        judged_irrelevant=sum(f.kind == "irrelevant" for f in all_feedback),
    )


def window_edges(start: float, end: float, window_s: float) -> list[tuple[float, float]]:
    """Consecutive [a, b) windows of `window_s` seconds covering [start, end); the last one may be shorter."""
    if window_s <= 0:
        from embedops.errors import InputError

        raise InputError(f"the window must be longer than 0 seconds (got {window_s})", where="window")
    edges, a = [], start
    while a < end:
        edges.append((a, min(a + window_s, end)))
        a += window_s
    return edges


def quality_windows(requests: Sequence[RequestEvent], feedback: dict[str, list[FeedbackEvent]], *, start: float,
                    end: float, window_s: float) -> list[QualityWindow]:
    """Signals per (model version, window) for events already read from the log; empty windows are left out."""
    edges = window_edges(start, end, window_s)
    groups: dict[tuple[str, int], list[RequestEvent]] = {}
    for r in requests:
        if start <= r.time < end:
            groups.setdefault((r.model_version, int((r.time - start) // window_s)), []).append(r)
    out = []
    for (version, i), group in sorted(groups.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        a, b = edges[min(i, len(edges) - 1)]
        out.append(quality_signals(group, feedback, model_version=version, start=a, end=b))
    return out
