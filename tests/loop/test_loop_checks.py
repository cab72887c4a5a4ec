"""The loop's refusals and its decide step without training: bad input fails fast and clearly, the drift trigger,
a busy folder, and `decide` never promoting a version whose recorded gate did not pass (a real registry)."""

from __future__ import annotations

import multiprocessing as mp
from pathlib import Path

import pytest
from typer.testing import CliRunner

from embedops import Project
from embedops.cli.loop_cmd import parse_when
from embedops.cli.main import app
from embedops.errors import InputError
from embedops.events import AlertEvent, EventLog, RequestEvent
from embedops.loop import LoopOptions, LoopState, ServingMap
from embedops.registry import RegistryDamagedError

from .conftest import log_clicks, make_project

runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture()
def project(tmp_path) -> Path:
    """A project file (no registry needed: every command here stops before training)."""
    (tmp_path / "embedops.yaml").write_text("version: 1\nname: checks\n", encoding="utf-8")
    return tmp_path / "embedops.yaml"


def _searches(folder: Path, n: int, t0: float = 1_000_000.0) -> None:
    with EventLog(folder / "events.db") as log:
        for i in range(n):
            log.log(RequestEvent(f"r{i}", kind="search", query=f"query {i}", k=3, result_ids=["a", "b", "c"],
                                 model_version="minilm@v1", time=t0 + i))


def test_missing_corpus_or_golden_names_the_option_and_the_path(project, scifact_sample):
    res = invoke("loop", "run", "-c", project, "--corpus", project.parent / "nope.jsonl", "--golden",
                 scifact_sample.root)
    assert res.exit_code == 2 and "--corpus" in res.output and "nope.jsonl" in res.output, res.output
    res = invoke("loop", "run", "-c", project, "--corpus", scifact_sample.root, "--golden", project.parent / "gold")
    assert res.exit_code == 2 and "--golden" in res.output and "gold" in res.output, res.output
    res = invoke("loop", "run", "-c", project, "--golden", scifact_sample.root)
    assert res.exit_code == 2 and "--corpus" in res.output and "required" in res.output, res.output
    assert not (project.parent / "loop").exists()


def test_a_zero_sized_arm_is_refused_before_anything_runs(project, scifact_sample):
    _searches(project.parent, 3)
    res = invoke("loop", "run", "-c", project, "--corpus", scifact_sample.root, "--golden", scifact_sample.root,
                 "--mode", "ab", "--split", "0")
    assert res.exit_code == 2, res.output
    assert "--split" in res.output and "no users" in res.output and "--no-experiment" in res.output
    res = invoke("loop", "run", "-c", project, "--corpus", scifact_sample.root, "--golden", scifact_sample.root,
                 "--stopping", "fixed")
    assert res.exit_code == 2 and "--horizon" in res.output, res.output
    assert not (project.parent / "loop").exists()


def test_no_feedback_in_the_window_says_how_many_searches_and_clicks(project, scifact_sample):
    _searches(project.parent, 5)
    args = ["loop", "run", "-c", project, "--corpus", scifact_sample.root, "--golden", scifact_sample.root]
    res = invoke(*args)
    assert res.exit_code == 2 and "5 searches and 0 clicks" in res.output, res.output
    res = invoke(*args, "--since", "1000003", "--until", "1000004")
    assert res.exit_code == 2 and "1 searches and 0 clicks" in res.output, res.output
    assert not (project.parent / "loop").exists()


def test_if_drift_without_an_alert_in_the_window_does_nothing(project, scifact_sample):
    _searches(project.parent, 5)
    args = ["loop", "run", "-c", project, "--corpus", scifact_sample.root, "--golden", scifact_sample.root,
            "--if-drift", "--since", "1000000", "--until", "1003600"]
    res = invoke(*args)
    assert res.exit_code == 0 and "no drift alert, nothing to do" in res.output, res.output
    assert not (project.parent / "loop").exists()
    with EventLog(project.parent / "events.db") as log:  # an alert for a later hour: still nothing to do
        log.log(AlertEvent("drift", "query drift", "minilm@v1", window_start=1_003_600, window_end=1_007_200))
    res = invoke(*args)
    assert res.exit_code == 0 and "no drift alert" in res.output, res.output
    with EventLog(project.parent / "events.db") as log:  # one inside the window: the run starts (and finds no clicks)
        log.log(AlertEvent("drift", "query drift in hour 1", "minilm@v1", window_start=1_000_000,
                           window_end=1_003_600))
    res = invoke(*args)
    assert res.exit_code == 2 and "1 drift alert(s)" in res.output and "0 clicks" in res.output, res.output
    assert len(Project.open(project).drift_alerts(start=1_000_000, end=1_003_600)) == 1


def _hold(folder, ready, release):
    with LoopState(folder).locked():
        ready.set()
        release.wait(20)


def test_a_busy_run_folder_is_refused(tmp_path, scifact_sample):
    cfg = make_project(tmp_path / "p")
    log_clicks(tmp_path / "p", scifact_sample)
    run = tmp_path / "p" / "loop" / "busy"
    ctx = mp.get_context("fork")
    ready, release = ctx.Event(), ctx.Event()
    holder = ctx.Process(target=_hold, args=(run, ready, release))
    holder.start()
    try:
        assert ready.wait(20)
        res = invoke("loop", "run", "-c", cfg, "--run-dir", run, "--corpus", scifact_sample.root, "--golden",
                     scifact_sample.root, "--no-experiment")
        assert res.exit_code == 2 and "another loop run holds this folder" in res.output, res.output
    finally:
        release.set()
        holder.join(20)
    assert not (run / "state.json").exists()


def test_an_online_test_needs_the_champions_collection_before_training(tmp_path, scifact_sample):
    cfg = make_project(tmp_path / "p")
    log_clicks(tmp_path / "p", scifact_sample)
    res = invoke("loop", "run", "-c", cfg, "--corpus", scifact_sample.root, "--golden", scifact_sample.root)
    assert res.exit_code == 2 and "--champion-collection" in res.output and "minilm@v1" in res.output, res.output
    assert not (tmp_path / "p" / "loop").exists()


def test_decide_and_status_refuse_folders_that_are_not_testing_runs(project, tmp_path):
    res = invoke("loop", "decide", tmp_path / "nothing", "-c", project)
    assert res.exit_code == 2 and "no loop run" in res.output, res.output
    state = LoopState(tmp_path / "early")
    with state.locked():
        state.record("pairs", {"rows": 3})
    res = invoke("loop", "decide", tmp_path / "early", "-c", project)
    assert res.exit_code == 2 and "not started its online test" in res.output and "pairs" in res.output, res.output
    res = invoke("loop", "status", tmp_path / "nothing")
    assert res.exit_code == 2 and "no loop run" in res.output
    res = invoke("loop", "status", "-c", project)
    assert res.exit_code == 0 and "no loop runs" in res.output, res.output


# -- decide on a real registry, without training: versions are small folders with pinned files -----------------

def _version(registry, root: Path, name: str, content: str, **kwargs):
    folder = root / f"src-{name}-{content}"
    folder.mkdir(parents=True)
    (folder / "model.safetensors").write_text(content)
    return registry.register(folder, name, {"kind": "test"}, **kwargs)


def _tested_run(project: Project, folder: Path, ref: str, collection: str) -> Path:
    """A run whose offline steps are recorded and which had no online test: only `decide` is left."""
    options = LoopOptions(corpus=folder, golden=folder, experiment=False)
    state = LoopState(folder / "run")
    champion = project.registry.ref_of("champion")
    with state.locked():
        state.data["params"] = {"options": options.to_dict()}
        state.record("pairs", {"path": "p", "rows": 1, "champion": champion, "champion_alias": champion})
        state.record("train", {"version": ref, "path": str(project.registry.get(ref).path)})
        state.record("gate", {"passed": True})  # the run's own note: decide reads the manifest instead
        state.record("register", {"alias": "challenger", "version": ref})
        state.record("embed", {"collection": collection, "path": str(folder / collection), "count": 1})
        state.record("experiment", {"skipped": True})
    return state.folder


def test_decide_never_promotes_a_version_whose_recorded_gate_did_not_pass(tmp_path):
    (tmp_path / "embedops.yaml").write_text("version: 1\nname: gates\n", encoding="utf-8")
    project = Project.open(tmp_path / "embedops.yaml")
    registry = project.registry
    _version(registry, tmp_path, "base", "v1", alias="champion")
    no_gate = _version(registry, tmp_path, "tuned", "a")
    failed = _version(registry, tmp_path, "tuned", "b")
    registry.record_gate(failed.ref, {"passed": False, "summary": "ndcg@10 gain -0.02"})
    for version, why in ((no_gate, "no gate recorded"), (failed, "ndcg@10 gain -0.02")):
        run = _tested_run(project, tmp_path / version.ref.replace("@", "-"), version.ref, "c")
        state = project.decide_loop(run, echo=lambda m: None)
        assert state.status == "refused" and why in state.output("decide")["reason"], state.data
        assert registry.ref_of("champion") == "base@v1"

    changed = _version(registry, tmp_path, "tuned", "c")
    registry.record_gate(changed.ref, {"passed": True, "summary": "passed"})
    (changed.path / "model.safetensors").write_text("overwritten after the gate")
    run = _tested_run(project, tmp_path / "changed", changed.ref, "c")
    with pytest.raises(RegistryDamagedError, match="model.safetensors"):
        project.decide_loop(run, echo=lambda m: None)
    assert registry.ref_of("champion") == "base@v1" and LoopState(run).status == "running"

    good = _version(registry, tmp_path, "tuned", "d")
    registry.record_gate(good.ref, {"passed": True, "summary": "passed"})
    run = _tested_run(project, tmp_path / "good", good.ref, "tuned-v4")
    state = project.decide_loop(run, echo=lambda m: None)
    assert state.status == "promoted" and registry.ref_of("champion") == good.ref
    assert project.served_collection()["collection"] == "tuned-v4"
    assert project.rollback("champion").ref == "base@v1"
    assert project.served_collection() is None  # nothing was recorded for the old champion's collection


def test_a_version_a_killed_run_registered_is_found_not_trained_again(tmp_path):
    from embedops.loop.steps import train_step

    (tmp_path / "embedops.yaml").write_text("version: 1\nname: reuse\n", encoding="utf-8")
    project = Project.open(tmp_path / "embedops.yaml")
    _version(project.registry, tmp_path, "base", "v1", alias="champion")
    pairs = str(tmp_path / "run" / "pairs.jsonl")
    folder = tmp_path / "src-trained"
    folder.mkdir()
    (folder / "model.safetensors").write_text("trained")
    # What `train` registered just before the kill: this run's pairs file, tuned from this run's champion.
    done = project.registry.register(folder, "tuned", {"data": {"source": pairs}, "parent": "base@v1"})
    _version(project.registry, tmp_path, "tuned", "other")  # another run's version is not taken
    state = LoopState(tmp_path / "run")
    with state.locked():
        state.record("pairs", {"path": pairs, "champion": "base@v1"})
        out = train_step(project, None, state, LoopOptions(corpus=tmp_path, golden=tmp_path, name="tuned"),
                         lambda m: None)
    assert out == {"version": done.ref, "path": str(done.path), "reused": True}


def test_options_round_trip_and_check():
    opts = LoopOptions(corpus="c", golden="g", documents=iter([]), train_overrides={"epochs": 1}, mode="ab",
                       split=0.2)
    back = LoopOptions.from_dict({**opts.to_dict(), "from_a_newer_version": 1})
    assert back.split == 0.2 and back.train_overrides == {"epochs": 1} and back.documents is None
    assert Path(back.corpus).is_absolute()
    with pytest.raises(InputError, match="no users") as err:
        LoopOptions(corpus="c", golden="g", mode="ab", split=1.0).check()
    assert err.value.where == "loop option split"
    with pytest.raises(InputError) as err:
        LoopOptions(corpus="c", golden="g", experiment_metric="clicks").check()
    assert err.value.where == "loop option experiment_metric"
    LoopOptions(corpus="c", golden="g", split=0.0, experiment=False).check()  # no online test: no split needed


def test_parse_when_reads_epochs_iso_times_and_ages():
    assert parse_when("1700000000", "--since") == 1_700_000_000.0
    assert parse_when("2023-11-14T22:13:20", "--since") == 1_700_000_000.0  # naive: UTC
    assert parse_when("24h", "--since", now=1_000_000.0) == 1_000_000.0 - 86_400
    assert parse_when("7d", "--since", now=1_000_000.0) == 1_000_000.0 - 7 * 86_400
    assert parse_when(None, "--since") is None
    with pytest.raises(InputError) as err:
        parse_when("yesterday", "--until")
    assert err.value.where == "--until"


def test_serving_map_is_per_version_and_atomic(tmp_path):
    sm = ServingMap(tmp_path / "collections")
    assert sm.get("a@v1") is None
    sm.set("a@v1", "a-v1", tmp_path / "collections" / "a-v1")
    sm.set("b@v1", "b-v1")
    assert sm.get("a@v1")["collection"] == "a-v1" and sm.get("b@v1")["path"] is None
    sm.set("a@v1", "a-v1")  # the same collection named again (as the champion of a later run): the path stays
    assert sm.get("a@v1")["path"] == str((tmp_path / "collections" / "a-v1").resolve())
    assert not list((tmp_path / "collections").glob(".serving.json.*.tmp"))
    (tmp_path / "collections" / "serving.json").write_text("{not json")
    with pytest.raises(InputError, match="unreadable"):
        sm.get("a@v1")
