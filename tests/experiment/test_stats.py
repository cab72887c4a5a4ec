"""Metric values per request, per-user delta-method errors, sequential-test arithmetic, and the report's fields."""

from __future__ import annotations

import json
import math
import random

import numpy as np
import pytest
from scipy import stats

from embedops.errors import InputError
from embedops.experiment import CHALLENGER, CHAMPION, INTERLEAVED, Outcome, ab_analysis, analyze, request_value
from embedops.experiment.sequential import (
    beta_a,
    beta_cs,
    beta_cs_intersection,
    beta_log_lr,
    look_points,
    normal_cs_width,
    normal_log_lr,
    required_events,
)

SHOWN = tuple(f"d{i}" for i in range(10))


def test_request_values():
    o = Outcome("u", CHAMPION, SHOWN, ("d3", "d7"))
    assert request_value(o, "ctr", 10) == 1.0
    assert request_value(o, "mrr", 10) == pytest.approx(1 / 4)
    assert request_value(o, "success@k", 3) == 0.0
    assert request_value(o, "success@k", 4) == 1.0
    empty = Outcome("u", CHAMPION, SHOWN, ())
    assert [request_value(empty, m, 10) for m in ("ctr", "mrr", "success@k")] == [0.0, 0.0, 0.0]
    with pytest.raises(InputError, match="unknown arm"):
        Outcome("u", "treatment", SHOWN)
    with pytest.raises(InputError, match="one team per result"):
        Outcome("u", INTERLEAVED, SHOWN, (), "r", (CHAMPION,))


def _users(rng: random.Random, arm: str, n_users: int, rate: float) -> list[Outcome]:
    out = []
    for u in range(n_users):
        p = min(max(rng.gauss(rate, 0.15), 0.0), 1.0)  # users differ: requests of one user are correlated
        for _ in range(rng.randint(1, 12)):
            out.append(Outcome(f"{arm}-{u}", arm, SHOWN, ("d0",) if rng.random() < p else ()))
    return out


def test_arm_values_and_delta_method_match_a_bootstrap_over_users(make_experiment):
    rng = random.Random(1)
    outcomes = _users(rng, CHAMPION, 400, 0.3) + _users(rng, CHALLENGER, 400, 0.3)
    res = ab_analysis(make_experiment(stopping={"kind": "fixed", "horizon": len(outcomes)}), outcomes)
    champ = [o for o in outcomes if o.arm == CHAMPION]
    assert res.champion.value == pytest.approx(sum(bool(o.clicks) for o in champ) / len(champ))
    assert res.champion.events == len(champ) and res.champion.users == 400
    # bootstrap over users (the unit of randomisation) of the champion's ratio
    per_user: dict[str, list[float]] = {}
    for o in champ:
        per_user.setdefault(o.user_id, []).append(float(bool(o.clicks)))
    x = np.array([sum(v) for v in per_user.values()])
    n = np.array([len(v) for v in per_user.values()])
    idx = np.random.default_rng(0).integers(0, len(x), size=(4000, len(x)))
    boot_se = float((x[idx].sum(1) / n[idx].sum(1)).std())
    assert res.champion.se == pytest.approx(boot_se, rel=0.1)
    # treating requests as independent would understate the error with correlated users
    naive = math.sqrt(res.champion.value * (1 - res.champion.value) / len(champ))
    assert res.champion.se > 1.2 * naive


def test_normal_msprt_boundary_and_width_agree():
    for n in (100, 1000, 50_000):
        w = normal_cs_width(n, 0.03, 0.05)
        assert normal_log_lr(w, n, 0.03) == pytest.approx(math.log(20))
        assert w > stats.norm.ppf(0.975)  # always-valid intervals are wider than fixed-horizon ones


def test_beta_mixture_is_a_martingale_under_the_null():
    a = beta_a(0.1)
    assert math.sqrt(1 / (4 * (2 * a + 1))) == pytest.approx(0.1)
    for n in (1, 10, 60):
        expected = sum(stats.binom.pmf(w, n, 0.5) * math.exp(beta_log_lr(w, n - w, a)) for w in range(n + 1))
        assert expected == pytest.approx(1.0)
    lo, hi = beta_cs(70, 30, a, 0.05)
    assert lo < 0.7 < hi and lo > 0.5  # 70/100 excludes a fair coin even under the always-valid boundary
    assert beta_log_lr(70, 30, a, lo) == pytest.approx(math.log(20), abs=1e-6)


def test_look_points_and_required_events():
    pts = look_points(1000, 200, 1.1)
    assert pts[0] == 200 and pts[-1] == 1000 and pts == sorted(set(pts))
    assert look_points(150, 200, 1.1) == []
    kw = {"alpha": 0.05, "power": 0.8, "rho": 0.03}
    fixed = required_events(0.1, 1.0, sequential=False, **kw)
    # the textbook fixed-horizon size: ((z_.975 + z_.8) sd / effect)^2 = 784.9
    assert fixed == pytest.approx(785, abs=2)
    assert required_events(0.1, 1.0, sequential=True, **kw) > fixed
    assert required_events(0.0, 1.0, sequential=True, **kw) is None
    assert required_events(1e-6, 1.0, sequential=False, **kw) is None


def test_a_zero_effect_needs_never_and_a_fixed_horizon_waits(make_experiment):
    rng = random.Random(2)
    same = []
    for i in range(1200):
        clicks = ("d1",) if rng.random() < 0.4 else ()
        for arm in (CHAMPION, CHALLENGER):  # the same clicks in both arms: the effect is exactly zero
            same.append(Outcome(f"{arm}-{i % 300}", arm, SHOWN, clicks))
    report = analyze(make_experiment(), same)
    assert report.winner == "none" and report.effect == 0
    assert report.more_events_needed is None and report.more_events_text == "never"
    assert report.as_dict()["more_events_needed"] == "never"
    assert report.ci_low < 0 < report.ci_high
    fixed = analyze(make_experiment(stopping={"kind": "fixed", "horizon": 5000}), same)
    assert fixed.winner == "none" and fixed.events == 2400
    # a different outcome stream where the challenger is far ahead: still no winner before the horizon
    ahead = [Outcome(o.user_id, o.arm, SHOWN, ("d1",) if o.arm == CHALLENGER else ()) for o in same]
    early = analyze(make_experiment(stopping={"kind": "fixed", "horizon": 5000}), ahead)
    assert early.winner == "none" and early.more_events_needed == 5000 - 2400
    at_horizon = analyze(make_experiment(stopping={"kind": "fixed", "horizon": 2000}), ahead)
    assert at_horizon.winner == CHALLENGER and at_horizon.decided_at == 2000 and at_horizon.events == 2000


def test_the_grid_intersection_matches_the_exact_interval():
    a = beta_a(0.1)
    exact = beta_cs(130, 70, a, 0.05)
    grid = beta_cs_intersection([130], [70], a, 0.05)
    assert grid[0] <= exact[0] <= grid[0] + 5e-4 and grid[1] - 5e-4 <= exact[1] <= grid[1]
    # more looks only narrow it
    many = beta_cs_intersection([20, 60, 130], [5, 30, 70], a, 0.05)
    assert many[0] >= grid[0] and many[1] <= grid[1]


@pytest.mark.parametrize("mode", ["ab", "interleave"])
def test_no_outcomes_yet(make_experiment, mode):
    report = analyze(make_experiment(mode), [])
    assert report.winner == "none" and report.events == 0 and report.decided_at is None
    assert report.more_events_needed == 200  # the sequential rule's burn-in
    fixed = analyze(make_experiment(mode, stopping={"kind": "fixed", "horizon": 900}), [])
    assert fixed.more_events_needed == 900
    data = json.loads(json.dumps(report.as_dict(), allow_nan=False))  # strict JSON for the HTTP face
    assert data["winner"] == "none" and data["more_events_needed"] == 200


def test_interleaving_fixed_horizon_uses_an_exact_binomial_test(make_experiment):
    outcomes = []
    for i in range(300):
        team = CHALLENGER if i % 10 < 6 else CHAMPION  # 180 challenger wins, 120 champion wins
        outcomes.append(Outcome(f"u{i % 50}", INTERLEAVED, ("a", "b"), ("a",), f"r{i}", (team, CHAMPION)))
    fixed = analyze(make_experiment("interleave", stopping={"kind": "fixed", "horizon": 300}), outcomes)
    assert fixed.detail.wins == 180 and fixed.detail.losses == 120 and fixed.detail.ties == 0
    assert fixed.p_value == pytest.approx(stats.binomtest(180, 300).pvalue)
    assert fixed.effect == pytest.approx(0.1) and fixed.winner == CHALLENGER and fixed.ci_low > 0


def test_outcome_json_round_trip():
    o = Outcome("u", INTERLEAVED, SHOWN[:2], ("d1",), "r1", (CHAMPION, CHALLENGER))
    assert Outcome.from_dict(o.as_dict()) == o
    assert o.clicked_ranks() == [2]
