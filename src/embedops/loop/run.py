"""`run_loop`: feedback -> pairs -> train a challenger -> offline gate -> register -> re-embed -> online test -> decide.

Every step is idempotent and recorded in the run folder's `state.json` before the next starts, so a crash (even
kill -9) at any point leaves the champion alias where it was and a rerun on the same folder resumes. Only `decide`
moves the champion, and only to a challenger whose recorded gate passed and that won the online test (or, with
`experiment=False`, right after the gate).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from embedops.errors import InputError
from embedops.loop.feedback import Impression
from embedops.loop.online import champion_collection, decide_step, experiment_step
from embedops.loop.options import LoopOptions
from embedops.loop.state import STEPS, LoopState
from embedops.loop.steps import champion_ref, embed_step, gate_step, pairs_step, register_step, train_step

__all__ = ["LoopOptions", "decide", "decide_loop", "run_loop"]

_STEPS: dict[str, Callable[..., dict[str, Any] | None]] = {
    "pairs": pairs_step, "train": train_step, "gate": gate_step, "register": register_step, "embed": embed_step,
    "experiment": experiment_step, "decide": decide_step}


def _preflight(project: Any, options: LoopOptions) -> None:
    """What a new run needs, checked before any training: the corpus, the golden set, the champion's collection."""
    options.check()
    corpus, golden = Path(options.corpus), Path(options.golden)
    if not corpus.exists():
        raise InputError(f"corpus not found: {corpus}", where="loop option corpus")
    qrels = golden / "qrels" / f"{options.golden_split}.tsv"
    if not golden.is_dir():
        raise InputError(f"golden set not found: {golden} (a BEIR folder)", where="loop option golden")
    if not qrels.is_file():
        raise InputError(f"the golden set has no {options.golden_split} qrels ({qrels})", where="loop option golden")
    if options.experiment:
        champion_collection(project, options, champion_ref(project, options.base))


def _options_for(project: Any, state: LoopState, options: LoopOptions | None, echo) -> LoopOptions:
    """The run's options: those stored when it started (a resume cannot change the test), else the given ones."""
    stored = state.data.get("params", {}).get("options")
    documents = options.documents if options is not None else None
    if stored is not None:
        fixed = LoopOptions.from_dict(stored, documents=documents)
        if options is not None:
            changed = sorted(k for k, v in options.to_dict().items() if stored.get(k, v) != v)
            if changed:
                echo(f"resuming with the options this run started with; ignored: {', '.join(changed)}")
        return fixed
    if options is None:
        raise InputError("a new loop run needs its options (corpus and golden set)", where=str(state.folder))
    # Written with the pairs step's record: a run that failed before it leaves no state to resume.
    state.data["params"] = {"options": options.to_dict(), "metric": options.metric, "min_gain": options.min_gain,
                            "base": options.base, "started": time.time()}
    return options


def run_loop(project: Any, impressions: Iterable[Impression] | None, run_dir: str | Path,
             options: LoopOptions | None, *, echo: Callable[[str], None] = print,
             stop_after: str | None = None) -> LoopState:
    """Run (or resume) the loop in `run_dir`; returns the state (status running, refused, testing, promoted, kept).

    `impressions` are needed only until the pairs step is done; `options` may be None to resume a run (its stored
    options are used either way). `stop_after` ends the run after that step (tests, benchmarks).
    """
    if stop_after is not None and stop_after not in STEPS:
        raise InputError(f"unknown step {stop_after!r} (steps: {', '.join(STEPS)})", where="stop_after")
    state = LoopState(run_dir)
    if options is not None and not state.data.get("params", {}).get("options"):
        _preflight(project, options)  # a new run: refuse bad input before the run folder is created
    with state.locked():
        if state.finished:
            echo(f"loop run already finished: {state.status}")
            return state
        options = _options_for(project, state, options, echo)
        for step in STEPS:
            if not state.done(step):
                outputs = _STEPS[step](project, impressions, state, options, echo)
                if outputs is None:  # the step ended the run (refused, promoted, kept) or it waits (testing)
                    return state
                state.record(step, outputs)
                echo(f"loop step {step}: done")
            if stop_after == step:
                return state
        return state


def decide(project: Any, run_dir: str | Path, *, echo: Callable[[str], None] = print) -> LoopState:
    """Check a testing run's experiment again: promote, keep, or go on testing (the `decide` step alone)."""
    state = LoopState(run_dir)
    if not state.exists:
        raise InputError("no loop run in this folder (no state.json)", where=str(run_dir))
    if not state.finished and not state.done("experiment"):
        done = ", ".join(s for s in STEPS if state.done(s)) or "none"
        raise InputError(f"the run has not started its online test yet (status {state.status}; steps done: {done})",
                         where=str(run_dir), hint=f"resume it with `embedops loop run --run-dir {run_dir}`")
    return run_loop(project, None, run_dir, None, echo=echo)


decide_loop = decide  # the name `Project.decide_loop` and `embedops loop decide` go by
