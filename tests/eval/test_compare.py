"""Comparing two saved retrieval reports: refused over different corpora or queries, paired test otherwise."""

from __future__ import annotations

import json

import pytest

from embedops.data import corpus_fingerprint, load_beir, sample_beir
from embedops.errors import InputError
from embedops.eval import check_comparable, compare_reports, evaluate_retrieval, load_report
from embedops.eval.report import write_metrics_report


@pytest.fixture(scope="module")
def reports(tmp_path_factory, encoder, small_beir):
    """Real reports: the SciFact sample (120 documents), a rerun of it, and the same queries over 23 documents."""
    full = load_beir(small_beir, "test")
    haystack = sample_beir(full, documents=23, seed=5)
    assert set(haystack.queries) == set(full.queries) and len(haystack.corpus) == 23
    out = tmp_path_factory.mktemp("reports")
    paths = {}
    for name, ds in (("full", full), ("again", full), ("small", haystack)):
        res = evaluate_retrieval(encoder, ds, metrics=["ndcg@10", "recall@100"])
        paths[name] = write_metrics_report(out / name, name, res.metrics, res.info,
                                           extra={"kind": "retrieval", "per_query": res.per_query})["json"]
    return {name: load_report(p) for name, p in paths.items()}


def test_reports_carry_the_corpus_fingerprint(reports, small_beir):
    ids = list(load_beir(small_beir, "test").corpus)
    assert reports["full"]["info"]["corpus_fingerprint"] == corpus_fingerprint(ids)
    assert corpus_fingerprint(reversed(ids)) == corpus_fingerprint(ids)
    assert corpus_fingerprint(ids[:-1]) != corpus_fingerprint(ids)
    assert reports["small"]["info"]["documents"] == 23


def test_runs_over_different_corpora_are_refused(reports):
    # Same queries, 120 vs 23 documents: the smaller haystack "wins" on recall without any model being better.
    with pytest.raises(InputError, match="different corpora") as exc:
        compare_reports(reports["full"], reports["small"], ["ndcg@10"], name_a="full.json", name_b="small.json")
    message = str(exc.value)
    assert "full.json: scifact-small/test, 120 documents" in message
    assert "small.json: scifact-small/test, 23 documents" in message


def test_old_reports_without_a_fingerprint_are_checked_on_the_facts_they_carry(reports):
    old_full, old_small = (json.loads(json.dumps(reports[n])) for n in ("full", "small"))
    for r in (old_full, old_small):
        del r["info"]["corpus_fingerprint"]
    with pytest.raises(InputError, match=r"different corpora \(documents differ\)"):
        check_comparable(old_full, old_small)
    # Same document count but a different sample: only the fingerprint can tell, and one report has it.
    same_count = json.loads(json.dumps(reports["full"]))
    same_count["info"]["corpus_fingerprint"] = corpus_fingerprint(["another", "corpus"])
    with pytest.raises(InputError, match="corpus_fingerprint differ"):
        check_comparable(reports["full"], same_count)


def test_the_same_corpus_under_another_folder_name_compares(reports):
    renamed = json.loads(json.dumps(reports["again"]))
    renamed["info"]["dataset"] = "scifact-copy"
    assert len(check_comparable(reports["full"], renamed)) == 20


def test_different_queries_are_refused(reports):
    fewer = json.loads(json.dumps(reports["again"]))
    fewer["per_query"].pop(next(iter(fewer["per_query"])))
    with pytest.raises(InputError, match=r"different queries \(1 differ\): A has 20, B has 19"):
        check_comparable(reports["full"], fewer)


def test_a_rerun_compares_as_identical(reports):
    comparisons, diffs = compare_reports(reports["full"], reports["again"], ["ndcg@10", "recall@100"])
    assert [c.metric for c in comparisons] == ["ndcg@10", "recall@100"]
    for c in comparisons:
        assert c.n == 20 and c.diff == 0 and not c.significant and c.p_value == pytest.approx(1.0)
        assert not diffs[c.metric].any()
    with pytest.raises(InputError, match="metric 'mrr@10' is missing from report A"):
        compare_reports(reports["full"], reports["again"], ["mrr@10"])


def test_load_report_refuses_files_without_per_query_scores(tmp_path):
    with pytest.raises(InputError, match="report not found"):
        load_report(tmp_path / "none.json")
    (tmp_path / "sts.json").write_text('{"metrics": {"spearman": 0.82}}')
    with pytest.raises(InputError, match="no per-query scores"):
        load_report(tmp_path / "sts.json")
    (tmp_path / "broken.json").write_text("{")
    with pytest.raises(InputError, match="not a JSON report"):
        load_report(tmp_path / "broken.json")
