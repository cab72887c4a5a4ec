"""`embedops loop run|status|decide`: retrain from clicks, gate, A/B test, promote; resumable run folders."""

from __future__ import annotations

import json
import re
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Literal

import typer
from rich.table import Table

from embedops.cli._common import ConfigOpt, checked, console, err_console, open_project, quiet_libraries
from embedops.errors import InputError

loop_app = typer.Typer(help="The feedback loop: clicks -> challenger -> offline gate -> A/B test -> promote.",
                       no_args_is_help=True)

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_AGO = re.compile(r"^(\d+(?:\.\d+)?)([smhdw])$")


def parse_when(text: str | None, option: str, *, now: float | None = None) -> float | None:
    """Epoch seconds from `1700000000`, an ISO 8601 time (UTC unless it says otherwise) or an age like `24h`, `7d`."""
    if text is None:
        return None
    text = text.strip()
    m = _AGO.match(text)
    if m:
        return (time.time() if now is None else now) - float(m.group(1)) * _UNITS[m.group(2)]
    try:
        return float(text)
    except ValueError:
        pass
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise InputError(f"not a time: {text!r} (use epoch seconds, an ISO 8601 time, or an age such as 24h, 7d)",
                         where=option) from None
    return (when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp()


def _one_metric(value: str) -> None:
    from embedops.config.checks import retrieval_metrics

    if len(retrieval_metrics(value, "--metric")) != 1:
        raise InputError(f"give one metric, got {value!r}", where="--metric")


def _window_text(start: float | None, end: float | None) -> str:
    def fmt(t: float | None, default: str) -> str:
        return default if t is None else datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d %H:%M:%SZ")

    return f"{fmt(start, 'the first event')} .. {fmt(end, 'now')}"


def _echo(message: str) -> None:
    err_console.print(message, highlight=False, markup=False)


def _exit_for(status: str) -> None:
    # A challenger refused by its gate is a normal outcome but not a success: exit 1, as `models promote` does.
    if status == "refused":
        raise typer.Exit(1)


def _check_path(path: Path | None, option: str, *, folder: bool = False) -> Path:
    if path is None:
        raise InputError("is required for a new run", where=option)
    if not path.exists() or (folder and not path.is_dir()):
        raise InputError(f"{'folder' if folder else 'file or folder'} not found: {path}", where=option)
    return path


@loop_app.command("run")
def run(
    config: ConfigOpt = None,
    run_dir: Annotated[Path | None, typer.Option(file_okay=False, help="Run folder (default: resume the unfinished "
                                                                      "run under loop/, else a new one there).")]
    = None,
    corpus: Annotated[Path | None, typer.Option(help="Documents the clicks refer to (BEIR folder or JSONL/CSV/"
                                                     "Parquet); re-embedded for the challenger.")] = None,
    golden: Annotated[Path | None, typer.Option(help="Frozen golden set (BEIR folder) for the offline gate.")] = None,
    golden_split: Annotated[str, typer.Option(help="Qrels split of the golden set.")] = "test",
    golden_queries: Annotated[int | None, typer.Option(min=1, help="Sample of golden queries.")] = None,
    golden_documents: Annotated[int | None, typer.Option(min=1, help="Sample of the golden corpus.")] = None,
    since: Annotated[str | None, typer.Option(help="Feedback from this time: epoch seconds, ISO 8601 or an age "
                                                   "(24h, 7d).")] = None,
    until: Annotated[str | None, typer.Option(help="Feedback before this time (same forms).")] = None,
    model_version: Annotated[str | None, typer.Option(help="Only feedback on this served model version.")] = None,
    metric: Annotated[str, typer.Option(help="Gate metric per golden query, e.g. ndcg@10.",
                                        callback=checked(_one_metric))] = "ndcg@10",
    min_gain: Annotated[float, typer.Option(help="Required mean gain of the metric (negative: a non-inferiority "
                                                 "margin).")] = 0.0,
    name: Annotated[str | None, typer.Option(help="Registry name of the challenger (default: training.name).")]
    = None,
    base: Annotated[str, typer.Option(help="Model tuned and compared with.")] = "champion",
    no_experiment: Annotated[bool, typer.Option("--no-experiment", help="No online test: promote right after the "
                                                                        "gate (no traffic to test on).")] = False,
    mode: Annotated[Literal["ab", "interleave"], typer.Option(help="Online test: ab or interleave.")] = "interleave",
    split: Annotated[float, typer.Option(help="Challenger's share of users (A/B), strictly between 0 and 1.")] = 0.5,
    experiment_metric: Annotated[Literal["ctr", "mrr", "success@k"], typer.Option(help="A/B metric.")] = "ctr",
    k: Annotated[int, typer.Option(min=1, max=1000, help="Results shown per request.")] = 10,
    alpha: Annotated[float, typer.Option(min=0.0001, max=0.5, help="Significance level.")] = 0.05,
    stopping: Annotated[Literal["sequential", "fixed"], typer.Option(help="Stopping rule.")] = "sequential",
    horizon: Annotated[int | None, typer.Option(min=2, help="Events of a fixed-horizon test.")] = None,
    min_events: Annotated[int, typer.Option(min=2, help="Events before the first sequential look.")] = 200,
    max_events: Annotated[int | None, typer.Option(min=1, help="Keep the champion when a sequential test has no "
                                                               "winner after this many events.")] = None,
    experiment_name: Annotated[str | None, typer.Option(help="Experiment name (default: the challenger's "
                                                             "collection name).")] = None,
    champion_collection: Annotated[str | None, typer.Option(help="Served collection of the champion (default: "
                                                                 "the one recorded for its version).")] = None,
    challenger_collection: Annotated[str | None, typer.Option(help="Name of the challenger's new collection.")]
    = None,
    if_drift: Annotated[bool, typer.Option("--if-drift", help="Start a new run only if the monitor recorded a "
                                                              "drift alert in the window.")] = False,
    epochs: Annotated[int | None, typer.Option(min=1)] = None,
    batch_size: Annotated[int | None, typer.Option(min=2)] = None,
    lr: Annotated[float | None, typer.Option(min=1e-12, max=1.0, help="Peak learning rate.")] = None,
    warmup: Annotated[float | None, typer.Option(min=0.0, max=0.99, help="Warm-up share of all steps.")] = None,
    max_tokens: Annotated[int | None, typer.Option(min=8, help="Training sequence length.")] = None,
    loss: Annotated[Literal["mnrl", "cached_mnrl"] | None, typer.Option(help="mnrl or cached_mnrl.")] = None,
    hard_negatives: Annotated[int | None, typer.Option(min=0, help="Mined negatives per example.")] = None,
    checkpoint_steps: Annotated[int | None, typer.Option(min=1)] = None,
    seed: Annotated[int | None, typer.Option(min=0)] = None,
) -> None:
    """Clicks -> pairs -> fine-tune a challenger -> gate it on the golden set -> re-embed -> A/B test -> promote.

    Resumes an unfinished run (killed, or still testing); the champion moves only in the decide step.
    """
    from embedops.loop import LoopOptions, LoopState, unfinished_runs

    project = open_project(config)
    if run_dir is None:
        # An unfinished run past its pairs (killed, or testing) goes on; anything else starts a new folder.
        pending = [r for r in unfinished_runs(project.loop_root) if LoopState(r).done("pairs")]
        run_dir = pending[-1] if pending else project.loop_root / datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    state = LoopState(run_dir)
    if state.done("pairs") and state.data.get("params", {}).get("options"):
        _echo(f"resuming loop run {run_dir} ({state.status}); its options were fixed when it started")
        final = project.run_loop(None, run_dir, None, echo=_echo)
        _summary(final)
        _exit_for(final.status)
        return
    corpus = _check_path(corpus, "--corpus")
    golden = _check_path(golden, "--golden", folder=True)
    start, end = parse_when(since, "--since"), parse_when(until, "--until")
    if if_drift:
        alerts = project.drift_alerts(start=start, end=end)
        if not alerts:
            console.print(f"no drift alert, nothing to do (window {_window_text(start, end)})")
            return
        _echo(f"{len(alerts)} drift alert(s) in the window; latest: {alerts[-1].message}")
    overrides = {"epochs": epochs, "batch_size": batch_size, "learning_rate": lr, "warmup_ratio": warmup,
                 "max_seq_length": max_tokens, "loss": loss, "hard_negatives": hard_negatives,
                 "checkpoint_steps": checkpoint_steps, "seed": seed}
    options = LoopOptions(
        corpus=corpus, golden=golden, golden_split=golden_split, golden_queries=golden_queries,
        golden_documents=golden_documents, metric=metric, min_gain=min_gain, name=name or project.config.training.name,
        base=base, train_overrides={k: v for k, v in overrides.items() if v is not None},
        experiment=not no_experiment, mode=mode, split=split, experiment_metric=experiment_metric, k=k, alpha=alpha,
        stopping=stopping, horizon=horizon, min_events=min_events, max_events=max_events,
        experiment_name=experiment_name, champion_collection=champion_collection,
        challenger_collection=challenger_collection)
    try:
        options.check()
    except InputError as exc:  # name the command-line option, not the library field
        field = (exc.where or "").removeprefix("loop option ")
        raise InputError(exc.message, where=f"--{field.replace('_', '-')}", hint=exc.hint) from None
    impressions = project.impressions(start=start, end=end, model_version=model_version)
    clicks = sum(len(i.clicked_ids) for i in impressions)
    if not clicks:
        raise InputError(f"no feedback to learn from in the window {_window_text(start, end)}: {len(impressions)} "
                         f"searches and {clicks} clicks found", where="--since/--until",
                         hint="widen the window, or wait for traffic with clicks (POST /v1/feedback)")
    quiet_libraries()
    _echo(f"loop run {run_dir}: {len(impressions)} searches, {clicks} clicks in {_window_text(start, end)}")
    final = project.run_loop(impressions, run_dir, options, echo=_echo)
    _summary(final)
    _exit_for(final.status)


def _step_summary(step: str, out: dict[str, Any]) -> str:
    if step == "pairs":
        return f"{out.get('rows')} pairs from {out.get('clicks')} clicks on {out.get('searches')} searches; base " \
               f"{out.get('champion')}"
    if step == "train":
        return str(out.get("version")) + (" (found after a restart)" if out.get("reused") else "")
    if step == "gate":
        verdict = "passed" if out.get("passed") else "REFUSED"
        return f"{verdict}: {out.get('metric')} {out.get('champion', 0):.4f} -> {out.get('challenger', 0):.4f} " \
               f"({out.get('diff', 0):+.4f}, p={out.get('p_value', 1):.3g}, {out.get('queries')} queries)"
    if step == "register":
        return f"{out.get('alias')} -> {out.get('version')}"
    if step == "embed":
        return f"{out.get('count')} documents -> collection {out.get('collection')}"
    if step == "experiment":
        if out.get("skipped"):
            return str(out.get("reason"))
        return f"{out.get('name')} ({out.get('mode')}): {out['champion']['collection']} vs " \
               f"{out['challenger']['collection']}"
    if step == "decide":
        return f"{out.get('action')}: {out.get('reason')}"
    return json.dumps(out)[:120]


def _summary(state) -> None:
    from embedops.loop import STEPS

    table = Table(title=f"loop run {state.folder}: {state.status}", title_justify="left")
    for col in ("step", "finished", "outputs"):
        table.add_column(col)
    times = state.data.get("finished_at", {})
    for step in STEPS:
        if state.done(step):
            at = times.get(step)
            when = datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%d %H:%M:%S") if at else "—"
            table.add_row(step, when, _step_summary(step, state.output(step)))
        else:
            table.add_row(step, "—", "")
    console.print(table)
    checks = state.data.get("checks") or []
    if state.status == "testing" and checks:
        console.print(f"last look: {checks[-1].get('note')}")
    if state.status == "testing":
        console.print(f"still testing: run `embedops loop decide {state.folder}` later")


@loop_app.command("status")
def status(run_dir: Annotated[Path | None, typer.Argument(file_okay=False, help="Run folder (default: list the "
                                                                                 "runs under loop/).")] = None,
           config: ConfigOpt = None,
           as_json: Annotated[bool, typer.Option("--json", help="The run's state.json as it is.")] = False) -> None:
    """Steps done with their outputs and times, and the run's status (running, refused, testing, promoted, kept)."""
    from embedops.loop import LoopState

    if run_dir is None:
        root = open_project(config).loop_root
        runs = sorted(p for p in root.iterdir() if (p / "state.json").is_file()) if root.is_dir() else []
        table = Table(title=f"loop runs in {root}", title_justify="left")
        table.add_column("run")
        table.add_column("status")
        for folder in runs:
            try:
                table.add_row(folder.name, LoopState(folder).status)
            except InputError as exc:  # one damaged run does not hide the others
                table.add_row(folder.name, f"unreadable: {exc.message}")
        console.print(table if runs else f"no loop runs in {root}")
        return
    state = LoopState(run_dir)
    if not state.exists:
        raise InputError("no loop run in this folder (no state.json)", where=str(run_dir))
    if as_json:
        console.print_json(json.dumps(state.data, default=str))
        return
    _summary(state)


@loop_app.command("decide")
def decide(run_dir: Annotated[Path, typer.Argument(file_okay=False, help="Run folder of a testing run.")],
           config: ConfigOpt = None) -> None:
    """Read the run's experiment again: promote the challenger if it won, keep the champion, or keep testing."""
    project = open_project(config)
    final = project.decide_loop(run_dir, echo=_echo)
    _summary(final)
    _exit_for(final.status)


def register(app: typer.Typer) -> None:
    """Add `embedops loop`."""
    app.add_typer(loop_app, name="loop")

