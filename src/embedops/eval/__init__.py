"""Evaluation: retrieval and STS metrics, significance tests, reports and plots."""

from embedops.eval.compare import check_comparable, compare_reports, load_report
from embedops.eval.retrieval import DEFAULT_METRICS, RetrievalResult, evaluate_run, exact_search
from embedops.eval.runner import evaluate_retrieval, evaluate_sts, retrieve_exact
from embedops.eval.significance import PairedComparison, paired_test
from embedops.eval.sts import sts_scores

__all__ = [
    "DEFAULT_METRICS",
    "PairedComparison",
    "RetrievalResult",
    "check_comparable",
    "compare_reports",
    "evaluate_retrieval",
    "evaluate_run",
    "evaluate_sts",
    "exact_search",
    "load_report",
    "paired_test",
    "retrieve_exact",
    "sts_scores",
]
