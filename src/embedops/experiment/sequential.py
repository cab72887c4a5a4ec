"""Stopping-rule arithmetic: the looks, the mixture SPRT statistics and confidence sequences, and sample sizes.

A/B: a normal mixture SPRT on the standardised difference z = effect / se after n events. With the mixing
distribution N(0, tau^2), tau = rho x (per-event sd of the contrast), the likelihood ratio is
    Lambda_n = (1 + rho^2 n)^(-1/2) exp(z^2 rho^2 n / (2 (1 + rho^2 n)))
and {effect: Lambda_n(effect) < 1/alpha} is a confidence sequence (Johari, Pekelis & Walsh 2017; Robbins 1970).
Interleaving: Beta(a, a) mixture of Bernoulli likelihoods against p = 0.5, an exact martingale under the null.
The always-valid p-value is min(1, 1 / max over looks of Lambda); by Ville's inequality P(ever < alpha) <= alpha.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from statistics import NormalDist

import numpy as np
from scipy.optimize import brentq
from scipy.special import betaln

NEVER_EVENTS = 1e9  # a projection beyond this says "never": the observed effect is indistinguishable from zero
_N = NormalDist()


def z_quantile(q: float) -> float:
    """The standard normal quantile."""
    return _N.inv_cdf(q)


def two_sided_p(z: float) -> float:
    """Two-sided normal p-value of a z statistic."""
    return 2.0 * (1.0 - _N.cdf(abs(z))) if math.isfinite(z) else 0.0


def look_points(n: int, min_events: int, growth: float) -> list[int]:
    """Event counts at which a sequential rule is checked: min_events x growth^j below n, then n itself."""
    if n < min_events:
        return []
    points: list[int] = []
    x = float(min_events)
    while int(x) < n:
        points.append(int(x))
        x = max(x * growth, int(x) + 1.0)
    points.append(n)
    return points


def normal_log_lr(z: float, n: int, rho: float) -> float:
    """log Lambda of the normal-mixture SPRT after n events with standardised statistic z."""
    r = rho * rho * n
    return -0.5 * math.log1p(r) + z * z * r / (2.0 * (1.0 + r))


def normal_cs_width(n: int, rho: float, alpha: float) -> float:
    """Half-width of the normal-mixture confidence sequence, in standard errors."""
    r = rho * rho * n
    return math.sqrt((1.0 + r) / r * (2.0 * math.log(1.0 / alpha) + math.log1p(r)))


def beta_a(sd: float) -> float:
    """The Beta(a, a) parameter whose standard deviation is `sd`."""
    return (0.25 / (sd * sd) - 1.0) / 2.0


def beta_log_lr(wins: int, losses: int, a: float, p0: float = 0.5) -> float:
    """log Lambda of the Beta(a, a)-mixture SPRT against win rate p0 after `wins` and `losses`."""
    log_null = wins * math.log(p0) + losses * math.log1p(-p0)
    return betaln(a + wins, a + losses) - betaln(a, a) - log_null


def beta_cs(wins: int, losses: int, a: float, alpha: float) -> tuple[float, float]:
    """The confidence sequence for the win rate: {p0: Lambda(p0) < 1/alpha}, an interval around wins/(wins+losses)."""
    target = math.log(1.0 / alpha)
    total = wins + losses
    if total == 0:
        return 0.0, 1.0
    eps = 1e-12
    mle = min(max(wins / total, eps), 1 - eps)

    def f(p: float) -> float:
        return beta_log_lr(wins, losses, a, p) - target

    # log Lambda(p0) is convex in p0 with its minimum (<= 0) at the MLE, so each side crosses the level once.
    lo = 0.0 if f(eps) < 0 else brentq(f, eps, mle)
    hi = 1.0 if f(1 - eps) < 0 else brentq(f, mle, 1 - eps)
    return float(lo), float(hi)


def beta_cs_intersection(wins: Sequence[int], losses: Sequence[int], a: float, alpha: float,
                         grid: int = 4001) -> tuple[float, float]:
    """The intersection of the win-rate confidence sequences of many looks, on a grid of p0 (widened one step)."""
    p0 = np.linspace(0.0, 1.0, grid)[1:-1]
    w = np.asarray(wins, dtype=np.float64)[:, None]
    lo_ = np.asarray(losses, dtype=np.float64)[:, None]
    mix = betaln(a + w, a + lo_) - betaln(a, a)
    log_lr = mix - w * np.log(p0) - lo_ * np.log1p(-p0)
    inside = (log_lr < math.log(1.0 / alpha)).all(axis=0)
    if not inside.any():  # only when the win rate drifted over time: use the latest look alone
        return beta_cs(int(wins[-1]), int(losses[-1]), a, alpha)
    step = 1.0 / (grid - 1)
    kept = p0[inside]
    return max(float(kept[0]) - step, 0.0), min(float(kept[-1]) + step, 1.0)


def required_events(effect: float, sd_per_event: float, *, alpha: float, power: float,
                    sequential: bool, rho: float) -> float | None:
    """Events at which an effect of this size would be decided with probability `power`; None when never."""
    if not math.isfinite(effect) or effect == 0 or not math.isfinite(sd_per_event):
        return None
    if sd_per_event <= 0:
        return 1.0
    z_power = z_quantile(power)
    z_fixed = z_quantile(1 - alpha / 2)

    def short(n: float) -> float:  # > 0 while n events are still too few
        width = normal_cs_width(int(n), rho, alpha) if sequential else z_fixed
        return sd_per_event / math.sqrt(n) * (width + z_power) - abs(effect)

    if short(NEVER_EVENTS) > 0:
        return None
    lo, hi = 1.0, NEVER_EVENTS
    if short(lo) <= 0:
        return lo
    while hi / lo > 1.001:  # bisection in log space: the answer spans orders of magnitude
        mid = math.sqrt(lo * hi)
        lo, hi = (mid, hi) if short(mid) > 0 else (lo, mid)
    return math.ceil(hi)
