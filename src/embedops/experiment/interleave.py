"""Team-draft interleaving (Radlinski, Kurup & Joachims 2008): both rankers' results in one list per query.

Each user sees one list whose positions were drafted alternately by the champion and the challenger (a coin picks
who drafts first whenever the teams are level); a click credits the team that placed the clicked result. Every
query is a paired comparison on the same user and the same need, which is why it needs far fewer events than an
A/B split, where user and query variance sit on both sides. Queries with equal credit (or no clicks) are ties; the
test is a sign test of the challenger's win rate over non-tied queries against 0.5.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

from scipy import stats

from embedops.experiment.definition import CHALLENGER, CHAMPION, INTERLEAVED, Experiment
from embedops.experiment.outcome import Outcome
from embedops.experiment.sequential import (
    beta_a,
    beta_cs_intersection,
    beta_log_lr,
    look_points,
    required_events,
)

TIE = "tie"


@dataclass(frozen=True)
class Interleaving:
    """The list shown and, per position, the team (champion or challenger) that drafted it."""

    results: tuple[str, ...]
    teams: tuple[str, ...]


def interleave_seed(experiment_name: str, request_id: str) -> int:
    """The coin seed of one request: derived from ids, so the same list can be rebuilt later for attribution."""
    digest = hashlib.sha256(f"{experiment_name}\x1f{request_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big")


class _SplitMix64:
    """SplitMix64 (Steele et al. 2014): a tiny PRNG, 20x cheaper to seed than random.Random and easy to reproduce
    in any language that must rebuild an interleaved list for attribution."""

    _MASK = (1 << 64) - 1

    def __init__(self, seed: int):
        self.state = seed & self._MASK

    def bit(self) -> bool:
        """The next fair coin."""
        self.state = (self.state + 0x9E3779B97F4A7C15) & self._MASK
        z = self.state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & self._MASK
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & self._MASK
        return bool((z ^ (z >> 31)) >> 63)


def team_draft(champion: Sequence[str], challenger: Sequence[str], *, seed: int,
               length: int | None = None) -> Interleaving:
    """Interleave two rankings by team draft; stops when either ranking runs out, so the teams stay level."""
    coin = _SplitMix64(seed).bit
    limit = len(set(champion) | set(challenger)) if length is None else length
    na, nb = len(champion), len(challenger)
    results: list[str] = []
    teams: list[str] = []
    shown: set[str] = set()
    ia = ib = 0  # next unplaced position in each ranking
    size_a = size_b = 0
    while size_a + size_b < limit:
        while ia < na and champion[ia] in shown:  # skip what the other team already placed
            ia += 1
        while ib < nb and challenger[ib] in shown:
            ib += 1
        if ia >= na or ib >= nb:
            break
        if size_a < size_b or (size_a == size_b and coin()):
            doc, team, size_a = champion[ia], CHAMPION, size_a + 1
        else:
            doc, team, size_b = challenger[ib], CHALLENGER, size_b + 1
        results.append(doc)
        teams.append(team)
        shown.add(doc)
    return Interleaving(tuple(results), tuple(teams))


def credit(outcome: Outcome) -> str:
    """The query's winner: the team whose results got more clicks (`tie` when equal, including no clicks)."""
    clicked = set(outcome.clicks)
    score = {CHAMPION: 0, CHALLENGER: 0}
    for doc, team in zip(outcome.results, outcome.teams or (), strict=True):
        if doc in clicked:
            score[team] += 1
    if score[CHALLENGER] == score[CHAMPION]:
        return TIE
    return CHALLENGER if score[CHALLENGER] > score[CHAMPION] else CHAMPION


@dataclass(frozen=True)
class InterleaveResult:
    """The challenger's win rate over non-tied queries: effect = win rate - 0.5, with CI and p-value."""

    events: int
    wins: int
    losses: int
    ties: int
    win_rate: float
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


def interleave_analysis(experiment: Experiment, outcomes: Sequence[Outcome]) -> InterleaveResult:
    """Sign test of challenger wins vs champion wins under the experiment's stopping rule."""
    rule, alpha = experiment.stopping, experiment.alpha
    credits = [credit(o) for o in outcomes if o.arm == INTERLEAVED]
    n = len(credits) if rule.kind != "fixed" else min(len(credits), rule.horizon or len(credits))
    wins_at = [0] * (n + 1)
    losses_at = [0] * (n + 1)
    for i, c in enumerate(credits[:n]):
        wins_at[i + 1] = wins_at[i] + (c == CHALLENGER)
        losses_at[i + 1] = losses_at[i] + (c == CHAMPION)
    w, lo_count = wins_at[n], losses_at[n]
    decisive = w + lo_count
    rate = w / decisive if decisive else 0.5
    fixed_p = float(stats.binomtest(w, decisive, 0.5).pvalue) if decisive else 1.0
    decided_at: int | None = None
    if rule.kind == "fixed":
        if decisive:
            ci = stats.binomtest(w, decisive, 0.5).proportion_ci(confidence_level=1 - alpha, method="exact")
            lo, hi = float(ci.low), float(ci.high)
        else:
            lo, hi = 0.0, 1.0
        p = fixed_p
        if n == rule.horizon and p < alpha:
            decided_at = n
    else:
        a = beta_a(rule.interleave_mixture_sd)
        looks = look_points(n, rule.min_events, rule.look_growth)
        lo, hi, best, p = 0.0, 1.0, -math.inf, 1.0
        for m in looks:
            best = max(best, beta_log_lr(wins_at[m], losses_at[m], a))
            p = min(1.0, math.exp(-best)) if best > 0 else 1.0
            if decided_at is None and p < alpha:
                decided_at = m
        if looks:
            # The running intersection of the per-look confidence sequences is itself one; it keeps the CI in
            # step with the running-minimum p-value.
            lo, hi = beta_cs_intersection([wins_at[m] for m in looks], [losses_at[m] for m in looks], a, alpha)
    decided = decided_at is not None
    more = 0 if decided else _more(experiment, n, w, lo_count)
    return InterleaveResult(n, w, lo_count, n - decisive, rate, rate - 0.5, lo - 0.5, hi - 0.5, p, fixed_p,
                            decided, decided_at, more)


def _more(experiment: Experiment, n: int, wins: int, losses: int) -> int | None:
    """More queries until the observed win rate, if real, is decided with the rule's power (None: never)."""
    rule = experiment.stopping
    decisive = wins + losses
    if rule.kind == "fixed" and rule.horizon is not None and n >= rule.horizon:
        return None
    if decisive == 0:  # nothing to project from: at least the burn-in (or the horizon) is still to come
        floor = rule.horizon if rule.kind == "fixed" and rule.horizon else rule.min_events
        return floor - n if n < floor else None
    # Per non-tied query the outcome is a coin with sd <= 0.5 (0.5 under the null: the conservative choice);
    # the Beta mixture's sd on the win rate is rho x 0.5 in those units.
    needed = required_events(wins / decisive - 0.5, 0.5, alpha=experiment.alpha, power=rule.power,
                             sequential=rule.kind == "sequential", rho=rule.interleave_mixture_sd / 0.5)
    if needed is None:
        return None
    events = needed * n / decisive  # ties are spent events too
    if rule.kind == "fixed" and rule.horizon is not None:
        events = max(events, rule.horizon)
    return max(math.ceil(events) - n, 0)
