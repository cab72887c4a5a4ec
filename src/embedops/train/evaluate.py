"""Before/after evaluation of a tuned model on held-out data, with the foundation's paired significance test."""

from __future__ import annotations

from typing import Any

import numpy as np

from embedops.data.beir import BeirDataset
from embedops.data.records import Document
from embedops.errors import InputError
from embedops.eval import DEFAULT_METRICS, evaluate_retrieval, evaluate_sts, paired_test
from embedops.train.pairs import TrainingSet


def heldout_split(train: TrainingSet, fraction: float = 0.1, *, seed: int = 0,
                  min_queries: int = 2) -> tuple[TrainingSet, BeirDataset | None]:
    """Hold out a fraction of distinct anchors as a retrieval test (corpus = every positive and negative).

    All rows of a held-out anchor leave training, so the test never scores a query the model saw.
    Returns (train part, None) when the data is too small to hold anything out.
    """
    anchors = list(dict.fromkeys(train.anchors))
    n_out = int(round(len(anchors) * fraction))
    if fraction <= 0 or n_out < min_queries or len(anchors) - n_out < 1:
        return train, None
    rng = np.random.default_rng(seed)
    held = {anchors[i] for i in rng.choice(len(anchors), size=n_out, replace=False)}
    keep = [i for i, a in enumerate(train.anchors) if a not in held]
    texts = list(dict.fromkeys(list(train.positives) + [n for ns in train.negatives for n in ns]))
    doc_id = {t: f"d{i}" for i, t in enumerate(texts)}
    corpus = {doc_id[t]: Document(id=doc_id[t], text=t) for t in texts}
    queries: dict[str, str] = {}
    qrels: dict[str, dict[str, int]] = {}
    q_id = {a: f"q{i}" for i, a in enumerate(sorted(held))}
    for a, p in zip(train.anchors, train.positives, strict=True):
        if a in held:
            queries[q_id[a]] = a
            qrels.setdefault(q_id[a], {})[doc_id[p]] = 1
    dataset = BeirDataset(corpus=corpus, queries=queries, qrels=qrels, name="held-out", split="held-out")
    return train.subset(keep), dataset


def compare_retrieval(before_encoder, after_encoder, dataset: BeirDataset, *,
                      metrics: tuple[str, ...] | list[str] = DEFAULT_METRICS, key_metric: str = "ndcg@10",
                      use_cache_after: bool = False, show_progress: bool = False) -> dict[str, Any]:
    """Score both encoders on `dataset` and test every metric's per-query difference (after minus before)."""
    if len(dataset.qrels) < 2:
        raise InputError("before/after evaluation needs at least 2 judged queries")
    before = evaluate_retrieval(before_encoder, dataset, metrics=metrics, show_progress=show_progress)
    after = evaluate_retrieval(after_encoder, dataset, metrics=metrics, use_cache=use_cache_after,
                               show_progress=show_progress)
    qids = sorted(dataset.qrels)
    comparison = {
        m: paired_test([before.per_query[q][m] for q in qids], [after.per_query[q][m] for q in qids],
                       metric=m).as_dict()
        for m in metrics
    }
    return {
        "dataset": dataset.name,
        "split": dataset.split,
        "queries": len(qids),
        "documents": len(dataset.corpus),
        "key_metric": key_metric,
        "before": before.metrics,
        "after": after.metrics,
        "comparison": comparison,
        "seconds": {"before": before.info.get("wall_seconds"), "after": after.info.get("wall_seconds")},
    }


def compare_sts(before_encoder, after_encoder, pairs) -> dict[str, Any]:
    """STS Spearman before and after, and the drop in points (x100), to check the model did not collapse."""
    b = evaluate_sts(before_encoder, pairs)
    a = evaluate_sts(after_encoder, pairs, use_cache=False)
    return {"before": b["spearman"], "after": a["spearman"], "drop_points": round(100 * (b["spearman"]
                                                                                        - a["spearman"]), 3),
            "pairs": b["pairs"]}
