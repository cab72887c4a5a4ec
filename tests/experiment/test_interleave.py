"""Team-draft interleaving: invariants of the list, reproducibility from the request id, credit of clicks."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from embedops.experiment import (
    CHALLENGER,
    CHAMPION,
    INTERLEAVED,
    Outcome,
    credit,
    interleave_seed,
    team_draft,
)

rankings = st.lists(st.sampled_from([f"d{i}" for i in range(25)]), min_size=0, max_size=15, unique=True)


@settings(max_examples=300, deadline=None)
@given(a=rankings, b=rankings, seed=st.integers(0, 2**63), length=st.one_of(st.none(), st.integers(1, 20)))
def test_team_draft_invariants(a, b, seed, length):
    mixed = team_draft(a, b, seed=seed, length=length)
    assert len(mixed.results) == len(mixed.teams)
    assert len(set(mixed.results)) == len(mixed.results), "no duplicates"
    if length is not None:
        assert len(mixed.results) <= length
    size = {CHAMPION: 0, CHALLENGER: 0}
    for doc, team in zip(mixed.results, mixed.teams, strict=True):
        assert doc in (a if team == CHAMPION else b), "each result comes from the list of the team that drafted it"
        size[team] += 1
        assert abs(size[CHAMPION] - size[CHALLENGER]) <= 1, "teams stay level at every prefix"
    for team, ranking in ((CHAMPION, a), (CHALLENGER, b)):
        picked = [d for d, t in zip(mixed.results, mixed.teams, strict=True) if t == team]
        assert picked == [d for d in ranking if d in picked], "a team drafts in its own ranking's order"
    assert team_draft(a, b, seed=seed, length=length) == mixed, "deterministic given the seed"


def test_the_list_can_be_rebuilt_from_the_request_id_and_seeds_vary():
    a = [f"a{i}" for i in range(10)]
    b = [f"b{i}" for i in range(10)]
    seeds = {interleave_seed("exp", f"req-{i}") for i in range(200)}
    assert len(seeds) == 200
    first = team_draft(a, b, seed=interleave_seed("exp", "req-7"), length=10)
    assert team_draft(a, b, seed=interleave_seed("exp", "req-7"), length=10) == first
    # who drafts first is a fair coin across requests
    starts = [team_draft(a, b, seed=s, length=2).teams[0] for s in seeds]
    assert 70 < starts.count(CHAMPION) < 130


def test_identical_rankings_give_the_same_list():
    ranking = [f"d{i}" for i in range(10)]
    mixed = team_draft(ranking, list(ranking), seed=3, length=10)
    assert list(mixed.results) == ranking


def test_top_results_of_both_rankers_come_first():
    mixed = team_draft(["a1", "a2", "a3"], ["b1", "b2", "b3"], seed=11, length=6)
    assert set(mixed.results[:2]) == {"a1", "b1"}
    assert set(mixed.results[2:4]) == {"a2", "b2"}


def _outcome(results, teams, clicks):
    return Outcome("u", INTERLEAVED, tuple(results), tuple(clicks), "r", tuple(teams))


def test_clicks_are_credited_to_the_team_that_placed_the_result():
    results = ["x", "y", "z", "w"]
    teams = [CHALLENGER, CHAMPION, CHAMPION, CHALLENGER]
    assert credit(_outcome(results, teams, ["x"])) == CHALLENGER
    assert credit(_outcome(results, teams, ["y", "z", "w"])) == CHAMPION
    assert credit(_outcome(results, teams, ["x", "y"])) == "tie"
    assert credit(_outcome(results, teams, [])) == "tie"
    assert credit(_outcome(results, teams, ["not-shown"])) == "tie"
