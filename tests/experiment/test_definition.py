"""Experiment definitions: validation with clear errors, JSON round trip; the store: atomic, locked, concurrent."""

from __future__ import annotations

import json
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor

import pytest

from embedops.errors import EmbedopsError
from embedops.experiment import Arm, Experiment, ExperimentError, ExperimentStore, StoppingRule

A, B = Arm("base@v1", "docs_v1"), Arm("tuned@v2", "docs_v2")


@pytest.mark.parametrize("split", [0, 0.0, 1, 1.0, -0.2, 1.5, float("nan"), True])
def test_a_zero_sized_arm_is_refused_naming_the_field(split):
    with pytest.raises(ExperimentError) as err:
        Experiment.new("zero", A, B, split=split)
    assert isinstance(err.value, EmbedopsError)
    assert "experiment 'zero': split" in str(err.value)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize(("options", "field"), [
    ({"mode": "bandit"}, "mode"),
    ({"metric": "ndcg"}, "metric"),
    ({"k": 0}, "k"),
    ({"alpha": 0.7}, "alpha"),
    ({"stopping": {"kind": "fixed"}}, "stopping.horizon"),
    ({"stopping": {"kind": "sequential", "horizon": 100}}, "stopping.horizon"),
    ({"stopping": {"kind": "peeking"}}, "stopping.kind"),
    ({"stopping": {"kind": "sequential", "looks": 3}}, "stopping.looks"),
    ({"colour": "red"}, "colour"),
])
def test_bad_fields_are_named(options, field):
    with pytest.raises(ExperimentError, match=rf"experiment 'e': {field}"):
        Experiment.new("e", A, B, **options)


def test_arms_need_a_model_and_their_own_collection():
    with pytest.raises(ExperimentError, match="champion"):
        Experiment.new("e", {"model": "base@v1"}, B)
    with pytest.raises(ExperimentError, match="challenger.collection"):
        Experiment.new("e", A, {"model": "x@v1", "collection": " "})
    with pytest.raises(ExperimentError, match="same model and collection"):
        Experiment.new("e", A, Arm("base@v1", "docs_v1"))
    with pytest.raises(ExperimentError, match="name"):
        Experiment.new("../escape", A, B)


def test_json_round_trip_keeps_every_field():
    e = Experiment.new("rt", A, B, split=0.3, mode="interleave", metric="mrr", k=5, alpha=0.01,
                       stopping={"kind": "fixed", "horizon": 5000})
    again = Experiment.from_dict(json.loads(json.dumps(e.to_dict())))
    assert again == e
    assert again.stopping == StoppingRule(kind="fixed", horizon=5000)
    assert again.champion.collection == "docs_v1" and again.challenger.collection == "docs_v2"


def test_store_create_list_get_stop(tmp_path):
    store = ExperimentStore(tmp_path / "experiments")
    assert store.list() == []
    first = store.create(Experiment.new("first", A, B, started_at="2026-01-01T00:00:00+00:00"))
    store.create(Experiment.new("second", A, B, split=0.1, started_at="2026-01-02T00:00:00+00:00"))
    assert [e.name for e in store.list()] == ["first", "second"]
    assert store.get("first") == first
    with pytest.raises(ExperimentError, match="already exists"):
        store.create(Experiment.new("first", A, B))
    stopped = store.stop("first")
    assert stopped.status == "stopped" and stopped.stopped_at
    assert ExperimentStore(tmp_path / "experiments").get("first").status == "stopped"  # on disk, not in memory
    assert [e.name for e in store.running()] == ["second"]
    with pytest.raises(ExperimentError, match="already stopped"):
        store.stop("first")
    with pytest.raises(ExperimentError, match="no experiment called 'third'.*first, second"):
        store.get("third")
    assert not [p for p in (tmp_path / "experiments").iterdir() if p.name.endswith(".tmp")]


def test_a_corrupt_file_is_a_clear_error(tmp_path):
    store = ExperimentStore(tmp_path)
    store.create(Experiment.new("ok", A, B))
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ExperimentError, match=r"bad\.json: cannot read experiment file"):
        store.get("bad")
    (tmp_path / "bad.json").write_text(json.dumps({**Experiment.new("bad", A, B).to_dict(), "split": 0}))
    with pytest.raises(ExperimentError, match="experiment 'bad': split"):
        store.get("bad")


def _create(args: tuple[str, str]) -> str:
    root, name = args
    try:
        ExperimentStore(root).create(Experiment.new(name, A, B))
        return "created"
    except ExperimentError:
        return "refused"


def test_concurrent_creators_of_one_name_one_wins(tmp_path):
    root = str(tmp_path / "store")
    with ProcessPoolExecutor(4) as pool:
        results = list(pool.map(_create, [(root, "same")] * 12))
    assert results.count("created") == 1 and results.count("refused") == 11
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(_create, [(root, "threads")] * 16))
    assert results.count("created") == 1


def test_concurrent_creators_of_many_names_all_land_whole(tmp_path):
    root = str(tmp_path / "store")
    names = [f"exp{i}" for i in range(24)]
    with ProcessPoolExecutor(4) as pool:
        assert set(pool.map(_create, [(root, n) for n in names])) == {"created"}
    store = ExperimentStore(root)
    assert sorted(e.name for e in store.list()) == sorted(names)
    with ThreadPoolExecutor(6) as pool:
        stopped = list(pool.map(lambda n: store.stop(n).status, names))
    assert stopped == ["stopped"] * len(names)
