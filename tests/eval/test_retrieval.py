"""Retrieval metrics against hand-computed values, and exact search against brute force."""

from __future__ import annotations

import math

import numpy as np
import pytest

from embedops.errors import InputError
from embedops.eval import evaluate_run, exact_search


def test_metrics_match_hand_computation():
    qrels = {"q1": {"a": 1, "c": 2}, "q2": {"x": 1}}
    run = {"q1": {"a": 0.9, "b": 0.8, "c": 0.7}, "q2": {"y": 0.5, "z": 0.4}}
    res = evaluate_run(qrels, run, ["ndcg@10", "mrr@10", "recall@2"])
    dcg = 1 / math.log2(2) + 2 / math.log2(4)  # trec_eval (and MTEB): gain = relevance grade
    idcg = 2 / math.log2(2) + 1 / math.log2(3)
    assert res.per_query["q1"]["ndcg@10"] == pytest.approx(dcg / idcg, abs=1e-4)
    assert res.per_query["q1"]["mrr@10"] == 1.0
    assert res.per_query["q1"]["recall@2"] == 0.5
    assert res.per_query["q2"]["ndcg@10"] == 0.0
    assert res.metrics["mrr@10"] == pytest.approx(0.5)


def test_queries_missing_from_the_run_count_as_zero():
    res = evaluate_run({"q1": {"a": 1}, "q2": {"b": 1}}, {"q1": {"a": 1.0}}, ["ndcg@10"])
    assert res.metrics["ndcg@10"] == pytest.approx(0.5)


def test_mrr_at_k_cuts_the_ranking():
    run = {"q": {f"d{i}": 1.0 - i / 100 for i in range(20)}}
    res = evaluate_run({"q": {"d12": 1}}, run, ["mrr@10", "mrr@20"])
    assert res.per_query["q"]["mrr@10"] == 0.0
    assert res.per_query["q"]["mrr@20"] == pytest.approx(1 / 13)


def test_unknown_metric_is_named():
    with pytest.raises(InputError, match="unknown metric 'bleu@4'"):
        evaluate_run({"q": {"a": 1}}, {"q": {"a": 1.0}}, ["bleu@4"])


def test_exact_search_equals_brute_force():
    rng = np.random.default_rng(0)
    docs = rng.normal(size=(1000, 16)).astype(np.float32)
    queries = rng.normal(size=(37, 16)).astype(np.float32)
    scores, idx = exact_search(queries, docs, k=10, chunk=8)
    brute = np.argsort(-(queries @ docs.T), axis=1)[:, :10]
    assert np.array_equal(idx, brute)
    assert np.all(np.diff(scores, axis=1) <= 0)
