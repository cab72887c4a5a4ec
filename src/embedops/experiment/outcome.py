"""One served request and what the user did with it: the unit every experiment statistic is computed from."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from embedops.errors import InputError
from embedops.experiment.definition import CHALLENGER, CHAMPION, INTERLEAVED

ARMS = (CHAMPION, CHALLENGER, INTERLEAVED)


@dataclass(frozen=True)
class Outcome:
    """A request shown to `user_id`: the arm, the ranked result ids, the ids clicked, and for interleaving the team
    (champion or challenger) that contributed each position."""

    user_id: str
    arm: str
    results: tuple[str, ...]
    clicks: tuple[str, ...] = ()
    request_id: str | None = None
    teams: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        where = f"outcome {self.request_id or ''} of user {self.user_id!r}".replace("  ", " ")
        if not isinstance(self.user_id, str) or not self.user_id:
            raise InputError("an outcome needs a user id", where=where)
        if self.arm not in ARMS:
            raise InputError(f"unknown arm {self.arm!r} (expected one of {', '.join(ARMS)})", where=where)
        object.__setattr__(self, "results", tuple(self.results))
        object.__setattr__(self, "clicks", tuple(self.clicks))
        if self.arm == INTERLEAVED:
            if self.teams is None or len(self.teams) != len(self.results):
                raise InputError("an interleaved outcome needs one team per result position", where=where)
            object.__setattr__(self, "teams", tuple(self.teams))
            bad = sorted(set(self.teams) - {CHAMPION, CHALLENGER})
            if bad:
                raise InputError(f"unknown team {bad[0]!r}", where=where)

    def clicked_ranks(self) -> list[int]:
        """1-based ranks of the clicked results that were shown, in rank order (clicks on unshown ids ignored)."""
        clicked = set(self.clicks)
        return [i + 1 for i, doc in enumerate(self.results) if doc in clicked]

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Outcome:
        """Build from a JSON-like mapping (as the event log would give it)."""
        teams = data.get("teams")
        return cls(
            user_id=str(data["user_id"]),
            arm=str(data["arm"]),
            results=tuple(str(x) for x in data.get("results", ())),
            clicks=tuple(str(x) for x in data.get("clicks", ())),
            request_id=None if data.get("request_id") is None else str(data["request_id"]),
            teams=None if teams is None else tuple(str(t) for t in teams),
        )

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly form."""
        return {"user_id": self.user_id, "arm": self.arm, "results": list(self.results), "clicks": list(self.clicks),
                "request_id": self.request_id, "teams": None if self.teams is None else list(self.teams)}


def request_value(outcome: Outcome, metric: str, k: int) -> float:
    """The per-request value of an A/B metric: ctr = any click, mrr = 1/rank of the first click, success@k = a
    click in the top k (0 when nothing was clicked)."""
    if not outcome.clicks:  # the common case, and the cheap one
        return 0.0
    ranks = outcome.clicked_ranks()
    if not ranks:
        return 0.0
    if metric == "ctr":
        return 1.0
    if metric == "mrr":
        return 1.0 / ranks[0]
    if metric == "success@k":
        return 1.0 if ranks[0] <= k else 0.0
    raise InputError(f"unknown metric {metric!r} (expected ctr, mrr or success@k)")
