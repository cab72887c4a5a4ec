"""A/A tests with simulated users: no winner in >= 90% of 100 runs, also when the sequential rule is checked at many
looks; the naive alternative (a fixed test re-run at every look) is measured beside it. Pure Python, seeded."""

from __future__ import annotations

import pytest

from embedops.experiment import CHALLENGER, CHAMPION, Outcome, SimulatedUser, analyze, simulate

RUNS = 100  # independent A/A experiments (the acceptance target is over >= 100 runs)
EVENTS = 2000
USERS = 200
LOOK_EVERY = 250  # an analyst re-reading the report every 250 events: 8 looks, on top of the rule's own grid
TARGET = 0.10  # A/A: no winner in >= 90% of runs


def _aa_runs(world, make_experiment, mode: str) -> list[tuple[object, list[Outcome]]]:
    base = world.ranker(1.0, "base")
    runs = []
    for run in range(RUNS):
        # a new experiment name per run re-randomises which users are challengers, as separate tests would
        e = make_experiment(mode, name=f"aa-{mode}-{run}")
        users = SimulatedUser.population(USERS, seed=run)
        runs.append((e, simulate(e, users, world.queries, world.qrels, {CHAMPION: base, CHALLENGER: base},
                                 events=EVENTS, seed=run)))
    return runs


def _declared_at_any_look(e, outcomes) -> bool:
    return any(analyze(e, outcomes[:m]).winner != "none" for m in range(LOOK_EVERY, len(outcomes) + 1, LOOK_EVERY))


@pytest.fixture(scope="module")
def aa_ab(world, make_experiment):
    return _aa_runs(world, make_experiment, "ab")


def test_aa_ab_sequential_declares_no_winner_under_many_looks(aa_ab):
    false = sum(_declared_at_any_look(e, out) for e, out in aa_ab)
    rate = false / len(aa_ab)
    print(f"\nA/A A/B sequential (mSPRT), {len(aa_ab)} runs x {EVENTS} events, looks every {LOOK_EVERY} + grid: "
          f"false winners {rate:.1%}")
    assert rate <= TARGET
    srm_alarms = sum(analyze(e, out).srm.flagged for e, out in aa_ab)
    assert srm_alarms <= 3  # p < 0.001 per run: a working assignment should almost never trip it


def test_aa_ab_fixed_horizon_and_naive_peeking(aa_ab, make_experiment):
    fixed = naive = 0
    for e, out in aa_ab:
        rule = {"kind": "fixed", "horizon": EVENTS}
        fixed += analyze(make_experiment("ab", name=e.name, stopping=rule), out).winner != "none"
        # what the sequential rule protects against: a fixed-horizon test re-run at every look
        naive += any(analyze(make_experiment("ab", name=e.name, stopping={"kind": "fixed", "horizon": m}),
                             out[:m]).winner != "none" for m in range(LOOK_EVERY, EVENTS + 1, LOOK_EVERY))
    print(f"\nA/A A/B fixed horizon {EVENTS}: false winners {fixed / len(aa_ab):.1%}; "
          f"naive fixed test at {EVENTS // LOOK_EVERY} looks: {naive / len(aa_ab):.1%}")
    assert fixed / len(aa_ab) <= TARGET
    assert naive > fixed  # the harness does see the inflation that peeking causes


def test_aa_interleaving_declares_no_winner_under_many_looks(world, make_experiment):
    runs = _aa_runs(world, make_experiment, "interleave")
    false = sum(_declared_at_any_look(e, out) for e, out in runs)
    print(f"\nA/A interleaving sequential, {len(runs)} runs: false winners {false / len(runs):.1%}")
    assert false / len(runs) <= TARGET
