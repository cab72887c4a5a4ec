"""Simulated users on a simulated search world: detection of a truly better challenger, interleaving vs A/B event
counts, SRM in the report, the simulated user itself. Pure Python, seeded."""

from __future__ import annotations

import statistics

import pytest

from embedops.experiment import CHALLENGER, CHAMPION, SimulatedUser, analyze, assign, simulate

USERS = 200
PAIRS = 10


@pytest.fixture(scope="module")
def better(world, make_experiment):
    """The same users and queries against champion quality 1.0 vs a truly better challenger (quality 1.4)."""
    rankers = {CHAMPION: world.ranker(1.0, "base"), CHALLENGER: world.ranker(1.4, "tuned")}
    out = {}
    for mode, events in (("ab", 12_000), ("interleave", 4000)):
        out[mode] = []
        for run in range(PAIRS):
            e = make_experiment(mode, name=f"better-{run}")
            users = SimulatedUser.population(USERS, seed=100 + run)
            out[mode].append((e, simulate(e, users, world.queries, world.qrels, rankers, events=events,
                                          seed=100 + run)))
    return out


def test_a_better_challenger_is_found_with_the_right_sign(better, make_experiment):
    for mode in ("ab", "interleave"):
        reports = [analyze(e, out) for e, out in better[mode]]
        assert all(r.winner != CHAMPION for r in reports)
        found = [r for r in reports if r.winner == CHALLENGER]
        assert len(found) >= PAIRS - 1, [r.note for r in reports]
        assert all(r.p_value < 0.05 and r.ci_low > 0 and r.effect > 0 for r in found)
    fixed = [analyze(make_experiment("ab", name=e.name, stopping={"kind": "fixed", "horizon": 4000}), out)
             for e, out in better["ab"]]
    print(f"\nA/B fixed horizon 4000: challenger found in {sum(r.winner == CHALLENGER for r in fixed)}/{PAIRS}, "
          f"p-values {[f'{r.p_value:.1g}' for r in fixed]}")
    assert sum(r.winner == CHALLENGER and r.p_value < 0.05 for r in fixed) >= PAIRS - 1


def test_interleaving_needs_fewer_events_than_ab(better):
    ab = [analyze(e, out).decided_at or len(out) for e, out in better["ab"]]
    il = [analyze(e, out).decided_at or len(out) for e, out in better["interleave"]]
    print(f"\nevents to a decision (sequential rule, same users and rankers): A/B median {statistics.median(ab)} "
          f"{ab}; interleaving median {statistics.median(il)} {il}")
    assert statistics.median(il) < statistics.median(ab) / 2
    assert sum(i < a for i, a in zip(il, ab, strict=True)) >= PAIRS - 1


def test_early_report_says_how_many_more_events(better):
    e, out = better["ab"][0]
    early = analyze(e, out[:300])
    assert early.winner == "none"
    assert early.more_events_needed is not None and early.more_events_needed > 0
    assert early.effect > 0
    assert str(early.more_events_needed) in early.note


def test_srm_in_the_report_withholds_the_decision(world, make_experiment):
    rankers = {CHAMPION: world.ranker(1.0, "base"), CHALLENGER: world.ranker(1.4, "tuned")}
    e = make_experiment("ab", name="srm")
    out = simulate(e, SimulatedUser.population(2000, seed=9), world.queries, world.qrels, rankers, events=6000,
                   seed=9)
    intact = analyze(e, out)
    assert intact.winner == CHALLENGER and not intact.srm.flagged
    # lose every event of a fifth of the challenger's users (a broken logger on one arm)
    lost = {o.user_id for o in out if o.arm == CHALLENGER and int(o.user_id.removeprefix("user")) % 5 == 0}
    broken = analyze(e, [o for o in out if o.user_id not in lost])
    print(f"\nSRM: intact p={intact.srm.p_value:.3g} {intact.srm.observed}; "
          f"20% of challenger users lost p={broken.srm.p_value:.2g} {broken.srm.observed}")
    assert broken.srm.flagged and broken.srm.p_value < 0.001
    assert broken.winner == "none" and "sample ratio mismatch" in broken.note


def test_simulated_user_is_seeded_and_position_biased(world):
    q = world.queries[0]
    rel = next(iter(world.qrels[q]))
    others = [d for d in world.docs[q] if d not in world.qrels[q]][:9]
    top, low = [rel, *others], [*others[:6], rel, *others[6:]]
    a = SimulatedUser("u1", seed=5)
    b = SimulatedUser("u1", seed=5)
    assert [a.clicks(top, world.qrels[q]) for _ in range(50)] == [b.clicks(top, world.qrels[q]) for _ in range(50)]
    u = SimulatedUser("u2", seed=5)
    at_top = sum(rel in u.clicks(top, {rel: 1}) for _ in range(3000)) / 3000
    at_seven = sum(rel in u.clicks(low, {rel: 1}) for _ in range(3000)) / 3000
    assert at_top == pytest.approx(0.7, abs=0.03)  # p_click_relevant at rank 1
    assert at_seven < at_top / 2  # attention decays with rank
    clicks = [c for _ in range(500) for c in u.clicks(top, [rel])]
    assert set(clicks) <= set(top)
    assert SimulatedUser("u3", max_depth=3).clicks(low, {rel: 1}) == [] or rel not in low[:3]


def test_the_arm_in_outcomes_is_the_sticky_assignment(better):
    e, out = better["ab"][0]
    assert all(o.arm == assign(e, o.user_id) for o in out)
