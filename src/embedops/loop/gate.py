"""The loop's offline gate: a challenger replaces nobody unless it meets the project's success criteria AND beats
the champion on a frozen golden set by a paired test (same queries, same qrels, same corpus)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from embedops.eval.significance import paired_test


@dataclass
class GateDecision:
    """Whether the challenger may go on to an online test, and why."""

    passed: bool
    reasons: list[str]
    metric: str
    champion: float
    challenger: float
    diff: float
    ci_low: float
    ci_high: float
    p_value: float
    queries: int
    criteria: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly form (stored in the run state and the version's manifest)."""
        return dict(self.__dict__)


def offline_gate(champion: dict[str, dict[str, float]], challenger: dict[str, dict[str, float]], *,
                 metric: str = "ndcg@10", min_gain: float = 0.0, criteria: dict[str, Any] | None = None,
                 resamples: int = 10_000, seed: int = 0) -> GateDecision:
    """Compare per-query scores (query id -> metric -> value) of two models on the same golden queries.

    Passes when the criteria gate passed (if given), the mean gain is at least `min_gain`, and the challenger is
    not significantly worse (paired bootstrap CI upper bound above zero).
    """
    queries = sorted(set(champion) & set(challenger))
    missing = set(champion) ^ set(challenger)
    reasons: list[str] = []
    if missing or not queries:
        reasons.append(f"the two runs are not on the same golden queries ({len(missing)} differ)")
    a = [champion[q][metric] for q in queries]
    b = [challenger[q][metric] for q in queries]
    if len(queries) < 2:
        reasons.append("fewer than 2 golden queries")
        cmp = None
    else:
        cmp = paired_test(a, b, metric=metric, resamples=resamples, seed=seed)
        if cmp.diff < min_gain:
            reasons.append(f"{metric} gain {cmp.diff:+.4f} is below the required {min_gain:+.4f} "
                           f"(champion {cmp.mean_a:.4f}, challenger {cmp.mean_b:.4f}, p={cmp.p_value:.3g})")
        if cmp.ci_high < 0:
            reasons.append(f"challenger is significantly worse on {metric} "
                           f"(95% CI {cmp.ci_low:+.4f}..{cmp.ci_high:+.4f})")
    if criteria is not None and not criteria.get("passed", False):
        reasons.append(f"success criteria failed: {criteria.get('summary', '')}")
    return GateDecision(
        passed=not reasons, reasons=reasons or ["passed"], metric=metric,
        champion=cmp.mean_a if cmp else float("nan"), challenger=cmp.mean_b if cmp else float("nan"),
        diff=cmp.diff if cmp else float("nan"), ci_low=cmp.ci_low if cmp else float("nan"),
        ci_high=cmp.ci_high if cmp else float("nan"), p_value=cmp.p_value if cmp else float("nan"),
        queries=len(queries), criteria=criteria or {})
