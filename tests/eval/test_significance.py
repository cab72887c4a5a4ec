"""Paired tests: p-values match the exact sign-flip test, null data is rejected at the nominal rate, shifts show."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from embedops.errors import InputError
from embedops.eval import paired_test


def test_identical_systems_are_not_significant():
    a = np.random.default_rng(1).uniform(size=200)
    c = paired_test(a, a.copy())
    assert c.diff == 0 and c.ci_low <= 0 <= c.ci_high and not c.significant
    assert c.p_value == pytest.approx(1.0)
    assert (c.wins, c.losses, c.ties) == (0, 0, 200)


def test_a_consistent_improvement_is_significant():
    rng = np.random.default_rng(2)
    a = rng.uniform(size=300)
    b = np.clip(a + 0.05 + rng.normal(scale=0.05, size=300), 0, 1)
    c = paired_test(a, b, metric="ndcg@10")
    assert c.significant and c.ci_low > 0 and c.p_value < 0.01
    assert c.ci_low < c.diff < c.ci_high
    assert c.diff == pytest.approx(float(np.mean(b - a)))
    assert c.wins + c.losses + c.ties == 300 and c.wins > c.losses


def test_a_consistent_regression_is_significant_the_other_way():
    rng = np.random.default_rng(4)
    a = rng.uniform(size=300)
    b = a - 0.04 + rng.normal(scale=0.05, size=300)
    c = paired_test(a, b)
    assert c.significant and c.ci_high < 0 and c.p_value < 0.01


def test_noise_is_not_significant():
    # Genuinely null: per-query differences are +e and -e in equal measure, so B is A with symmetric noise.
    rng = np.random.default_rng(3)
    a = rng.uniform(size=100)
    e = rng.normal(scale=0.1, size=50)
    b = a + np.concatenate([e, -e])[rng.permutation(100)]
    c = paired_test(a, b)
    assert abs(c.diff) < 1e-12
    assert c.p_value > 0.05
    assert c.ci_low < 0 < c.ci_high and not c.significant


def test_null_data_is_rejected_at_about_the_nominal_rate():
    # Under a true null (differences symmetric about 0) p <= 0.05 must happen about 5% of the time, and the 95% CI
    # must contain 0 about 95% of the time: too often means false discoveries, too rarely a test with no power.
    runs = 300
    rejected = covered = 0
    for seed in range(runs):
        rng = np.random.default_rng(seed)
        a = rng.uniform(size=100)
        c = paired_test(a, a + rng.normal(scale=0.1, size=100), resamples=2000, seed=seed)
        rejected += c.p_value <= 0.05
        covered += c.ci_low <= 0 <= c.ci_high
    # Binomial(300, 0.05): mean 15, sd 3.8; these bounds are about 3 sd either side.
    assert 4 <= rejected <= 27, rejected
    assert 0.92 <= covered / runs <= 0.98, covered


def test_p_value_matches_the_exact_sign_flip_test():
    # With 12 queries every one of the 2^12 sign assignments can be enumerated: the exact two-sided p-value.
    rng = np.random.default_rng(7)
    a = rng.uniform(size=12)
    d = rng.normal(0.05, 0.1, size=12)
    signs = np.array(list(itertools.product([-1.0, 1.0], repeat=12)))
    exact = float(np.mean(np.abs((signs * d).mean(axis=1)) >= abs(d.mean()) - 1e-12))
    c = paired_test(a, a + d, resamples=20_000)
    # Monte Carlo sd of the estimate is sqrt(p(1-p)/20000) ~ 0.0016 at p ~ 0.05.
    assert c.p_value == pytest.approx(exact, abs=0.006)


def test_mismatched_lengths_are_refused():
    with pytest.raises(InputError, match="equal-length"):
        paired_test([1.0, 2.0], [1.0])


def test_a_single_query_is_refused():
    with pytest.raises(InputError, match="at least 2"):
        paired_test([1.0], [0.5])
