"""Paired significance tests between two systems scored on the same queries."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from embedops.errors import InputError


@dataclass
class PairedComparison:
    """B minus A on one metric: mean difference, bootstrap CI, and randomization-test p-value."""

    metric: str
    n: int
    mean_a: float
    mean_b: float
    diff: float
    ci_low: float
    ci_high: float
    p_value: float
    confidence: float
    wins: int
    losses: int
    ties: int

    @property
    def significant(self) -> bool:
        """True when the confidence interval excludes zero."""
        return self.ci_low > 0 or self.ci_high < 0

    def as_dict(self) -> dict:
        """JSON-friendly form."""
        return {**asdict(self), "significant": self.significant}


def paired_test(
    a: np.ndarray | list[float],
    b: np.ndarray | list[float],
    *,
    metric: str = "",
    resamples: int = 10_000,
    confidence: float = 0.95,
    seed: int = 0,
) -> PairedComparison:
    """Paired bootstrap CI of mean(b - a) and a two-sided paired randomization (sign-flip) test."""
    x = np.asarray(a, dtype=np.float64)
    y = np.asarray(b, dtype=np.float64)
    if x.shape != y.shape or x.ndim != 1:
        raise InputError(f"paired test needs two equal-length score lists, got {x.shape} and {y.shape}")
    if len(x) < 2:
        raise InputError("paired test needs at least 2 queries")
    d = y - x
    rng = np.random.default_rng(seed)
    n = len(d)
    boot = d[rng.integers(0, n, size=(resamples, n))].mean(axis=1)
    alpha = (1 - confidence) / 2
    lo, hi = np.quantile(boot, [alpha, 1 - alpha])
    signs = rng.choice(np.array([-1.0, 1.0]), size=(resamples, n))
    null = (signs * d).mean(axis=1)
    observed = abs(d.mean())
    p = (np.sum(np.abs(null) >= observed - 1e-12) + 1) / (resamples + 1)
    return PairedComparison(
        metric=metric,
        n=n,
        mean_a=float(x.mean()),
        mean_b=float(y.mean()),
        diff=float(d.mean()),
        ci_low=float(lo),
        ci_high=float(hi),
        p_value=float(p),
        confidence=confidence,
        wins=int((d > 0).sum()),
        losses=int((d < 0).sum()),
        ties=int((d == 0).sum()),
    )
