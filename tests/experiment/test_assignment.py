"""Sticky hashed assignment (same arm in every process) and the sample-ratio-mismatch check."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from embedops.experiment import CHALLENGER, CHAMPION, ExperimentError, assign, bucket, srm_check


@pytest.mark.parametrize("split", [0.5, 0.2])
def test_split_is_close_to_the_configured_fraction_over_100k_ids(make_experiment, split):
    e = make_experiment(split=split)
    arms = [assign(e, f"user-{i}") for i in range(100_000)]
    share = arms.count(CHALLENGER) / len(arms)
    # sd of the share is sqrt(s(1-s)/n) <= 0.0016; 0.006 is about 4 sd
    assert abs(share - split) < 0.006, share
    counts = {CHAMPION: arms.count(CHAMPION), CHALLENGER: arms.count(CHALLENGER)}
    assert not srm_check(counts, split).flagged


def test_assignment_is_sticky_within_and_across_processes(make_experiment):
    e = make_experiment(name="sticky", split=0.3)
    ids = [f"u{i}" for i in range(2000)]
    here = [assign(e, u) for u in ids]
    assert here == [assign(e, u) for u in ids]
    code = (
        "import json, sys\n"
        "from embedops.experiment import Arm, Experiment, assign\n"
        "e = Experiment.new('sticky', Arm('base@v1', 'docs_v1'), Arm('tuned@v2', 'docs_v2'), split=0.3)\n"
        f"print(json.dumps([assign(e, f'u{{i}}') for i in range({len(ids)})]))\n"
    )
    # another interpreter with a different str-hash salt must agree: the hash is sha256, not hash()
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == here


def test_buckets_are_uniform_and_independent_across_experiments():
    a = [bucket("exp-a", f"u{i}") for i in range(20_000)]
    b = [bucket("exp-b", f"u{i}") for i in range(20_000)]
    assert all(0 <= x < 1 for x in a)
    deciles = [sum(1 for x in a if d / 10 <= x < (d + 1) / 10) for d in range(10)]
    assert max(abs(c - 2000) for c in deciles) < 200
    # the same users in another experiment land elsewhere: challenger in both about a quarter of the time
    both = sum(1 for x, y in zip(a, b, strict=True) if x < 0.5 and y < 0.5) / len(a)
    assert abs(both - 0.25) < 0.02


def test_a_missing_user_id_is_refused(make_experiment):
    with pytest.raises(ExperimentError, match="user id"):
        assign(make_experiment(), "")


def test_srm_flags_a_skewed_assignment(make_experiment):
    e = make_experiment(split=0.5)
    users = [f"u{i}" for i in range(20_000)]
    arms = [assign(e, u) for u in users]
    # a logging bug that loses 8% of the challenger's users
    kept = [a for i, a in enumerate(arms) if a == CHAMPION or i % 25 >= 2]
    skewed = srm_check({CHAMPION: kept.count(CHAMPION), CHALLENGER: kept.count(CHALLENGER)}, 0.5)
    assert skewed.flagged and skewed.p_value < 0.001
    fair = srm_check({CHAMPION: arms.count(CHAMPION), CHALLENGER: arms.count(CHALLENGER)}, 0.5)
    assert not fair.flagged and fair.p_value > 0.001
    # the configured split is the reference: a fair 30/70 split is no mismatch, the same counts at 50/50 are
    assert not srm_check({CHAMPION: 3000, CHALLENGER: 7000}, 0.7).flagged
    assert srm_check({CHAMPION: 3000, CHALLENGER: 7000}, 0.5).flagged
