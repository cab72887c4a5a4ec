"""`run_loop`: feedback -> pairs -> train a challenger -> offline gate -> register -> re-embed -> online test.

Every step is idempotent and recorded in the run folder's `state.json` before the next starts, so a crash (even
kill -9) at any point leaves the champion alias where it was and a rerun on the same folder resumes. The champion is
never moved here: only `decide` promotes, and only a challenger that passed the gate and won the online test.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from embedops.errors import InputError
from embedops.loop.feedback import Impression, training_rows, write_training_rows
from embedops.loop.gate import offline_gate
from embedops.loop.state import LoopState


@dataclass
class LoopOptions:
    """What a loop run needs besides the project: where the documents and the frozen golden set are."""

    corpus: str | Path                      # documents the clicked ids refer to (BEIR folder or JSONL)
    golden: str | Path                      # frozen golden set (BEIR folder) for the offline gate
    golden_split: str = "test"
    golden_queries: int | None = None       # sample of golden queries (None: all)
    golden_documents: int | None = None     # sample of the golden corpus (None: all)
    metric: str = "ndcg@10"
    min_gain: float = 0.0
    name: str = "loop"
    base: str = "champion"
    train_overrides: dict[str, Any] = field(default_factory=dict)
    documents: Iterable[Any] | None = None  # documents to re-embed for the challenger's collection (None: skip)
    collection_path: str | Path | None = None


def _champion_ref(project: Any, base: str) -> str:
    try:
        return project.registry.ref_of(base)
    except Exception:  # noqa: BLE001 - no registry alias yet: the base is a model name or path
        return base


def run_loop(project: Any, impressions: Iterable[Impression] | None, run_dir: str | Path, options: LoopOptions, *,
             echo: Callable[[str], None] = print, stop_after: str | None = None) -> LoopState:
    """Run (or resume) the loop in `run_dir`; returns the final state. `stop_after` ends the run early (tests)."""
    state = LoopState(run_dir)
    with state.locked():
        if state.status in ("refused", "promoted", "kept"):
            echo(f"loop run already finished: {state.status}")
            return state
        state.data.setdefault("params", {"metric": options.metric, "min_gain": options.min_gain,
                                         "base": options.base, "started": time.time()})
        for step in ("pairs", "train", "gate", "register", "embed"):
            if not state.done(step):
                outputs = _STEPS[step](project, impressions, state, options, echo)
                if outputs is None:  # the step ended the run (e.g. the gate refused)
                    return state
                state.record(step, outputs)
                echo(f"loop step {step}: done")
            if stop_after == step:
                return state
        state.set_status("ready")
        return state


def _pairs(project, impressions, state: LoopState, options: LoopOptions, echo) -> dict[str, Any]:
    if impressions is None:
        raise InputError("a new loop run needs feedback (impressions)", where=str(state.folder))
    rows = training_rows(impressions)
    path = write_training_rows(rows, state.folder / "pairs.jsonl")
    echo(f"{len(rows)} training pairs from clicks -> {path}")
    return {"path": str(path), "rows": len(rows), "champion": _champion_ref(project, options.base)}


def _train(project, impressions, state: LoopState, options: LoopOptions, echo) -> dict[str, Any]:
    pairs = state.output("pairs")
    params = project.train_params(**options.train_overrides)
    report = project.train(pairs["path"], base=pairs["champion"], name=options.name, alias=None, gate=False,
                           params=params, eval_split=None, fmt="feedback", corpus=str(options.corpus),
                           echo=echo)
    if report.version is None:
        raise InputError("training registered no version", where=str(state.folder))
    return {"version": report.version.ref, "path": str(report.version.path)}


def _per_query(project, model: str, options: LoopOptions) -> dict[str, dict[str, float]]:
    encoder = project.load_encoder(model, backend="torch")
    result, _ = project.evaluate_retrieval(options.golden, split=options.golden_split, encoder=encoder,
                                           metrics=[options.metric], sample_queries=options.golden_queries,
                                           sample_documents=options.golden_documents)
    return result.per_query


def _gate(project, impressions, state: LoopState, options: LoopOptions, echo) -> dict[str, Any] | None:
    champion = state.output("pairs")["champion"]
    challenger = state.output("train")
    champ_scores = _per_query(project, champion, options)
    chall_scores = _per_query(project, challenger["path"], options)
    criteria = project.gate(project.load_encoder(challenger["path"], backend="torch"))
    decision = offline_gate(champ_scores, chall_scores, metric=options.metric, min_gain=options.min_gain,
                            criteria=criteria)
    project.registry.record_gate(challenger["version"], {
        "passed": decision.passed, "summary": "; ".join(decision.reasons), "criteria": criteria.get("criteria", []),
        "loop": decision.as_dict()})
    echo(f"offline gate: {'passed' if decision.passed else 'REFUSED'} — {options.metric} champion "
         f"{decision.champion:.4f}, challenger {decision.challenger:.4f} ({decision.diff:+.4f}, "
         f"p={decision.p_value:.3g}); {'; '.join(decision.reasons)}")
    if not decision.passed:
        state.record("gate", decision.as_dict(), status="refused")
        return None
    return decision.as_dict()


def _register(project, impressions, state: LoopState, options: LoopOptions, echo) -> dict[str, Any]:
    ref = state.output("train")["version"]
    version = project.registry.promote(ref, "challenger")
    return {"alias": "challenger", "version": version.ref}


def _embed(project, impressions, state: LoopState, options: LoopOptions, echo) -> dict[str, Any]:
    if options.documents is None:
        return {"collection": None}
    challenger = state.output("train")
    path = Path(options.collection_path or state.folder / "collection")
    encoder = project.load_encoder(challenger["path"], backend="torch")
    collection = project.build_collection(options.documents, path, encoder=encoder, overwrite=True)
    count = collection.info().get("count") if hasattr(collection, "info") else None
    return {"collection": str(path), "count": count}


_STEPS: dict[str, Callable[..., dict[str, Any] | None]] = {
    "pairs": _pairs, "train": _train, "gate": _gate, "register": _register, "embed": _embed}
