"""Paired tests: no difference gives a CI around zero; a real shift is significant."""

from __future__ import annotations

import numpy as np
import pytest

from embedops.errors import InputError
from embedops.eval import paired_test


def test_identical_systems_are_not_significant():
    a = np.random.default_rng(1).uniform(size=200)
    c = paired_test(a, a.copy())
    assert c.diff == 0 and c.ci_low <= 0 <= c.ci_high and not c.significant
    assert c.p_value == pytest.approx(1.0)


def test_a_consistent_improvement_is_significant():
    rng = np.random.default_rng(2)
    a = rng.uniform(size=300)
    b = np.clip(a + 0.05 + rng.normal(scale=0.05, size=300), 0, 1)
    c = paired_test(a, b, metric="ndcg@10")
    assert c.significant and c.ci_low > 0 and c.p_value < 0.01
    assert c.ci_low < c.diff < c.ci_high


def test_noise_is_not_significant():
    rng = np.random.default_rng(3)
    a = rng.uniform(size=100)
    b = a + rng.normal(scale=0.1, size=100) * np.array([1, -1] * 50)
    assert paired_test(a, b).p_value > 0.05 or abs(paired_test(a, b).diff) < 0.02


def test_mismatched_lengths_are_refused():
    with pytest.raises(InputError, match="equal-length"):
        paired_test([1.0, 2.0], [1.0])
