"""`LoopOptions`: what a loop run needs besides the project, fixed when the run starts.

Everything a decision depends on (gate metric and margin, the online test's mode, split, metric and stopping rule) is
stored in the run's state when it begins, and a resumed run uses the stored values: a rerun cannot quietly change
the test after seeing data.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from embedops.errors import InputError

# Fields that cannot be stored as JSON (an iterable of documents) and are given again on every call.
_NOT_STORED = ("documents",)


@dataclass
class LoopOptions:
    """What a loop run needs besides the project: documents, golden set, gate and online-test settings."""

    corpus: str | Path                      # documents the clicked ids refer to (BEIR folder or JSONL/CSV/Parquet)
    golden: str | Path                      # frozen golden set (BEIR folder) for the offline gate
    golden_split: str = "test"
    golden_queries: int | None = None       # sample of golden queries (None: all)
    golden_documents: int | None = None     # sample of the golden corpus (None: all)
    metric: str = "ndcg@10"                 # the gate's metric, per golden query
    min_gain: float = 0.0                   # required mean gain (a negative value is a non-inferiority margin)
    name: str = "loop"                      # registry name of the challenger versions
    base: str = "champion"                  # what the challenger is tuned from and compared with
    train_overrides: dict[str, Any] = field(default_factory=dict)  # TrainParams fields (epochs, batch_size ...)
    documents: Iterable[Any] | None = None  # documents to re-embed (None: read `corpus`)
    collection_path: str | Path | None = None  # challenger's collection folder (None: <collections root>/<name>)
    # -- the online test (experiment) and the decision ----------------------------------------------------------
    experiment: bool = True                 # False: promote right after the gate (no traffic to test on)
    mode: str = "interleave"                # "ab" (split users) or "interleave" (team draft)
    split: float = 0.5                      # challenger's share of users (A/B), strictly between 0 and 1
    experiment_metric: str = "ctr"          # A/B metric: ctr, mrr or success@k
    k: int = 10                             # results shown per request
    alpha: float = 0.05
    stopping: str = "sequential"            # "sequential" (mSPRT, look any time) or "fixed" (one test at horizon)
    horizon: int | None = None              # events of a fixed-horizon test
    min_events: int = 200                   # events before the first sequential look
    max_events: int | None = None          # a sequential test with no winner after this many events: keep champion
    experiment_name: str | None = None      # None: "<name>-v<N>" of the challenger version
    champion_collection: str | None = None  # served collection of the champion (None: the recorded one)
    challenger_collection: str | None = None  # served name of the challenger's collection (None: "<name>-v<N>")

    def stopping_rule(self) -> dict[str, Any]:
        """The experiment's stopping rule as `StoppingRule` fields."""
        return {"kind": self.stopping, "horizon": self.horizon, "min_events": self.min_events}

    def experiment_fields(self) -> dict[str, Any]:
        """Keyword arguments of `Experiment.new` (besides name and arms)."""
        from embedops.experiment import StoppingRule

        return {"mode": self.mode, "split": self.split, "metric": self.experiment_metric, "k": self.k,
                "alpha": self.alpha, "stopping": StoppingRule(**self.stopping_rule())}

    def check(self) -> None:
        """Refuse bad settings before any work (an experiment with a zero-sized arm, an unknown mode ...)."""
        from embedops.experiment import Experiment, ExperimentError

        for name in ("corpus", "golden"):
            if not getattr(self, name):
                raise InputError("is required", where=f"loop option {name}")
        if not isinstance(self.min_gain, int | float) or self.min_gain != self.min_gain:
            raise InputError(f"must be a number, got {self.min_gain!r}", where="loop option min_gain")
        if self.max_events is not None and self.max_events < 1:
            raise InputError(f"must be >= 1, got {self.max_events!r}", where="loop option max_events")
        if not self.experiment:
            return
        try:  # the same validation the experiment gets later, now: a bad split fails before any training
            Experiment.new("loop-check", {"model": "a", "collection": "a"}, {"model": "b", "collection": "b"},
                           **self.experiment_fields())
        except ExperimentError as exc:
            part = (exc.where or "").split(": ")[-1]
            option = {"metric": "experiment_metric", "stopping.kind": "stopping", "stopping.horizon": "horizon",
                      "stopping.min_events": "min_events"}.get(part, part)
            raise InputError(exc.message, where=f"loop option {option}",
                             hint="or run without an online test (experiment=False, --no-experiment)") from None

    def to_dict(self) -> dict[str, Any]:
        """The JSON-friendly part (what a run stores when it starts; `documents` is not stored)."""
        out = asdict(replace(self, documents=None))
        for name in _NOT_STORED:
            out.pop(name, None)
        for name in ("corpus", "golden", "collection_path"):
            if out[name] is not None:
                out[name] = str(Path(out[name]).resolve())
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, documents: Iterable[Any] | None = None) -> LoopOptions:
        """Rebuild stored options (unknown keys from other versions are ignored)."""
        known = {f.name for f in fields(cls)} - set(_NOT_STORED)
        return cls(**{k: v for k, v in data.items() if k in known}, documents=documents)
