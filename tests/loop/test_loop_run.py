"""`embedops loop run|status|decide` end to end on real clicks, a real model, a real registry and event log.

Three tiny trainings (12 SciFact queries clicked once: one step of batch 12, 64 tokens): a good challenger
promoted after a kill -9 mid-training and a resume, a challenger trained on shuffled clicks refused by the gate,
and a challenger that goes through an interleaving experiment and is promoted by `loop decide`, then rolled back
in one command.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from embedops import Project
from embedops.cli.main import app
from embedops.loop import LoopState
from embedops.registry import integrity

from .conftest import log_clicks, make_project

runner = CliRunner()
# One optimiser step on the 12 clicks (no warm-up: a single step would have a learning rate of 0).
TRAIN = ["--name", "tuned", "--epochs", "1", "--batch-size", "12", "--warmup", "0", "--max-tokens", "64",
         "--hard-negatives", "0"]


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def _champion(cfg: Path) -> str:
    return Project.open(cfg).registry.aliases()["champion"]["version"]


def _data_args(sample) -> list:
    return ["--corpus", sample.root, "--golden", sample.root]


def _lines(proc: subprocess.Popen) -> queue.Queue:
    out: queue.Queue = queue.Queue()

    def pump() -> None:
        for line in proc.stdout:
            out.put(line)
        out.put(None)

    threading.Thread(target=pump, daemon=True).start()
    return out


def test_kill_9_during_training_leaves_the_champion_and_a_rerun_resumes_and_promotes(tmp_path, scifact_sample):
    cfg = make_project(tmp_path / "p")
    log_clicks(tmp_path / "p", scifact_sample)
    registry = Project.open(cfg).registry
    champion_files = dict(registry.get("champion").manifest["files"])
    run = tmp_path / "p" / "loop" / "r1"
    # A non-inferiority margin of 0.01: one optimiser step barely moves the model; what is tested here is that
    # the champion moves only through a passed gate, after a kill, without redoing finished steps.
    args = ["loop", "run", "-c", cfg, "--run-dir", run, *_data_args(scifact_sample), "--no-experiment",
            "--min-gain", "-0.01", *TRAIN]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "NO_COLOR": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "embedops.cli.main", *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env=env)
    lines, seen = _lines(proc), []
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
            assert line is not None, "".join(seen)
            seen.append(line)
            if line.startswith("run folder "):  # the trainer's work folder exists: training is under way
                break
        else:
            pytest.fail("training never started:\n" + "".join(seen))
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
    state = LoopState(run)
    assert state.done("pairs") and not state.done("train"), state.data
    pairs_at, pairs_mtime = state.data["finished_at"]["pairs"], (run / "pairs.jsonl").stat().st_mtime_ns
    # The champion is untouched: same alias, same files (pinned sha256 verified), no new version, no debris.
    assert _champion(cfg) == "minilm@v1"
    assert registry.verify("champion").manifest["files"] == champion_files
    assert [v.ref for v in registry.versions()] == ["minilm@v1"]
    assert integrity.debris(registry.root) == []

    res = invoke("loop", "run", "-c", cfg, "--run-dir", run)  # no data options: the run's own are stored
    assert res.exit_code == 0, res.output
    assert "resuming loop run" in res.output and "training pairs from" not in res.output
    state = LoopState(run)
    assert state.status == "promoted", state.data
    assert state.data["finished_at"]["pairs"] == pairs_at  # not redone
    assert (run / "pairs.jsonl").stat().st_mtime_ns == pairs_mtime
    assert all(state.data["finished_at"][s] > pairs_at for s in ("train", "gate", "register", "embed", "decide"))
    tuned = state.output("train")["version"]
    assert tuned == "tuned@v1"
    manifest = registry.get(tuned).manifest
    assert manifest["gate"]["passed"] is True and manifest["gate"]["loop"]["queries"] == 20
    assert manifest["parent"] == "minilm@v1"
    assert _champion(cfg) == tuned
    project = Project.open(cfg)
    assert project.served_collection("champion")["collection"] == "tuned-v1"
    assert (tmp_path / "p" / "collections" / "tuned-v1").is_dir()
    assert state.output("embed")["count"] == len(scifact_sample.doc_ids)

    shown = invoke("loop", "status", run)
    assert shown.exit_code == 0 and "promoted" in shown.output and "tuned-v1" in shown.output, shown.output
    again = invoke("loop", "run", "-c", cfg, "--run-dir", run)
    assert again.exit_code == 0 and "already finished: promoted" in again.output
    back = invoke("models", "rollback", "champion", "-c", cfg)
    assert back.exit_code == 0, back.output
    assert _champion(cfg) == "minilm@v1"


def test_a_challenger_trained_on_shuffled_clicks_is_refused_and_the_champion_stays(tmp_path, scifact_sample):
    cfg = make_project(tmp_path / "p")
    log_clicks(tmp_path / "p", scifact_sample, shuffled=True)
    run = tmp_path / "p" / "loop" / "bad"
    # A high learning rate makes one step on noise do real damage (a deliberately worse challenger).
    res = invoke("loop", "run", "-c", cfg, "--run-dir", run, *_data_args(scifact_sample), "--no-experiment",
                 *TRAIN, "--lr", "1e-3")
    assert res.exit_code == 1, res.output  # refused: not a success
    assert "offline gate: REFUSED" in res.output
    state = LoopState(run)
    assert state.status == "refused" and not state.done("register") and not state.done("decide")
    gate = state.output("gate")
    assert gate["passed"] is False and gate["diff"] < 0, gate
    registry = Project.open(cfg).registry
    assert registry.get("tuned@v1").manifest["gate"]["passed"] is False
    assert _champion(cfg) == "minilm@v1"
    assert "challenger" not in registry.aliases()
    assert not (tmp_path / "p" / "collections" / "tuned-v1").exists()


def _log_interleaved(folder: Path, experiment, sample, events: int) -> None:
    """Users served by the interleaving experiment: the challenger's ranking puts the judged document first, the
    champion's last; the simulated users click what is relevant (position-biased), as through the server."""
    from embedops.events import EventLog, FeedbackEvent, RequestEvent
    from embedops.experiment import CHALLENGER, CHAMPION, SimulatedUser, simulate

    queries = list(sample.queries.values())
    qrels = {sample.queries[q]: sample.relevant[q] for q in sample.queries}
    others = [d for d in sample.doc_ids if not any(d in r for r in sample.relevant.values())][:9]

    def champion(query: str) -> list[str]:
        return others + qrels[query][:1]

    def challenger(query: str) -> list[str]:
        return qrels[query][:1] + others

    outcomes = simulate(experiment, SimulatedUser.population(40, seed=3), queries, qrels,
                        {CHAMPION: champion, CHALLENGER: challenger}, events=events, seed=5)
    t0 = time.time() - events
    with EventLog(folder / "events.db") as log:
        for i, o in enumerate(outcomes):
            log.log(RequestEvent(f"exp-{o.request_id}", kind="search", route="experiment", model=o.arm,
                                 model_version=f"experiment:{experiment.name}:{o.arm}", query="q", k=experiment.k,
                                 result_ids=list(o.results), user_id=o.user_id, experiment=experiment.name,
                                 arm=o.arm, teams=list(o.teams or ()), time=t0 + i))
            for doc in o.clicks:
                log.log(FeedbackEvent(f"exp-{o.request_id}", "click", doc, time=t0 + i + 0.5))


def test_experiment_then_decide_promotes_the_winner_and_rollback_restores_the_champion(tmp_path, scifact_sample):
    cfg = make_project(tmp_path / "p")
    log_clicks(tmp_path / "p", scifact_sample)
    run = tmp_path / "p" / "loop" / "ab"
    res = invoke("loop", "run", "-c", cfg, "--run-dir", run, *_data_args(scifact_sample), "--mode", "interleave",
                 "--min-events", "20", "--champion-collection", "base", "--min-gain", "-0.01", *TRAIN)
    assert res.exit_code == 0, res.output
    state = LoopState(run)
    assert state.status == "testing" and not state.done("decide"), state.data
    name = state.output("experiment")["name"]
    project = Project.open(cfg)
    experiment = project.experiments.get(name)
    assert (experiment.mode, experiment.status) == ("interleave", "running")
    assert (experiment.champion.collection, experiment.challenger.collection) == ("base", "tuned-v1")
    assert project.registry.aliases()["challenger"]["version"] == "tuned@v1"
    assert _champion(cfg) == "minilm@v1"

    early = invoke("loop", "decide", run, "-c", cfg)  # no traffic yet: still testing, nothing moves
    assert early.exit_code == 0, early.output
    assert "still testing" in early.output and LoopState(run).status == "testing"
    assert _champion(cfg) == "minilm@v1"

    _log_interleaved(tmp_path / "p", experiment, scifact_sample, events=150)
    done = invoke("loop", "decide", run, "-c", cfg)
    assert done.exit_code == 0, done.output
    state = LoopState(run)
    decision = state.output("decide")
    assert state.status == "promoted" and decision["report"]["winner"] == "challenger", decision
    assert decision["previous"] == "minilm@v1" and decision["collection"] == "tuned-v1"
    assert _champion(cfg) == "tuned@v1"
    project = Project.open(cfg)
    assert project.experiments.get(name).status == "stopped"
    assert project.served_collection()["collection"] == "tuned-v1"
    assert len(state.data["checks"]) == 2  # the run's own first look, then the early decide

    back = invoke("models", "rollback", "champion", "-c", cfg)
    assert back.exit_code == 0, back.output
    assert _champion(cfg) == "minilm@v1"
    assert Project.open(cfg).served_collection()["collection"] == "base"  # the old champion's collection again
    status = invoke("loop", "status", run, "--json")
    assert json.loads(status.output)["status"] == "promoted"
