"""A/B statistics: per-user aggregation of CTR, MRR of clicks or success@k, the delta method, and the decision.

The user is the unit of randomisation, so requests of one user are not independent. Each arm's metric is the ratio
sum over users of X_u (the metric summed over u's requests) / sum of N_u (u's requests); its variance comes from
the delta method for a ratio of means: Var(R) ~= Var(X_u - R N_u) / (m mean(N_u)^2) over the m users of the arm
(Deng, Knoblich & Lu 2018). The arms are independent, so Var(diff) is the sum.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

from embedops.experiment.definition import CHALLENGER, CHAMPION, Experiment
from embedops.experiment.outcome import Outcome, request_value
from embedops.experiment.sequential import (
    look_points,
    normal_cs_width,
    normal_log_lr,
    required_events,
    two_sided_p,
    z_quantile,
)

MIN_USERS_PER_ARM = 20  # below this the normal approximation of the per-user ratio is not trusted


@dataclass(frozen=True)
class ArmSummary:
    """One arm's metric over its users: value = sum of per-request values / requests, with its standard error."""

    arm: str
    users: int
    events: int
    value: float
    se: float


@dataclass(frozen=True)
class ABResult:
    """Challenger minus champion: effect, CI, p-value under the experiment's stopping rule, and the decision."""

    metric: str
    events: int
    champion: ArmSummary
    challenger: ArmSummary
    effect: float
    ci_low: float
    ci_high: float
    p_value: float
    fixed_p_value: float
    decided: bool
    decided_at: int | None
    more_events_needed: int | None

    def as_dict(self) -> dict:
        """JSON-friendly form."""
        return asdict(self)


class _Events:
    """The outcomes as arrays (user index, arm flag, per-request value) so each look is a few bincounts."""

    def __init__(self, outcomes: Sequence[Outcome], metric: str, k: int):
        ids: dict[str, int] = {}
        ab = [o for o in outcomes if o.arm in (CHAMPION, CHALLENGER)]
        self.user = np.fromiter((ids.setdefault(o.user_id, len(ids)) for o in ab), dtype=np.int64, count=len(ab))
        self.arm = np.fromiter((o.arm == CHALLENGER for o in ab), dtype=bool, count=len(ab))
        self.value = np.fromiter((request_value(o, metric, k) for o in ab), dtype=np.float64, count=len(ab))
        self.n_users = len(ids)

    def __len__(self) -> int:
        return len(self.value)

    def arm_summary(self, n: int, challenger: bool) -> ArmSummary:
        """The arm's ratio metric and delta-method standard error over the first n events."""
        sel = self.arm[:n] == challenger
        users = self.user[:n][sel]
        x = np.bincount(users, weights=self.value[:n][sel], minlength=self.n_users)
        cnt = np.bincount(users, minlength=self.n_users).astype(np.float64)
        keep = cnt > 0
        x, cnt = x[keep], cnt[keep]
        m = len(cnt)
        name = CHALLENGER if challenger else CHAMPION
        if m == 0:
            return ArmSummary(name, 0, 0, math.nan, math.nan)
        ratio = float(x.sum() / cnt.sum())
        resid = x - ratio * cnt
        se = math.sqrt(float(resid.var(ddof=1)) / m) / float(cnt.mean()) if m > 1 else math.nan
        return ArmSummary(name, m, int(cnt.sum()), ratio, se)

    def look(self, n: int) -> tuple[ArmSummary, ArmSummary, float, float]:
        """Both arms, the difference and its standard error after n events."""
        a, b = self.arm_summary(n, False), self.arm_summary(n, True)
        return a, b, b.value - a.value, math.hypot(a.se, b.se)


def _z(effect: float, se: float) -> float:
    if not math.isfinite(effect) or not math.isfinite(se):
        return 0.0
    if se == 0:
        return 0.0 if effect == 0 else math.copysign(math.inf, effect)
    return effect / se


def _enough(a: ArmSummary, b: ArmSummary) -> bool:
    return min(a.users, b.users) >= MIN_USERS_PER_ARM


def ab_analysis(experiment: Experiment, outcomes: Sequence[Outcome]) -> ABResult:
    """Compare the arms on the experiment's metric under its stopping rule (fixed horizon or mixture SPRT)."""
    rule, alpha = experiment.stopping, experiment.alpha
    ev = _Events(outcomes, experiment.metric, experiment.k)
    n = len(ev)
    if rule.kind == "fixed":
        n = min(n, rule.horizon or n)  # the test is on the first `horizon` events, fixed before the start
    a, b, effect, se = ev.look(n)
    z = _z(effect, se)
    fixed_p = two_sided_p(z) if _enough(a, b) else 1.0
    decided_at: int | None = None
    if rule.kind == "fixed":
        half = z_quantile(1 - alpha / 2) * se
        lo, hi, p = effect - half, effect + half, fixed_p
        if n == rule.horizon and _enough(a, b) and p < alpha:
            decided_at = n
    else:
        lo, hi, best, p = -math.inf, math.inf, -math.inf, 1.0
        for m in look_points(n, rule.min_events, rule.look_growth):
            la, lb, eff, s = (a, b, effect, se) if m == n else ev.look(m)
            if not _enough(la, lb) or not math.isfinite(s):
                continue
            best = max(best, normal_log_lr(_z(eff, s), m, rule.ab_mixture_sd))
            p = min(1.0, math.exp(-best)) if best > 0 else 1.0
            half = normal_cs_width(m, rule.ab_mixture_sd, alpha) * s
            # The running intersection is itself a confidence sequence; it keeps the CI and the p-value in step.
            lo, hi = max(lo, eff - half), min(hi, eff + half)
            if decided_at is None and p < alpha:
                decided_at = m
        if lo > hi:  # only when the effect drifted over time; fall back to the latest look's interval
            half = normal_cs_width(n, rule.ab_mixture_sd, alpha) * se
            lo, hi = effect - half, effect + half
    decided = decided_at is not None
    more = None if decided else _more(experiment, n, effect, se)
    return ABResult(experiment.metric, n, a, b, effect, lo, hi, p, fixed_p, decided, decided_at,
                    0 if decided else more)


def _more(experiment: Experiment, n: int, effect: float, se: float) -> int | None:
    """More events until this effect, if real, is decided with the rule's power (None: never)."""
    rule = experiment.stopping
    if rule.kind == "fixed" and rule.horizon is not None and n >= rule.horizon:
        return None  # the one test of a fixed-horizon rule is done: more events cannot change its answer
    if n < 2 or not math.isfinite(se) or not math.isfinite(effect):
        # too little data to estimate anything: at least the burn-in (or the horizon) is still to come
        floor = rule.horizon if rule.kind == "fixed" and rule.horizon else rule.min_events
        return floor - n if n < floor else None
    # se x sqrt(n) is the per-event sd of the contrast at the observed split. Scaling it by 1/sqrt(n) assumes new
    # events bring new users at the rate seen so far; more events from the same few users shrink se more slowly.
    needed = required_events(effect, se * math.sqrt(n), alpha=experiment.alpha, power=rule.power,
                             sequential=rule.kind == "sequential", rho=rule.ab_mixture_sd)
    if needed is None:
        return None
    if rule.kind == "fixed" and rule.horizon is not None:
        needed = max(needed, rule.horizon)  # a fixed rule decides only at its horizon
    return max(int(needed) - n, 0)
