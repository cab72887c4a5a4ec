"""Semantic textual similarity: Spearman and Pearson correlation of cosine similarity with gold scores."""

from __future__ import annotations

import numpy as np


def sts_scores(emb1: np.ndarray, emb2: np.ndarray, gold: list[float]) -> dict[str, float]:
    """Correlations (x100 as MTEB reports them is left to the caller; these are in [-1, 1])."""
    from scipy.stats import pearsonr, spearmanr

    a = emb1 / np.maximum(np.linalg.norm(emb1, axis=1, keepdims=True), 1e-12)
    b = emb2 / np.maximum(np.linalg.norm(emb2, axis=1, keepdims=True), 1e-12)
    cos = (a * b).sum(axis=1)
    return {
        "spearman": float(spearmanr(cos, gold).statistic),
        "pearson": float(pearsonr(cos, gold).statistic),
        "pairs": len(gold),
    }
