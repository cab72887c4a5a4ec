"""The experiment report: winner or none, effect, CI, p-value, events so far and how many more a decision needs."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from embedops.experiment.ab import ABResult, ab_analysis
from embedops.experiment.assignment import SRMResult, srm_check, users_per_arm
from embedops.experiment.definition import CHALLENGER, CHAMPION, Experiment
from embedops.experiment.interleave import InterleaveResult, interleave_analysis
from embedops.experiment.outcome import Outcome

NONE = "none"


@dataclass(frozen=True)
class ExperimentReport:
    """Where an experiment stands. `more_events_needed` None with no winner means never (effect ~ 0, or a fixed
    horizon already reached); `effect` is challenger minus champion (A/B: metric difference; interleaving: win
    rate - 0.5)."""

    experiment: str
    mode: str
    metric: str
    stopping: str
    alpha: float
    winner: str
    effect: float
    ci_low: float
    ci_high: float
    p_value: float
    events: int
    decided_at: int | None
    more_events_needed: int | None
    srm: SRMResult | None
    detail: ABResult | InterleaveResult
    note: str

    @property
    def more_events_text(self) -> str:
        """`0`, a number, or `never`."""
        return "never" if self.more_events_needed is None else str(self.more_events_needed)

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly form (strict JSON: an unknown value such as the effect before any event is null)."""
        return _finite({
            "experiment": self.experiment, "mode": self.mode, "metric": self.metric, "stopping": self.stopping,
            "alpha": self.alpha, "winner": self.winner, "effect": self.effect, "ci": [self.ci_low, self.ci_high],
            "p_value": self.p_value, "events": self.events, "decided_at": self.decided_at,
            "more_events_needed": self.more_events_text if self.more_events_needed is None
            else self.more_events_needed,
            "srm": None if self.srm is None else self.srm.as_dict(), "detail": self.detail.as_dict(),
            "note": self.note,
        })


def _finite(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def _winner(decided: bool, lo: float, hi: float, effect: float) -> str:
    if not decided:
        return NONE
    if lo > 0 or hi < 0:
        return CHALLENGER if lo > 0 else CHAMPION
    return CHALLENGER if effect > 0 else CHAMPION  # CI drifted back over 0 after the decision: keep its sign


def analyze(experiment: Experiment, outcomes: Iterable[Outcome]) -> ExperimentReport:
    """The report for the outcomes logged so far, in the order they happened."""
    items = list(outcomes)
    srm: SRMResult | None = None
    detail: ABResult | InterleaveResult
    if experiment.mode == "ab":
        detail = ab_analysis(experiment, items)
        srm = srm_check(users_per_arm((o.user_id, o.arm) for o in items), experiment.split)
        what = f"{experiment.metric} {detail.challenger.value:.4f} vs {detail.champion.value:.4f} (challenger vs " \
               f"champion, {detail.challenger.users} vs {detail.champion.users} users)"
    else:
        detail = interleave_analysis(experiment, items)
        what = f"challenger wins {detail.wins}, champion wins {detail.losses}, ties {detail.ties}"
    winner = _winner(detail.decided, detail.ci_low, detail.ci_high, detail.effect)
    if srm is not None and srm.flagged:
        # A broken split (bad hashing, lost logs, bots) biases both arms in unknown ways: no decision on it.
        winner = NONE
        note = f"sample ratio mismatch (p={srm.p_value:.2g}): no decision until the assignment is fixed; {what}"
    elif winner != NONE:
        note = f"{winner} wins at {detail.decided_at} events (p={detail.p_value:.3g} < {experiment.alpha}); {what}"
    elif detail.more_events_needed is None:
        note = f"no winner, and more events would not decide it at this effect; {what}"
    else:
        note = f"no winner yet; about {detail.more_events_needed} more events needed at this effect; {what}"
    return ExperimentReport(
        experiment=experiment.name, mode=experiment.mode, metric=experiment.metric if experiment.mode == "ab"
        else "interleaved clicks", stopping=experiment.stopping.kind, alpha=experiment.alpha, winner=winner,
        effect=detail.effect, ci_low=detail.ci_low, ci_high=detail.ci_high, p_value=detail.p_value,
        events=detail.events, decided_at=detail.decided_at if winner != NONE else None,
        more_events_needed=detail.more_events_needed, srm=srm, detail=detail, note=note)
