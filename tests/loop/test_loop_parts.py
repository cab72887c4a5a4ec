"""The loop's pure parts: pairs from clicks (cascade reading), the offline gate's decisions, the resumable state."""

from __future__ import annotations

import json
import multiprocessing as mp

import numpy as np
import pytest

from embedops.errors import InputError
from embedops.loop import Impression, LoopState, offline_gate, training_rows, write_training_rows
from embedops.loop.state import LoopBusyError


def test_click_is_positive_and_skipped_above_are_negatives():
    imp = Impression("q", ("a", "b", "c", "d"), frozenset({"c"}), request_id="r1")
    rows = training_rows([imp])
    assert rows == [{"query": "q", "clicked_id": "c", "negative_ids": ["b", "a"], "request_id": "r1", "rank": 3}]


def test_results_below_the_last_click_are_never_negatives_and_clicks_are_never_negatives():
    imp = Impression("q", ("a", "b", "c", "d"), frozenset({"a", "c"}))
    rows = training_rows([imp])
    assert [r["clicked_id"] for r in rows] == ["a", "c"]
    assert rows[0]["negative_ids"] == []
    assert rows[1]["negative_ids"] == ["b"]  # 'a' was clicked, 'd' lies below the last click


def test_no_clicks_no_rows_and_writing_nothing_is_refused(tmp_path):
    assert training_rows([Impression("q", ("a", "b"))]) == []
    with pytest.raises(InputError, match="nothing to train on"):
        write_training_rows([], tmp_path / "p.jsonl")
    assert not (tmp_path / "p.jsonl").exists()


def test_rows_round_trip_through_the_trainers_feedback_reader(tmp_path):
    from embedops.data.records import Document
    from embedops.train.pairs import read_feedback

    corpus = {i: Document(id=i, text=f"text of {i}") for i in ("a", "b", "c")}
    path = write_training_rows(training_rows([Impression("q", ("a", "b", "c"), frozenset({"c"}))]),
                               tmp_path / "p.jsonl")
    ts = read_feedback(path, corpus)
    assert ts.anchors == ["q"] and ts.positives == ["text of c"]
    assert ts.negatives == [["text of b", "text of a"]]


def test_empty_query_is_refused_with_its_index():
    with pytest.raises(InputError, match="impression 1"):
        training_rows([Impression("ok", ("a",)), Impression(" ", ("a",))])


def _scores(values):
    return {f"q{i}": {"ndcg@10": float(v)} for i, v in enumerate(values)}


def test_gate_refuses_a_worse_challenger_and_passes_a_better_one():
    rng = np.random.default_rng(0)
    base = rng.uniform(0.2, 0.9, 200)
    worse = offline_gate(_scores(base), _scores(base - rng.uniform(0.0, 0.2, 200)))
    assert not worse.passed and any("significantly worse" in r for r in worse.reasons)
    better = offline_gate(_scores(base), _scores(base + rng.uniform(0.0, 0.1, 200)))
    assert better.passed and better.diff > 0 and better.p_value < 0.05


def test_gate_refuses_when_criteria_fail_or_queries_differ():
    s = _scores([0.5, 0.6, 0.7])
    assert not offline_gate(s, s, criteria={"passed": False, "summary": "ndcg@10 >= 0.9 measured 0.6"}).passed
    other = {"x0": {"ndcg@10": 0.5}, "x1": {"ndcg@10": 0.6}}
    assert not offline_gate(s, other).passed


def test_state_is_atomic_and_resumes(tmp_path):
    st = LoopState(tmp_path / "run")
    with st.locked():
        st.record("pairs", {"rows": 3})
    again = LoopState(tmp_path / "run")
    assert again.done("pairs") and not again.done("train") and again.output("pairs") == {"rows": 3}
    assert json.loads((tmp_path / "run" / "state.json").read_text())["steps"]["pairs"]["rows"] == 3


def _hold(folder, ready, release):
    with LoopState(folder).locked():
        ready.set()
        release.wait(10)


def test_a_second_run_on_the_same_folder_fails_fast(tmp_path):
    ctx = mp.get_context("fork")
    ready, release = ctx.Event(), ctx.Event()
    p = ctx.Process(target=_hold, args=(tmp_path / "run", ready, release))
    p.start()
    try:
        assert ready.wait(10)
        with pytest.raises(LoopBusyError), LoopState(tmp_path / "run").locked():
            pass
    finally:
        release.set()
        p.join(10)
