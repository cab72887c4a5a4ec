"""Retrieval evaluation: exact search and trec_eval metrics (nDCG@k graded, Recall@k, MRR@k, MAP)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from embedops.data.records import Qrels
from embedops.errors import InputError

Run = dict[str, dict[str, float]]
"""query id -> document id -> score."""

DEFAULT_METRICS = ("ndcg@10", "recall@100", "mrr@10", "map@100")
_METRIC = re.compile(r"^(ndcg|recall|mrr|map|precision|p)@(\d+)$")


def exact_search(queries: np.ndarray, docs: np.ndarray, k: int, chunk: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """Top-k by inner product (cosine for normalised vectors); returns (scores, indices), best first."""
    k = min(k, docs.shape[0])
    all_scores = np.empty((queries.shape[0], k), dtype=np.float32)
    all_idx = np.empty((queries.shape[0], k), dtype=np.int64)
    for start in range(0, queries.shape[0], chunk):
        sims = queries[start : start + chunk] @ docs.T
        part = np.argpartition(-sims, k - 1, axis=1)[:, :k]
        part_scores = np.take_along_axis(sims, part, axis=1)
        order = np.argsort(-part_scores, axis=1, kind="stable")
        all_idx[start : start + chunk] = np.take_along_axis(part, order, axis=1)
        all_scores[start : start + chunk] = np.take_along_axis(part_scores, order, axis=1)
    return all_scores, all_idx


def build_run(query_ids: list[str], doc_ids: list[str], scores: np.ndarray, indices: np.ndarray) -> Run:
    """Turn search output into a run dict."""
    return {
        qid: {doc_ids[j]: float(s) for j, s in zip(indices[i], scores[i], strict=True)}
        for i, qid in enumerate(query_ids)
    }


def _parse_metric(name: str) -> tuple[str, int]:
    m = _METRIC.match(name.lower().strip())
    if not m:
        raise InputError(f"unknown metric {name!r}; use ndcg@k, recall@k, mrr@k, map@k or precision@k")
    kind = "precision" if m.group(1) == "p" else m.group(1)
    return kind, int(m.group(2))


def _truncate(run: Run, k: int) -> Run:
    out: Run = {}
    for qid, docs in run.items():
        top = sorted(docs.items(), key=lambda kv: (-kv[1], kv[0]))[:k]
        out[qid] = dict(top)
    return out


@dataclass
class RetrievalResult:
    """Mean metrics, per-query metrics (for significance tests) and run facts."""

    metrics: dict[str, float]
    per_query: dict[str, dict[str, float]]
    info: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly summary."""
        return {"metrics": self.metrics, "info": self.info, "per_query": self.per_query}


def evaluate_run(qrels: Qrels, run: Run, metrics: tuple[str, ...] | list[str] = DEFAULT_METRICS) -> RetrievalResult:
    """Score a run against qrels with pytrec_eval (trec_eval's own code); queries with no results score 0."""
    import pytrec_eval

    parsed = [(m, *_parse_metric(m)) for m in metrics]
    per_query: dict[str, dict[str, float]] = {q: {} for q in qrels}
    # trec_eval ignores queries missing from the run; give them an empty ranking so they count as 0.
    full_run = {q: run.get(q, {}) or {"__none__": 0.0} for q in qrels}
    for name, kind, k in parsed:
        if kind == "mrr":
            measure, key, r = "recip_rank", "recip_rank", _truncate(full_run, k)
        elif kind == "ndcg":
            measure, key, r = f"ndcg_cut.{k}", f"ndcg_cut_{k}", full_run
        elif kind == "map":
            measure, key, r = f"map_cut.{k}", f"map_cut_{k}", full_run
        elif kind == "recall":
            measure, key, r = f"recall.{k}", f"recall_{k}", full_run
        else:
            measure, key, r = f"P.{k}", f"P_{k}", full_run
        evaluator = pytrec_eval.RelevanceEvaluator(qrels, {measure})
        scores = evaluator.evaluate(r)
        for q in qrels:
            per_query[q][name] = float(scores.get(q, {}).get(key, 0.0))
    means = {name: float(np.mean([per_query[q][name] for q in qrels])) if qrels else 0.0 for name, _, _ in parsed}
    return RetrievalResult(metrics=means, per_query=per_query)
