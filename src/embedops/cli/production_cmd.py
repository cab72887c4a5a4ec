"""`embedops monitor`, `embedops experiment create|list|report|stop`, `embedops events export|prune`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Literal

import typer
from rich.table import Table

from embedops.cli._common import ConfigOpt, console, open_project

experiment_app = typer.Typer(help="A/B and interleaving tests between a champion and a challenger.",
                             no_args_is_help=True)
events_app = typer.Typer(help="The event log: searches, embeddings, feedback, alerts.", no_args_is_help=True)


def _fmt(value, spec: str = ".4f") -> str:
    return "—" if value is None else format(value, spec)


def monitor_command(
    config: ConfigOpt = None,
    window: Annotated[float, typer.Option(help="Window length in seconds.", min=1)] = 3600,
    reference: Annotated[float | None, typer.Option(help="Reference span in seconds from each version's first "
                                                         "event (default: one window).", min=1)] = None,
    since: Annotated[float | None, typer.Option(help="Only events at or after this epoch time.")] = None,
    model_version: Annotated[str | None, typer.Option(help="Only this model version.")] = None,
    html: Annotated[Path | None, typer.Option(help="Write an HTML report with plots here.", dir_okay=False)] = None,
    as_json: Annotated[Path | None, typer.Option("--json", help="Write the report as JSON here.",
                                                 dir_okay=False)] = None,
    no_alerts: Annotated[bool, typer.Option("--no-alerts", help="Do not record alert events.")] = False,
) -> None:
    """Quality signals and embedding drift per model version and window, from the event log; drifted windows are
    recorded as alert events (exit 0; the table says which windows drifted)."""
    from embedops._io import atomic_write_json
    from embedops.config.checks import writable_target

    for target, name in ((html, "--html"), (as_json, "--json")):
        if target is not None:
            writable_target(target, name)
    project = open_project(config)
    report = project.monitor(start=since, window_s=window, reference_s=reference, model_version=model_version,
                             html=html, alert=not no_alerts)
    table = Table(title=f"monitor: {len(report.windows)} windows of {window:g} s", title_justify="left")
    for col in ("model version", "window start", "searches", "top-1 p50", "gap p50", "empty", "errors", "CTR",
                "p95 ms", "drift"):
        table.add_column(col)
    import datetime as dt

    for w in report.windows:
        q = w.quality
        drift = "—" if w.drift is None else (f"[red]DRIFT[/] ({w.drift.votes}/3)" if w.drift.drifted else "no")
        table.add_row(q.model_version[:24], dt.datetime.fromtimestamp(q.start, dt.UTC).strftime("%Y-%m-%d %H:%M"),
                      str(q.searches), _fmt(q.top1.get("p50")), _fmt(q.gap_median), _fmt(q.empty_rate, ".2%"),
                      _fmt(q.error_rate, ".2%"), _fmt(q.ctr, ".2%"), _fmt(q.latency_ms.get("p95"), ".1f"), drift)
    console.print(table if report.windows else "no events in the log yet")
    if report.alerts:
        console.print(f"{len(report.alerts)} new alert(s) recorded")
    if as_json is not None:
        atomic_write_json(as_json, report.to_dict())
    if html is not None:
        console.print(f"wrote {html}")


@experiment_app.command("create")
def create(
    name: Annotated[str, typer.Argument(help="Experiment name (letters, digits, . _ -).")],
    champion_collection: Annotated[str, typer.Option(help="Served collection of the champion.")],
    challenger_collection: Annotated[str, typer.Option(help="Served collection of the challenger.")],
    champion_model: Annotated[str, typer.Option(help="Champion model (name or registry alias).")] = "champion",
    challenger_model: Annotated[str, typer.Option(help="Challenger model.")] = "challenger",
    mode: Annotated[Literal["ab", "interleave"], typer.Option(help="ab (split users) or interleave (team draft).")]
    = "interleave",
    split: Annotated[float, typer.Option(help="Share of users on the challenger (A/B), strictly between 0 and 1.")]
    = 0.5,
    metric: Annotated[Literal["ctr", "mrr", "success@k"], typer.Option(help="Metric of the A/B mode.")] = "ctr",
    k: Annotated[int, typer.Option(help="Results shown per request.", min=1, max=1000)] = 10,
    alpha: Annotated[float, typer.Option(help="Significance level.", min=0.0001, max=0.5)] = 0.05,
    stopping: Annotated[Literal["sequential", "fixed"], typer.Option(help="Stopping rule, stated up front.")]
    = "sequential",
    horizon: Annotated[int | None, typer.Option(help="Events of a fixed-horizon test.", min=1)] = None,
    config: ConfigOpt = None,
) -> None:
    """Define a test; the server answers POST /v1/experiments/NAME/search with it."""
    from embedops.experiment import StoppingRule

    project = open_project(config)
    exp = project.create_experiment(
        name, {"model": champion_model, "collection": champion_collection},
        {"model": challenger_model, "collection": challenger_collection}, mode=mode, split=split, metric=metric,
        k=k, alpha=alpha, stopping=StoppingRule(kind=stopping, horizon=horizon))
    console.print(f"created experiment {exp.name} ({exp.mode}, {exp.stopping.kind} stopping)")


@experiment_app.command("list")
def list_experiments(config: ConfigOpt = None) -> None:
    """Every experiment with its status."""
    table = Table(title="experiments", title_justify="left")
    for col in ("name", "mode", "status", "champion", "challenger", "started"):
        table.add_column(col)
    exps = open_project(config).experiments.list()
    for e in exps:
        table.add_row(e.name, e.mode, e.status, e.champion.collection, e.challenger.collection, str(e.started_at))
    console.print(table if exps else "no experiments")


@experiment_app.command("report")
def report(name: Annotated[str, typer.Argument(help="Experiment name.")], config: ConfigOpt = None,
           as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False) -> None:
    """Winner or none, effect, confidence interval, p-value, and how many more events a decision needs."""
    rep = open_project(config).experiment_report(name)
    if as_json:
        console.print_json(json.dumps(rep.as_dict()))
        return
    d = rep.as_dict()
    d["ci_low"], d["ci_high"] = d["ci"]  # as_dict gives the interval as one pair
    table = Table(title=f"experiment {name}", title_justify="left")
    table.add_column("field")
    table.add_column("value", justify="right")
    for key in ("winner", "effect", "ci_low", "ci_high", "p_value", "events", "decided_at"):
        table.add_row(key, str(d.get(key)))
    table.add_row("more events needed", rep.more_events_text)
    if rep.srm is not None:
        table.add_row("sample-ratio mismatch", f"p={rep.srm.p_value:.3g}" + (" FLAGGED" if rep.srm.flagged else ""))
    console.print(table)


@experiment_app.command("stop")
def stop(name: Annotated[str, typer.Argument(help="Experiment name.")], config: ConfigOpt = None) -> None:
    """Stop a running experiment (the server stops routing it)."""
    open_project(config).experiments.stop(name)
    console.print(f"stopped {name}")


@events_app.command("export")
def export(output: Annotated[Path, typer.Argument(help="Parquet file to write.", dir_okay=False)],
           table: Annotated[Literal["requests", "feedback", "alerts"], typer.Option(help="Which events.")]
           = "requests", config: ConfigOpt = None) -> None:
    """Export events to Parquet (atomically)."""
    from embedops.config.checks import writable_target

    writable_target(output, "OUTPUT")
    n = open_project(config).event_log().export_parquet(output, table=table)
    console.print(f"wrote {n} {table} events to {output}")


@events_app.command("prune")
def prune(older_than_days: Annotated[float, typer.Option(help="Delete events older than this.", min=0)],
          config: ConfigOpt = None) -> None:
    """Delete old events (retention)."""
    removed = open_project(config).event_log().prune(older_than=older_than_days * 86400)
    console.print(f"removed {removed}")


def register(app: typer.Typer) -> None:
    """Add `monitor`, `experiment` and `events`."""
    app.command("monitor")(monitor_command)
    app.add_typer(experiment_app, name="experiment")
    app.add_typer(events_app, name="events")
