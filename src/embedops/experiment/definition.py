"""What an experiment is, fixed before the first event: arms, split, mode, metric, alpha and the stopping rule.

Everything a decision depends on is stated up front and stored with the experiment, so a report cannot quietly
change the test after seeing data (choosing the metric or the horizon post hoc inflates false positives).
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from embedops.errors import EmbedopsError

CHAMPION = "champion"
CHALLENGER = "challenger"
INTERLEAVED = "interleaved"
MODES = ("ab", "interleave")
METRICS = ("ctr", "mrr", "success@k")
STOPPING_KINDS = ("sequential", "fixed")
STATUSES = ("running", "stopped")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._\-]{0,99}$")


class ExperimentError(EmbedopsError):
    """An invalid experiment definition or a store operation that cannot be done (unknown or duplicate name)."""


def now() -> str:
    """UTC timestamp in ISO 8601."""
    return datetime.now(UTC).isoformat(timespec="seconds")


def _fail(name: str, fieldname: str, message: str) -> ExperimentError:
    return ExperimentError(message, where=f"experiment {name!r}: {fieldname}")


@dataclass(frozen=True)
class Arm:
    """One side of the test: a model reference and the collection embedded by that model (vector spaces differ)."""

    model: str
    collection: str


@dataclass(frozen=True)
class StoppingRule:
    """When a decision may be taken, stated before the first event.

    `fixed`: one test on exactly the first `horizon` events; no winner before that, events after it are ignored.
    `sequential`: a mixture sequential probability ratio test (mSPRT, Johari et al. 2017, "always valid p-values"),
    checked at a geometric grid of looks (every `look_growth`-fold more events from `min_events` on) plus the look
    the report is asked at. Its p-value is valid however often one looks (Ville's inequality), so stopping at the
    first look with p < alpha keeps the false-positive rate at alpha. For A/B the mixture is normal, N(0, tau^2) on
    the difference with tau = `ab_mixture_sd` x the per-event standard deviation of the contrast; for interleaving it
    is Beta(a, a) on the win rate with standard deviation `interleave_mixture_sd` (an exact martingale under p=0.5).
    """

    kind: str = "sequential"
    horizon: int | None = None
    min_events: int = 200
    look_growth: float = 1.05
    ab_mixture_sd: float = 0.03
    interleave_mixture_sd: float = 0.1
    power: float = 0.8


@dataclass(frozen=True)
class Experiment:
    """A champion-vs-challenger test; build it with `Experiment.new` (validated) or `from_dict` (stored JSON)."""

    name: str
    champion: Arm
    challenger: Arm
    split: float = 0.5
    mode: str = "ab"
    metric: str = "ctr"
    k: int = 10
    alpha: float = 0.05
    stopping: StoppingRule = field(default_factory=StoppingRule)
    started_at: str = field(default_factory=now)
    status: str = "running"
    stopped_at: str | None = None

    def __post_init__(self) -> None:
        _validate(self)

    @classmethod
    def new(
        cls,
        name: str,
        champion: Arm | dict[str, str],
        challenger: Arm | dict[str, str],
        **options: Any,
    ) -> Experiment:
        """A validated experiment; `options` are the other fields (split, mode, metric, k, alpha, stopping)."""
        data = {"name": name, "champion": champion, "challenger": challenger, **options}
        return cls.from_dict(data)

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, where: str | None = None) -> Experiment:
        """Parse the JSON form; an unknown or malformed field is an `ExperimentError` naming it."""
        if not isinstance(data, dict):
            raise ExperimentError("an experiment must be a JSON object", where=where)
        name = str(data.get("name", "?"))
        known = {f for f in cls.__dataclass_fields__}
        unknown = sorted(set(data) - known)
        if unknown:
            raise _fail(name, unknown[0], f"unknown field (known: {', '.join(sorted(known))})")
        fields = dict(data)
        for side in (CHAMPION, CHALLENGER):
            fields[side] = _arm(name, side, data.get(side))
        if "stopping" in data:
            fields["stopping"] = _stopping(name, data["stopping"])
        try:
            return cls(**fields)
        except TypeError as exc:  # a required field left out
            raise ExperimentError(str(exc), where=where or f"experiment {name!r}") from None

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form (what the store writes)."""
        return asdict(self)

    def stopped(self) -> Experiment:
        """This experiment, marked stopped now."""
        return replace(self, status="stopped", stopped_at=now())

    def arm(self, side: str) -> Arm:
        """The champion or challenger arm by its name."""
        if side not in (CHAMPION, CHALLENGER):
            raise _fail(self.name, "arm", f"unknown arm {side!r} (expected {CHAMPION!r} or {CHALLENGER!r})")
        return self.champion if side == CHAMPION else self.challenger


def _arm(name: str, side: str, value: Any) -> Arm:
    if isinstance(value, Arm):
        return value
    if not isinstance(value, dict) or set(value) != {"model", "collection"}:
        raise _fail(name, side, "must give exactly 'model' and 'collection' (each arm has its own vector space)")
    return Arm(model=value["model"], collection=value["collection"])


def _stopping(name: str, value: Any) -> StoppingRule:
    if isinstance(value, StoppingRule):
        return value
    if not isinstance(value, dict):
        raise _fail(name, "stopping", "must be an object such as {'kind': 'sequential'}")
    known = set(StoppingRule.__dataclass_fields__)
    unknown = sorted(set(value) - known)
    if unknown:
        raise _fail(name, f"stopping.{unknown[0]}", f"unknown field (known: {', '.join(sorted(known))})")
    return StoppingRule(**value)


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _validate(e: Experiment) -> None:
    name = e.name if isinstance(e.name, str) else repr(e.name)
    if not isinstance(e.name, str) or not _NAME.match(e.name):
        raise _fail(name, "name", "must be 1-100 characters of letters, digits, '.', '_' or '-'")
    for side in (CHAMPION, CHALLENGER):
        arm = getattr(e, side)
        if not isinstance(arm, Arm):
            raise _fail(name, side, "must be an Arm(model, collection)")
        for part in ("model", "collection"):
            if not isinstance(getattr(arm, part), str) or not getattr(arm, part).strip():
                raise _fail(name, f"{side}.{part}", "must be a non-empty string")
    if e.champion == e.challenger:
        raise _fail(name, "challenger", "is the same model and collection as the champion")
    if not _number(e.split) or not 0 < e.split < 1:
        raise _fail(name, "split", f"must be strictly between 0 and 1 (the challenger's share), got {e.split!r}: "
                    "0 or 1 leaves an arm with no users")
    if e.mode not in MODES:
        raise _fail(name, "mode", f"must be one of {', '.join(MODES)}, got {e.mode!r}")
    if e.metric not in METRICS:
        raise _fail(name, "metric", f"must be one of {', '.join(METRICS)}, got {e.metric!r}")
    if not isinstance(e.k, int) or isinstance(e.k, bool) or e.k < 1:
        raise _fail(name, "k", f"must be a positive integer, got {e.k!r}")
    if not _number(e.alpha) or not 0 < e.alpha < 0.5:
        raise _fail(name, "alpha", f"must be between 0 and 0.5, got {e.alpha!r}")
    if e.status not in STATUSES:
        raise _fail(name, "status", f"must be one of {', '.join(STATUSES)}, got {e.status!r}")
    _validate_stopping(name, e.stopping)


def _validate_stopping(name: str, s: StoppingRule) -> None:
    if not isinstance(s, StoppingRule):
        raise _fail(name, "stopping", "must be a StoppingRule")
    if s.kind not in STOPPING_KINDS:
        raise _fail(name, "stopping.kind", f"must be one of {', '.join(STOPPING_KINDS)}, got {s.kind!r}")
    if s.kind == "fixed":
        if not isinstance(s.horizon, int) or isinstance(s.horizon, bool) or s.horizon < 2:
            raise _fail(name, "stopping.horizon", f"a fixed-horizon test needs a horizon of >= 2 events, got "
                        f"{s.horizon!r}")
    elif s.horizon is not None:
        raise _fail(name, "stopping.horizon", "only a fixed-horizon rule has a horizon")
    if not isinstance(s.min_events, int) or isinstance(s.min_events, bool) or s.min_events < 2:
        raise _fail(name, "stopping.min_events", f"must be an integer >= 2, got {s.min_events!r}")
    if not _number(s.look_growth) or not 1 < s.look_growth <= 10:
        raise _fail(name, "stopping.look_growth", f"must be in (1, 10], got {s.look_growth!r}")
    for part, hi in (("ab_mixture_sd", math.inf), ("interleave_mixture_sd", 0.5)):
        value = getattr(s, part)
        if not _number(value) or not 0 < value < hi:
            raise _fail(name, f"stopping.{part}", f"must be a positive number below {hi}, got {value!r}")
    if not _number(s.power) or not 0 < s.power < 1:
        raise _fail(name, "stopping.power", f"must be between 0 and 1, got {s.power!r}")
