"""Measure a project's success criteria against the current model: quality, latency, throughput, memory."""

from __future__ import annotations

import re
import resource
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from embedops.config.criteria import Criterion
from embedops.config.schema import ProjectConfig
from embedops.models.loading import WEIGHT_SUFFIXES

_RETRIEVAL = re.compile(r"^(ndcg|recall|mrr|map|precision)@\d+$")
LATENCY_METRICS = {"p50_latency_ms", "p95_latency_ms", "p99_latency_ms", "throughput_per_s"}
MEASURABLE = "ndcg@k, recall@k, mrr@k, map@k, sts_spearman, sts_pearson, p50/p95/p99_latency_ms, " \
             "throughput_per_s, memory_mb, model_size_mb, dimension"


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


def measure_criteria(config: ProjectConfig, encoder, *, show_progress: bool = False) -> list[CriterionResult]:
    """Measure every criterion that can be measured with the project's evaluation data and model."""
    from embedops.data import load_beir, load_sts, sample_beir
    from embedops.eval.runner import evaluate_retrieval, evaluate_sts

    criteria = config.criteria.parsed()
    values: dict[str, float] = {}
    missing: dict[str, str] = {}
    ev = config.evaluation
    wanted = {c.metric for c in criteria}
    retrieval_metrics = sorted(m for m in wanted if _RETRIEVAL.match(m))
    if retrieval_metrics:
        if ev.retrieval:
            ds = load_beir(config.resolve(ev.retrieval), ev.split)
            if ev.sample_queries or ev.sample_documents:
                ds = sample_beir(ds, queries=ev.sample_queries, documents=ev.sample_documents)
            res = evaluate_retrieval(encoder, ds, metrics=retrieval_metrics, batch_size=config.model.batch_size,
                                     show_progress=show_progress)
            values.update(res.metrics)
            queries = list(ds.queries.values())
        else:
            for m in retrieval_metrics:
                missing[m] = "set evaluation.retrieval to a BEIR folder"
    else:
        queries = []
    if wanted & {"sts_spearman", "sts_pearson"}:
        if ev.sts:
            sts = evaluate_sts(encoder, load_sts(config.resolve(ev.sts), ev.split), show_progress=show_progress)
            values["sts_spearman"], values["sts_pearson"] = sts["spearman"], sts["pearson"]
        else:
            missing["sts_spearman"] = missing["sts_pearson"] = "set evaluation.sts to an STS file"
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
        if c.metric in values:
            v = values[c.metric]
            results.append(CriterionResult(c, v, "pass" if c.passes(v) else "fail"))
        else:
            note = missing.get(c.metric, f"not measurable by check yet (measurable: {MEASURABLE})")
            results.append(CriterionResult(c, None, "not measured", note))
    return results
