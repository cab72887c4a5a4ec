"""Sticky arm assignment by hashed user id, and the sample-ratio-mismatch (SRM) check on what was observed."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass

from scipy import stats

from embedops.experiment.definition import CHALLENGER, CHAMPION, Experiment, ExperimentError

SRM_THRESHOLD = 0.001


def bucket(experiment_name: str, user_id: str) -> float:
    """A uniform number in [0, 1) fixed by (experiment, user): the same in every process and after restarts."""
    # sha256 rather than hash(): Python salts str hashes per process. Salting by experiment name keeps a user's
    # arms independent across experiments (the same users are not always the challenger's).
    digest = hashlib.sha256(f"{experiment_name}\x1f{user_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def assign(experiment: Experiment, user_id: str) -> str:
    """`challenger` for a `split` share of users, else `champion`; sticky for a user within an experiment."""
    if not isinstance(user_id, str) or not user_id:
        raise ExperimentError("a user id is needed for sticky assignment", where=f"experiment {experiment.name!r}")
    return CHALLENGER if bucket(experiment.name, user_id) < experiment.split else CHAMPION


@dataclass(frozen=True)
class SRMResult:
    """Chi-square goodness of fit of the observed users per arm against the configured split."""

    observed: dict[str, int]
    expected: dict[str, float]
    statistic: float
    p_value: float
    flagged: bool

    def as_dict(self) -> dict:
        """JSON-friendly form."""
        return asdict(self)


def srm_check(observed: Mapping[str, int], split: float, *, threshold: float = SRM_THRESHOLD) -> SRMResult:
    """Flag a sample-ratio mismatch (p < threshold): the assignment or the logging is broken, not the model."""
    # Count distinct users, the unit of randomisation: events per user vary with the treatment itself.
    counts = {CHAMPION: int(observed.get(CHAMPION, 0)), CHALLENGER: int(observed.get(CHALLENGER, 0))}
    total = sum(counts.values())
    expected = {CHAMPION: total * (1 - split), CHALLENGER: total * split}
    if total == 0:
        return SRMResult(counts, expected, 0.0, 1.0, False)
    stat, p = stats.chisquare([counts[CHAMPION], counts[CHALLENGER]], [expected[CHAMPION], expected[CHALLENGER]])
    return SRMResult(counts, expected, float(stat), float(p), bool(p < threshold))


def users_per_arm(pairs: Iterable[tuple[str, str]]) -> dict[str, int]:
    """Distinct users seen in each arm, from (user id, arm) pairs."""
    seen: dict[str, set[str]] = {CHAMPION: set(), CHALLENGER: set()}
    for user, arm in pairs:
        if arm in seen:
            seen[arm].add(user)
    return {arm: len(users) for arm, users in seen.items()}
