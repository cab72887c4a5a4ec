"""The loop's online half: start an A/B or interleaving test of the two collections, then decide.

`decide` is the only place the champion alias moves, and only for a challenger whose recorded gate passed (read
again from the registry manifest, never from the run's own notes) and that won the online test (or, with no online
test, right after the gate). The old champion stays a registry version: `embedops models rollback champion` brings
it back in one command, and the serving map then answers with its collection again.
"""

from __future__ import annotations

import contextlib
from typing import Any

from embedops.errors import InputError
from embedops.loop.options import LoopOptions
from embedops.loop.state import LoopState
from embedops.loop.steps import alias_ref

WAITING = "testing"


def champion_collection(project: Any, options: LoopOptions, champion: str) -> str:
    """The served collection of the champion: the option, else what the serving map recorded for its version."""
    if options.champion_collection:
        return options.champion_collection
    entry = project.serving_map.get(champion)
    if entry is None:
        raise InputError(f"no collection is recorded for the champion {champion}: the online test cannot route "
                         "its traffic", where="loop option champion_collection",
                         hint="pass --champion-collection NAME (the served collection the champion answers from), "
                              "or --no-experiment to promote on the offline gate alone")
    return str(entry["collection"])


def experiment_step(project, impressions, state: LoopState, options: LoopOptions, echo) -> dict[str, Any]:
    """Create (or, after a restart, adopt) the experiment champion collection vs challenger collection."""
    from embedops.experiment import Arm, ExperimentError

    champion = state.output("pairs")["champion"]
    challenger = state.output("train")["version"]
    embed = state.output("embed")
    if not options.experiment:
        if options.champion_collection:  # remembered, so a rollback later finds the old champion's collection
            project.serving_map.set(champion, options.champion_collection)
        echo("no online test: the gate's decision stands")
        return {"skipped": True, "reason": "no online test (experiment off): promoted on the offline gate"}
    if not embed.get("collection"):
        raise InputError("the online test needs the challenger's collection, and none was embedded",
                         where=str(state.folder), hint="give the documents to embed (--corpus)")
    champ_col = champion_collection(project, options, champion)
    name = options.experiment_name or embed["collection"]
    arms = (Arm(champion, champ_col), Arm(challenger, embed["collection"]))
    try:
        exp = project.create_experiment(name, arms[0], arms[1], **options.experiment_fields())
    except ExperimentError:
        exp = project.experiments.get(name)  # created by this run before a kill, or a name already taken
        if (exp.champion, exp.challenger) != arms or exp.status != "running":
            raise ExperimentError(f"an experiment called {name!r} already exists (arms {exp.champion.collection} vs "
                                  f"{exp.challenger.collection}, {exp.status})", where=f"experiment {name!r}",
                                  hint="pass another --experiment-name") from None
    project.serving_map.set(champion, champ_col)
    state.set_status(WAITING)
    echo(f"experiment {name} started ({exp.mode}, {exp.stopping.kind} stopping): champion {champion} on "
         f"{champ_col} vs challenger {challenger} on {embed['collection']}; serve it at "
         f"POST /v1/experiments/{name}/search, then `embedops loop decide {state.folder}`")
    return {"name": name, "mode": exp.mode, "champion": {"model": champion, "collection": champ_col},
            "challenger": {"model": challenger, "collection": embed["collection"]}}


def _stop(project: Any, outputs: dict[str, Any]) -> None:
    from embedops.experiment import ExperimentError

    name = outputs.get("name")
    if name:
        with contextlib.suppress(ExperimentError):  # already stopped (a rerun after a kill, or by hand)
            project.experiments.stop(name)


def _inconclusive(report: Any, options: LoopOptions) -> str | None:
    """Why an undecided test is over (the champion stays), or None when more events may still decide it."""
    if options.max_events is not None and report.events >= options.max_events:
        return f"no winner after {report.events} events (max_events {options.max_events})"
    floor = options.horizon if options.stopping == "fixed" and options.horizon else options.min_events
    if report.more_events_needed is None and report.events >= floor:
        return f"no winner at {report.events} events, and more events would not decide it"
    return None


def decide_step(project, impressions, state: LoopState, options: LoopOptions, echo) -> None:
    """Promote a gated challenger that won (or had no online test), keep the champion, or wait for more events."""
    from embedops.experiment import CHALLENGER, CHAMPION

    ref = state.output("train")["version"]
    pairs, online, embed = state.output("pairs"), state.output("experiment"), state.output("embed")
    registry = project.registry
    current = alias_ref(project, "champion")

    def finish(action: str, reason: str, report: Any = None, **extra: Any) -> None:
        _stop(project, online)
        outputs = {"action": action, "reason": reason, "challenger": ref, "champion": alias_ref(project, "champion"),
                   "report": None if report is None else report.as_dict(), **extra}
        state.record("decide", outputs, status=action)
        echo(f"decision: {action} — {reason}")

    gate = registry.get(ref).manifest.get("gate")
    if not (isinstance(gate, dict) and gate.get("passed") is True):
        summary = gate.get("summary") if isinstance(gate, dict) else "no gate recorded"
        return finish("refused", f"{ref} has no passed gate in its registry manifest ({summary}): never promoted")
    if "champion_alias" in pairs and current != pairs["champion_alias"]:
        return finish("kept", f"the champion changed since this run started ({pairs['champion_alias']} -> "
                              f"{current}): the gate compared {ref} with the old one; start a new run")
    report = None
    if not online.get("skipped"):
        report = project.experiment_report(online["name"])
        if report.winner == CHAMPION:
            return finish("kept", f"the champion won the online test: {report.note}", report)
        if report.winner != CHALLENGER:
            over = _inconclusive(report, options)
            if over:
                return finish("kept", f"{over}: {report.note}", report)
            state.add_check({"events": report.events, "winner": report.winner, "p_value": report.p_value,
                             "more_events_needed": report.more_events_needed, "note": report.note})
            state.set_status(WAITING)
            echo(f"experiment {online['name']}: {report.note}; still testing — run `embedops loop decide "
                 f"{state.folder}` again later")
            return None
    version = registry.promote(ref, "champion")  # refuses a failed gate and changed files once more
    served = project.serving_map.set(version.ref, embed["collection"], embed.get("path"))
    why = "passed the offline gate (no online test)" if report is None else f"won the online test: {report.note}"
    back = f"`embedops models rollback champion` restores {current}" if current else "there was no champion before"
    finish("promoted", f"{ref} {why}; champion {current or '(none)'} -> {version.ref}, served by collection "
                       f"{served['collection']}; {back}", report,
           previous=current, collection=served["collection"], collection_path=served["path"])
    return None
