"""Measure a project's success criteria against the current model: quality, latency, throughput, memory."""

from __future__ import annotations

import resource
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from embedops.config.checks import is_retrieval_metric
from embedops.config.criteria import VALID_METRICS, Criterion
from embedops.config.schema import ProjectConfig
from embedops.errors import InputError
from embedops.models.loading import WEIGHT_SUFFIXES

LATENCY_METRICS = {"p50_latency_ms", "p95_latency_ms", "p99_latency_ms", "throughput_per_s"}
MEASURABLE = VALID_METRICS
STATUSES = ("pass", "fail", "not measured")


@dataclass
class CriterionResult:
    """One criterion with its measured value; `status` is pass, fail or not measured (with the reason)."""

    criterion: Criterion
    value: float | None
    status: str
    note: str = ""

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly form."""
        return {"criterion": str(self.criterion), "value": self.value, "status": self.status, "note": self.note}


def _latency(encoder, texts: list[str], repeats: int = 50) -> dict[str, float]:
    # One query at a time, the way a search box calls the model; the first call warms up.
    encoder.encode(texts[:1], kind="query")
    samples = []
    for i in range(repeats):
        t = texts[i % len(texts)]
        t0 = time.perf_counter()
        encoder.encode([t], kind="query")
        samples.append((time.perf_counter() - t0) * 1000)
    batch = texts[: min(len(texts), 256)]
    t0 = time.perf_counter()
    encoder.encode(batch, batch_size=32)
    rate = len(batch) / (time.perf_counter() - t0)
    arr = np.array(samples)
    return {"p50_latency_ms": float(np.percentile(arr, 50)), "p95_latency_ms": float(np.percentile(arr, 95)),
            "p99_latency_ms": float(np.percentile(arr, 99)), "throughput_per_s": float(rate)}


def _model_size_mb(encoder) -> float | None:
    path = getattr(getattr(encoder, "source", None), "path", None)
    if not path:
        return None
    total = sum(f.stat().st_size for f in Path(path).rglob("*")
                if f.is_file() and f.suffix in WEIGHT_SUFFIXES)
    return total / 2**20


@dataclass
class CriteriaData:
    """The evaluation data the criteria need, read (and so checked) before any model loads."""

    retrieval: Any = None  # BeirDataset
    sts: Any = None  # StsPairs
    missing: dict[str, str] = field(default_factory=dict)


def load_criteria_data(config: ProjectConfig) -> CriteriaData:
    """Read the data the criteria are measured on; a path that is missing or empty is an InputError naming it."""
    from embedops.data import load_beir, load_sts, sample_beir

    data = CriteriaData()
    ev = config.evaluation
    wanted = {c.metric for c in config.criteria.parsed()}
    retrieval_metrics = sorted(m for m in wanted if is_retrieval_metric(m))
    if retrieval_metrics:
        if ev.retrieval:
            path = config.resolve(ev.retrieval)
            if not path.exists():
                raise InputError(f"BEIR folder not found: {path}", where="evaluation.retrieval")
            ds = load_beir(path, ev.split)
            if ev.sample_queries or ev.sample_documents:
                ds = sample_beir(ds, queries=ev.sample_queries, documents=ev.sample_documents)
            if not ds.queries or not ds.corpus:
                raise InputError(f"no judged queries for split {ev.split!r}: nothing to measure on",
                                 where="evaluation.retrieval")
            data.retrieval = ds
        else:
            for m in retrieval_metrics:
                data.missing[m] = "no data: set evaluation.retrieval to a BEIR folder"
    if wanted & {"sts_spearman", "sts_pearson"}:
        if ev.sts:
            path = config.resolve(ev.sts)
            if not path.exists():
                raise InputError(f"STS file not found: {path}", where="evaluation.sts")
            data.sts = load_sts(path, ev.split)
        else:
            data.missing["sts_spearman"] = data.missing["sts_pearson"] = "no data: set evaluation.sts to an STS file"
    return data


def measure_criteria(config: ProjectConfig, encoder, *, data: CriteriaData | None = None,
                     show_progress: bool = False) -> list[CriterionResult]:
    """Measure every criterion with the project's evaluation data and model; the others are "not measured"."""
    from embedops.eval.runner import evaluate_retrieval, evaluate_sts

    criteria = config.criteria.parsed()
    data = data if data is not None else load_criteria_data(config)
    values: dict[str, float] = {}
    missing = dict(data.missing)
    wanted = {c.metric for c in criteria}
    retrieval_metrics = sorted(m for m in wanted if is_retrieval_metric(m))
    queries: list[str] = []
    if retrieval_metrics and data.retrieval is not None:
        res = evaluate_retrieval(encoder, data.retrieval, metrics=retrieval_metrics,
                                 batch_size=config.model.batch_size, show_progress=show_progress)
        values.update(res.metrics)
        queries = list(data.retrieval.queries.values())
    if data.sts is not None:
        sts = evaluate_sts(encoder, data.sts, show_progress=show_progress)
        values["sts_spearman"], values["sts_pearson"] = sts["spearman"], sts["pearson"]
    if wanted & LATENCY_METRICS:
        texts = queries or ["how do I measure embedding quality in production?",
                            "semantic search over scientific abstracts", "a short query"]
        values.update(_latency(encoder, texts))
    if "memory_mb" in wanted:
        values["memory_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if "dimension" in wanted:
        values["dimension"] = float(encoder.output_dimension)
    if "model_size_mb" in wanted:
        size = _model_size_mb(encoder)
        if size is None:
            missing["model_size_mb"] = "the model is not a local folder"
        else:
            values["model_size_mb"] = size
    results = []
    for c in criteria:
        v = values.get(c.metric)
        if v is not None and v == v:  # NaN (a metric computed on nothing) is not a measurement
            results.append(CriterionResult(c, v, "pass" if c.passes(v) else "fail"))
        else:
            note = missing.get(c.metric, "the evaluation did not report this metric")
            results.append(CriterionResult(c, None, "not measured", note))
    return results
