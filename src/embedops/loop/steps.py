"""The loop's offline steps: pairs from clicks -> train a challenger -> gate it -> register it -> embed its collection.

Each step takes `(project, impressions, state, options, echo)` and returns the outputs to record, or None when it
ended the run itself (the gate refused). Each is safe to run again after a kill: files are written atomically,
training resumes from its checkpoints (or finds the version a killed run already registered), and the collection is
built beside its folder and swapped in whole.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from embedops.data.records import Document
from embedops.errors import InputError
from embedops.loop.feedback import training_rows, write_training_rows
from embedops.loop.gate import offline_gate
from embedops.loop.options import LoopOptions
from embedops.loop.state import LoopState


def champion_ref(project: Any, base: str) -> str:
    """The registry version `base` names now (`champion` -> `minilm@v1`), or `base` itself when not registered."""
    try:
        return project.registry.ref_of(base)
    except Exception:  # noqa: BLE001 - no registry or no such alias: the base is a model name or path
        return base


def alias_ref(project: Any, alias: str) -> str | None:
    """The version an alias points at, or None when the alias does not exist."""
    info = project.registry.aliases().get(alias)
    return None if info is None else info.get("version")


def collection_name(ref: str) -> str:
    """A served collection name for a version: `tuned@v3` -> `tuned-v3` (names allow no '@')."""
    return ref.replace("@", "-")


def read_corpus(path: str | Path) -> dict[str, Document]:
    """Documents by id from a BEIR folder (corpus.jsonl[.gz]) or a JSONL/CSV/Parquet file."""
    from embedops.data import read_documents
    from embedops.data.beir import read_beir_corpus

    p = Path(path)
    if p.is_dir():
        for name in ("corpus.jsonl", "corpus.jsonl.gz"):
            if (p / name).is_file():
                return read_beir_corpus(p / name)
        raise InputError("no corpus.jsonl in the folder", where=str(p))
    return {d.id: d for d in read_documents(p)}


def pairs_step(project, impressions, state: LoopState, options: LoopOptions, echo) -> dict[str, Any]:
    """Clicks -> training rows (clicked = positive, skipped above a click = hard negative), ids checked."""
    if impressions is None:
        raise InputError("a new loop run needs feedback (impressions)", where=str(state.folder))
    impressions = list(impressions)
    searches, clicks = len(impressions), sum(len(i.clicked_ids) for i in impressions)
    rows = training_rows(impressions)
    corpus = read_corpus(options.corpus)
    # A document deleted since it was clicked must not stop the loop: its rows (or negatives) are left out.
    known = [r for r in rows if r["clicked_id"] in corpus]
    for r in known:
        r["negative_ids"] = [d for d in r["negative_ids"] if d in corpus]
    if not known:
        raise InputError(f"{searches} searches and {clicks} clicks in the feedback, {len(rows) - len(known)} of them "
                         "on documents not in the corpus: nothing to train on", where=str(options.corpus),
                         hint="widen the feedback window (--since/--until) or check --corpus")
    path = write_training_rows(known, state.folder.resolve() / "pairs.jsonl")
    dropped = len(rows) - len(known)
    echo(f"{len(known)} training pairs from {clicks} clicks on {searches} searches"
         + (f" ({dropped} clicks on documents no longer in the corpus left out)" if dropped else "") + f" -> {path}")
    return {"path": str(path), "rows": len(known), "searches": searches, "clicks": clicks, "dropped": dropped,
            "champion": champion_ref(project, options.base), "champion_alias": alias_ref(project, "champion")}


def _registered_by_a_killed_run(project, options: LoopOptions, pairs: dict[str, Any]):
    """A version trained on this run's pairs that a killed run registered before recording it (else None)."""
    for version in reversed(project.registry.versions(options.name) if options.name in project.registry.names()
                            else []):
        m = version.manifest
        if (m.get("data") or {}).get("source") == pairs["path"] and m.get("parent") in (pairs["champion"], None):
            return version
    return None


def train_step(project, impressions, state: LoopState, options: LoopOptions, echo) -> dict[str, Any]:
    """Fine-tune the base on the pairs; register the result (no alias yet: the gate decides)."""
    pairs = state.output("pairs")
    found = _registered_by_a_killed_run(project, options, pairs)
    if found is not None:
        echo(f"found {found.ref}, trained on this run's pairs before a restart: not trained again")
        return {"version": found.ref, "path": str(found.path), "reused": True}
    params = project.train_params(**options.train_overrides)
    # evaluate=False: the loop's own gate (below) compares on the frozen golden set; a held-out slice of a few
    # clicks would cost time and decide nothing.
    report = project.train(pairs["path"], base=pairs["champion"], name=options.name, alias=None, gate=False,
                           params=params, eval_split=None, fmt="feedback", corpus=str(options.corpus),
                           evaluate=False, show_progress=False, echo=echo)
    if report.version is None:
        raise InputError("training registered no version", where=str(state.folder))
    return {"version": report.version.ref, "path": str(report.version.path)}


def _per_query(project, model: str, options: LoopOptions) -> dict[str, dict[str, float]]:
    encoder = project.load_encoder(model, backend="torch")
    result, _ = project.evaluate_retrieval(options.golden, split=options.golden_split, encoder=encoder,
                                           metrics=[options.metric], sample_queries=options.golden_queries,
                                           sample_documents=options.golden_documents)
    return result.per_query


def gate_step(project, impressions, state: LoopState, options: LoopOptions, echo) -> dict[str, Any] | None:
    """Success criteria + paired test against the champion on the golden set; recorded in the manifest."""
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
         f"p={decision.p_value:.3g}, {decision.queries} golden queries); {'; '.join(decision.reasons)}")
    if not decision.passed:
        state.record("gate", decision.as_dict(), status="refused")
        echo(f"champion unchanged ({alias_ref(project, 'champion') or champion})")
        return None
    return decision.as_dict()


def register_step(project, impressions, state: LoopState, options: LoopOptions, echo) -> dict[str, Any]:
    """Point the `challenger` alias at the gated version (the champion does not move here)."""
    ref = state.output("train")["version"]
    version = project.registry.promote(ref, "challenger")
    return {"alias": "challenger", "version": version.ref}


def embed_step(project, impressions, state: LoopState, options: LoopOptions, echo) -> dict[str, Any]:
    """Re-embed the documents with the challenger into its own collection (a new vector space, built beside)."""
    train = state.output("train")
    # The served name is the folder's name: the server maps names to folders under its collections root.
    if options.collection_path:
        path = Path(options.collection_path)
        name = options.challenger_collection or path.name
    else:
        name = options.challenger_collection or collection_name(train["version"])
        path = project.collections_root / name
    documents = options.documents if options.documents is not None else list(read_corpus(options.corpus).values())
    encoder = project.load_encoder(train["path"], backend="torch")
    collection = project.build_collection(documents, path, encoder=encoder, overwrite=True)
    count = len(collection)
    project.serving_map.set(train["version"], name, path)  # this version's collection, whoever promotes it
    echo(f"embedded {count} documents with {train['version']} into collection {name} ({path})")
    return {"collection": name, "path": str(Path(path).resolve()), "count": count}
