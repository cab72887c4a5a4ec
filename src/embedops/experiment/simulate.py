"""Simulated users who click by a position-biased cascade over relevance judgements (qrels), seeded.

`SimulatedUser.clicks` only needs a ranked list and the relevant ids, so the same user can drive the rankers of an
in-process simulation (`simulate`) or the real HTTP server in a benchmark (search, then post its clicks as feedback).
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field

from embedops.experiment.assignment import assign
from embedops.experiment.definition import CHALLENGER, CHAMPION, INTERLEAVED, Experiment
from embedops.experiment.interleave import interleave_seed, team_draft
from embedops.experiment.outcome import Outcome

Ranker = Callable[[str], Sequence[str]]
Relevant = Mapping[str, float] | Collection[str]


def _seed(*parts: object) -> int:
    return int.from_bytes(hashlib.sha256("\x1f".join(map(str, parts)).encode()).digest()[:8], "big")


@dataclass
class SimulatedUser:
    """A cascade reader: looks at results top-down, clicks a relevant one with `p_click_relevant` (an irrelevant
    one with `p_click_irrelevant`), goes on after a click with `p_continue_after_click` and after a skip with
    `p_continue`; so attention decays geometrically with rank (the position bias)."""

    user_id: str
    seed: int = 0
    p_click_relevant: float = 0.7
    p_click_irrelevant: float = 0.05
    p_continue: float = 0.8
    p_continue_after_click: float = 0.3
    max_depth: int | None = None
    _rng: random.Random = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # A per-user stream seeded by (seed, user id): reproducible whatever order other users act in.
        self._rng = random.Random(_seed(self.seed, self.user_id))

    def clicks(self, ranked: Sequence[str], relevant: Relevant) -> list[str]:
        """The ids this user clicks on `ranked`, in click order; `relevant` is qrels (id -> grade > 0) or ids."""
        rel = {d for d, g in relevant.items() if g > 0} if isinstance(relevant, Mapping) else set(relevant)
        depth = len(ranked) if self.max_depth is None else min(self.max_depth, len(ranked))
        out: list[str] = []
        rng = self._rng
        for doc in ranked[:depth]:
            if rng.random() < (self.p_click_relevant if doc in rel else self.p_click_irrelevant):
                out.append(doc)
                if rng.random() >= self.p_continue_after_click:
                    break
            elif rng.random() >= self.p_continue:
                break
        return out

    @classmethod
    def population(cls, n: int, *, seed: int = 0, prefix: str = "user") -> list[SimulatedUser]:
        """`n` users with their own patience and click propensity (users differ, as real ones do)."""
        rng = random.Random(_seed("population", seed, n))
        return [
            cls(f"{prefix}{i}", seed=seed, p_click_relevant=rng.uniform(0.4, 0.9),
                p_click_irrelevant=rng.uniform(0.01, 0.1), p_continue=rng.uniform(0.6, 0.95),
                p_continue_after_click=rng.uniform(0.1, 0.5))
            for i in range(n)
        ]


def present(experiment: Experiment, user_id: str, request_id: str, query: str,
            rankers: Mapping[str, Ranker]) -> tuple[str, tuple[str, ...], tuple[str, ...] | None]:
    """What the service shows for one request: (arm, top-k ids, teams or None), as a server would route it."""
    k = experiment.k
    if experiment.mode == "interleave":
        mixed = team_draft(list(rankers[CHAMPION](query))[:k], list(rankers[CHALLENGER](query))[:k],
                           seed=interleave_seed(experiment.name, request_id), length=k)
        return INTERLEAVED, mixed.results, mixed.teams
    arm = assign(experiment, user_id)
    return arm, tuple(list(rankers[arm](query))[:k]), None


def simulate(experiment: Experiment, users: Sequence[SimulatedUser], queries: Sequence[str],
             qrels: Mapping[str, Relevant], rankers: Mapping[str, Ranker], *, events: int,
             seed: int = 0) -> list[Outcome]:
    """`events` requests by users and queries drawn at random (seeded), each served and clicked: the outcomes."""
    rng = random.Random(_seed("simulate", experiment.name, seed))
    out: list[Outcome] = []
    for i in range(events):
        user = users[rng.randrange(len(users))]
        query = queries[rng.randrange(len(queries))]
        request_id = f"{seed}-{i}"
        arm, results, teams = present(experiment, user.user_id, request_id, query, rankers)
        clicked = user.clicks(results, qrels.get(query, ()))
        out.append(Outcome(user.user_id, arm, results, tuple(clicked), request_id, teams))
    return out
