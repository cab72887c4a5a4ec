"""One training run end to end: read data, hold out a test, mine hard negatives, train, compare, register.

The run works in `<registry>/.runs/<run id>/` (the id hashes base model, data and parameters), so the same
command after a kill resumes from its last checkpoint; the version is registered only after evaluation
succeeds, by a rename, and the work folder is then removed.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from embedops.data.beir import load_beir
from embedops.data.readers import read_documents
from embedops.data.records import Document
from embedops.errors import InputError
from embedops.registry import Registry, base_model_info, library_versions
from embedops.registry.registry import ModelVersion, now
from embedops.train.evaluate import compare_retrieval, compare_sts, heldout_split
from embedops.train.mining import mine_hard_negatives
from embedops.train.pairs import TrainingSet, load_training_set
from embedops.train.trainer import TrainParams, clear_checkpoints, train_model

log = logging.getLogger(__name__)


@dataclass
class RunReport:
    """What `run_training` did: the registered version, evaluation, timings."""

    version: ModelVersion | None
    manifest: dict[str, Any]
    timings: dict[str, float] = field(default_factory=dict)


def run_id(base: str | None, data_fingerprint: str, params: TrainParams, extra: dict[str, Any]) -> str:
    """Stable id of a run: same base, data and parameters resume the same work folder."""
    # The checkpoint interval does not change the model: a rerun may save more or less often and still resume.
    shape = {k: v for k, v in params.as_dict().items() if k != "checkpoint_steps"}
    blob = json.dumps([base or "default", data_fingerprint, shape, extra], sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def _heldout(train: TrainingSet, data: Path, fmt: str, eval_split: str | None, eval_fraction: float):
    """The held-out test: the BEIR folder's own test split when it has one, else a slice of the data."""
    if data.is_dir() and fmt in ("auto", "beir") and eval_split and (data / "qrels" / f"{eval_split}.tsv").is_file():
        test = load_beir(data, eval_split)
        overlap = set(test.queries) & set(train.query_ids)
        if overlap:
            raise InputError(f"{len(overlap)} queries are in both the training and the {eval_split} qrels",
                             where=str(data))
        return train, test
    return heldout_split(train, eval_fraction)


def _read_corpus(path: Path) -> dict[str, Document]:
    """Documents by id from a BEIR folder's corpus or a JSONL/CSV/Parquet file (for feedback ids and mining)."""
    if path.is_dir():
        from embedops.data.beir import _find, read_beir_corpus

        return read_beir_corpus(_find(path, "corpus"))
    return {d.id: d for d in read_documents(path)}


def _log_mlflow(manifest: dict[str, Any]) -> None:
    """Log params and metrics to MLflow when it is installed and MLFLOW_TRACKING_URI is set (optional)."""
    if not os.environ.get("MLFLOW_TRACKING_URI"):
        return
    try:
        import mlflow
    except ImportError:
        return
    try:
        with mlflow.start_run(run_name=manifest.get("ref")):
            mlflow.log_params({k: str(v) for k, v in manifest.get("params", {}).items()})
            ev = manifest.get("evaluation") or {}
            mlflow.log_metrics({f"before_{k}": v for k, v in (ev.get("before") or {}).items()})
            mlflow.log_metrics({f"after_{k}": v for k, v in (ev.get("after") or {}).items()})
    except Exception as exc:  # tracking is a convenience: never fail a registered run over it
        log.warning("MLflow logging failed: %s", exc)


def register_trained(registry: Registry, model_dir: Path, work: Path, name: str, manifest: dict[str, Any], *,
                     alias: str | None = None) -> ModelVersion:
    """Register a finished run's model and remove its work folder.

    The model folder is taken over (`move`: hard links, no copy) and removed only once the version is committed,
    so a kill at any point leaves the trained model either in the work folder (the rerun resumes) or registered.
    """
    version = registry.register(model_dir, name, manifest, move=True, alias=alias)
    clear_checkpoints(work)
    return version


def run_training(
    data: str | Path,
    *,
    base: str | None = None,
    name: str = "tuned",
    registry_root: str | Path = "models",
    params: TrainParams = TrainParams(),
    fmt: str = "auto",
    split: str = "train",
    eval_split: str | None = "test",
    eval_fraction: float = 0.1,
    sts_path: str | Path | None = None,
    alias: str | None = None,
    corpus: str | Path | None = None,
    resume: bool = True,
    evaluate: bool = True,
    show_progress: bool = True,
    echo=print,
    resolver=None,
) -> RunReport:
    """Train `base` on `data` and register the result as the next version of `name`.

    `resolver` maps registry names (`champion`) to folders (a Project passes its registry's); `alias` moves an alias
    with no quality gate, so `Project.train` (train -> evaluate -> gate -> register -> promote) leaves it None.
    """
    from embedops.models import load_encoder

    t0 = time.perf_counter()
    timings: dict[str, float] = {}
    data = Path(data)
    started_at = now()
    docs = _read_corpus(Path(corpus)) if corpus else None
    full = load_training_set(data, kind=fmt, split=split, corpus=docs)
    if docs and not full.corpus:
        full.corpus = docs  # mine negatives from the whole collection, not only the training texts
    train, test = _heldout(full, data, fmt, eval_split, eval_fraction) if evaluate else (full, None)
    if len(train) < params.batch_size:
        raise InputError(f"{len(train)} training examples (after holding out a test) but batch size "
                         f"{params.batch_size}", where=str(data),
                         hint=f"use --batch-size {max(2, len(train))} or more data")
    registry = Registry(registry_root)
    base_info = base_model_info(base, resolver)
    # Resolve aliases now: promoting another version mid-run must not change what this run tuned.
    base_spec = base_info["location"] if base else None
    fingerprint = full.fingerprint()
    work = Path(registry_root) / ".runs" / run_id(base_info["location"], fingerprint, params,
                                                   {"eval_split": eval_split, "eval_fraction": eval_fraction})
    work.mkdir(parents=True, exist_ok=True)
    echo(f"run folder {work} ({len(train)} training examples"
         + (f", {len(test.queries)} held-out queries)" if test else ", no held-out test)"))
    base_encoder = None
    mining = None
    if params.hard_negatives > 0:
        t = time.perf_counter()
        base_encoder = load_encoder(base_spec)
        train, stats = mine_hard_negatives(base_encoder, train, num_negatives=params.hard_negatives,
                                           seed=params.seed)
        mining = stats.as_dict()
        timings["mining_seconds"] = round(time.perf_counter() - t, 1)
        echo(f"mined {params.hard_negatives} hard negative(s) for {stats.examples} examples in "
             f"{timings['mining_seconds']} s ({stats.random_fallback} random fallbacks)")
    outcome = train_model(base_spec, train, work, params, resume=resume, show_progress=show_progress)
    timings["train_seconds"] = round(outcome.seconds, 1)
    if outcome.resumed_from:
        echo(f"resumed from {outcome.resumed_from}")
    evaluation = sts = None
    if test is not None:
        t = time.perf_counter()
        base_encoder = base_encoder or load_encoder(base_spec)
        tuned = load_encoder(str(outcome.model_dir))
        evaluation = compare_retrieval(base_encoder, tuned, test, show_progress=show_progress)
        if sts_path:
            from embedops.data import load_sts

            sts = compare_sts(base_encoder, tuned, load_sts(sts_path))
        timings["eval_seconds"] = round(time.perf_counter() - t, 1)
    manifest = {
        "kind": "trained",
        "base_model": base_info,
        "parent": base_info["version"] if base_info.get("version", "").count("@") else None,
        "data": {"source": full.source, "fingerprint": f"sha256:{fingerprint}", "examples": len(full),
                 "trained_examples": len(train), "format": fmt, "split": split},
        "params": params.as_dict(),
        "mining": mining,
        "training": outcome.as_dict(),
        "evaluation": evaluation,
        "sts": sts,
        "libraries": library_versions(),
        "started_at": started_at,
        "created_at": now(),
        "timings": timings,
    }
    version = register_trained(registry, outcome.model_dir, work, name, manifest, alias=alias)
    timings["total_seconds"] = round(time.perf_counter() - t0, 1)
    _log_mlflow(version.manifest)
    return RunReport(version=version, manifest=version.manifest, timings=timings)
