"""The production half of `Project`: event log, monitoring, experiments and the feedback loop.

A mixin so `project.py` stays one concept per file; `Project` is the only class that uses it. The server, the CLI
and users' own code reach these through the same `Project` methods.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from embedops.errors import InputError


class ProductionMixin:
    """Event log, monitor, experiments, loop; needs `self.config` and `self._lock` from `Project`."""

    config: Any
    _lock: threading.RLock

    # -- events ------------------------------------------------------------------------------
    def events_url(self) -> str | None:
        """Where events go (`serving.events`): a SQLite file resolved against the project file, or a URL; None: off."""
        target = self.config.serving.events
        if not target or target.strip().lower() in ("off", "none", "false", "0"):
            return None
        return target if "://" in target else str(self.config.resolve(target))

    def event_log(self, *, required: bool = True):
        """The project's event log, opened once and shared (thread-safe; writes batched on its own thread)."""
        from embedops.events import EventLog

        with self._lock:
            log = getattr(self, "_event_log", None)
            if log is None:
                url = self.events_url()
                if url is None:
                    if required:
                        raise InputError("the event log is off (serving.events is empty)", where="serving.events")
                    return None
                s = self.config.serving
                retention = s.events_retention_days * 86400 if s.events_retention_days else None
                log = EventLog(url, max_queue=s.events_queue, retention=retention)
                self._event_log = log
        return log

    def close_events(self) -> None:
        """Flush and close the event log (Project.close calls it)."""
        with self._lock:
            log, self._event_log = getattr(self, "_event_log", None), None
        if log is not None:
            log.close()

    # -- monitoring --------------------------------------------------------------------------
    def monitor(self, *, start: float | None = None, end: float | None = None, window_s: float = 3600,
                reference_s: float | None = None, model_version: str | None = None, html: str | Path | None = None,
                alert: bool = True, min_vectors: int = 50):
        """Quality and drift per model version and window from the event log; alerts logged; optional HTML report."""
        from embedops.monitor import Monitor, write_html_report

        if window_s <= 0:
            raise InputError("must be > 0", where="window_s")
        log = self.event_log()
        log.flush()
        report = Monitor(log, window_s=window_s, reference_s=reference_s or window_s,
                         min_vectors=min_vectors).run(start, end, model_version=model_version, alert=alert)
        if html is not None:
            write_html_report(html, report)
        return report

    # -- experiments -------------------------------------------------------------------------
    @property
    def experiments(self):
        """The project's experiment store (`experiments/` beside the project file)."""
        from embedops.experiment import ExperimentStore

        return ExperimentStore(self.config.resolve("experiments"))

    def create_experiment(self, name: str, champion: dict[str, str], challenger: dict[str, str], **options: Any):
        """Define and store an A/B or interleaving test (validated: a zero-sized arm is refused)."""
        from embedops.experiment import Experiment

        return self.experiments.create(Experiment.new(name, champion, challenger, **options))

    def experiment_outcomes(self, name: str) -> list[Any]:
        """What users were shown and clicked in experiment `name`, rebuilt from the event log."""
        from embedops.experiment import Outcome

        out = []
        for req, feedback in self.event_log().searches_with_feedback(experiment=name):
            if not req.user_id or not req.arm:
                continue
            clicks = tuple(f.doc_id for f in feedback if f.kind in ("click", "relevant"))
            out.append(Outcome(req.user_id, req.arm, tuple(req.result_ids), clicks, req.request_id,
                               tuple(req.teams) if req.teams else None))
        return out

    def experiment_report(self, name: str):
        """The experiment's current decision: winner or none, effect, CI, p-value, events still needed."""
        from embedops.experiment import analyze

        experiment = self.experiments.get(name)
        self.event_log().flush()
        return analyze(experiment, self.experiment_outcomes(name))

    def experiment_present(self, name: str, user_id: str, request_id: str, query: str,
                           search: Callable[[str, str, int], Sequence[Any]]) -> tuple[str, list[Any], list[str] | None]:
        """Serve one request of a running experiment: (arm, hits, teams). `search(side, query, k)` ranks for an arm.

        A/B: the user's sticky arm answers. Interleaving: both arms rank and team-draft merges them, seeded by the
        request id so the attribution can be rebuilt later.
        """
        from embedops.experiment import CHALLENGER, CHAMPION, INTERLEAVED, assign, interleave_seed, team_draft

        experiment = self.experiments.get(name)
        if experiment.status != "running":
            raise InputError(f"experiment {name!r} is {experiment.status}", where="experiment")
        if not user_id:
            raise InputError("an experiment needs a user id to assign an arm", where="user")
        k = experiment.k
        if experiment.mode == "interleave":
            a = list(search(CHAMPION, query, k))
            b = list(search(CHALLENGER, query, k))
            by_id = {h.id: h for h in b} | {h.id: h for h in a}
            mixed = team_draft([h.id for h in a], [h.id for h in b], seed=interleave_seed(name, request_id),
                               length=k)
            return INTERLEAVED, [by_id[i] for i in mixed.results], list(mixed.teams)
        arm = assign(experiment, user_id)
        return arm, list(search(arm, query, k))[:k], None

    # -- the loop ----------------------------------------------------------------------------
    def run_loop(self, impressions: Iterable[Any] | None, run_dir: str | Path, options: Any, *,
                 echo: Callable[[str], None] = print, stop_after: str | None = None):
        """feedback -> pairs -> challenger -> gate -> register -> re-embed -> A/B -> decide; resumable in `run_dir`.

        Returns the run's `LoopState` (status refused, testing, promoted or kept); `options` None resumes a run.
        """
        from embedops.loop.run import run_loop

        return run_loop(self, impressions, run_dir, options, echo=echo, stop_after=stop_after)

    def decide_loop(self, run_dir: str | Path, *, echo: Callable[[str], None] = print):
        """Check a testing loop run's experiment again: promote the challenger, keep the champion, or wait."""
        from embedops.loop.run import decide

        return decide(self, run_dir, echo=echo)

    @property
    def loop_root(self) -> Path:
        """Where `embedops loop run` keeps its run folders by default (`loop/` beside the project file)."""
        return self.config.resolve("loop")

    @property
    def collections_root(self) -> Path:
        """Where served collections live (`serving.collections_root`); the loop embeds challengers there."""
        return self.config.resolve(self.config.serving.collections_root)

    @property
    def serving_map(self):
        """Which collection serves each model version (`<collections root>/serving.json`)."""
        from embedops.loop.serving import ServingMap

        return ServingMap(self.collections_root)

    def served_collection(self, model: str = "champion") -> dict[str, Any] | None:
        """The collection recorded for the version `model` names now ({collection, path, at}), or None."""
        try:
            ref = self.registry.ref_of(model)
        except Exception:  # noqa: BLE001 - not a registry name: nothing can be recorded for it
            return None
        entry = self.serving_map.get(ref)
        return None if entry is None else {"model": ref, **entry}

    def drift_alerts(self, *, start: float | None = None, end: float | None = None) -> list[Any]:
        """Drift alerts the monitor recorded for windows overlapping [start, end) (the loop's drift trigger)."""
        out = []
        for alert in self.event_log().alerts(kind="drift"):
            lo = alert.window_start if alert.window_start is not None else alert.time
            hi = alert.window_end if alert.window_end is not None else alert.time
            if (start is None or hi > start) and (end is None or lo < end):
                out.append(alert)
        return out

    def impressions(self, *, start: float | None = None, end: float | None = None,
                    model_version: str | None = None) -> list[Any]:
        """Served searches with their clicks from the event log, as the loop's training input."""
        from embedops.loop import Impression

        out = []
        for req, feedback in self.event_log().searches_with_feedback(start, end, model_version=model_version):
            if req.query and req.result_ids:
                out.append(Impression(req.query, tuple(req.result_ids),
                                      frozenset(f.doc_id for f in feedback if f.kind in ("click", "relevant")),
                                      request_id=req.request_id, user_id=req.user_id or ""))
        return out
