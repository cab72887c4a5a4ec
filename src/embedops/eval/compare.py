"""Paired comparison of two saved retrieval reports, refused unless both ran the same queries over the same corpus.

Per-query scores are comparable only when both systems searched the same documents: over 200 documents a query
finds its relevant abstract far more easily than over 5000, so a "significant" gain may be nothing but a smaller
haystack. Reports carry the corpus facts in `info` (`documents`, `dataset`, `split`, and since this check
`corpus_fingerprint`, a hash of the sorted document ids); every fact both reports carry must agree.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from embedops.errors import InputError
from embedops.eval.significance import PairedComparison, paired_test

CORPUS_FACTS = ("corpus_fingerprint", "documents", "dataset", "split")
"""`info` keys that identify the corpus and judgements a retrieval report was scored on."""


def load_report(path: str | Path) -> dict[str, Any]:
    """Read a report.json written by `eval retrieval --output`; refuses files without per-query scores."""
    p = Path(path)
    if not p.is_file():
        raise InputError("report not found", where=str(p))
    try:
        report = json.loads(p.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"not a JSON report: {exc}", where=str(p)) from exc
    if not isinstance(report, dict) or not isinstance(report.get("per_query"), dict) or not report["per_query"]:
        raise InputError("report has no per-query scores (write it with `eval retrieval --output`)", where=str(p))
    return report


def _corpus_facts(report: dict[str, Any]) -> dict[str, Any]:
    info = report.get("info") if isinstance(report.get("info"), dict) else {}
    return {k: info[k] for k in CORPUS_FACTS if info.get(k) is not None}


def _describe(facts: dict[str, Any]) -> str:
    where = "/".join(str(facts[k]) for k in ("dataset", "split") if k in facts) or "unknown dataset"
    parts = [where]
    if "documents" in facts:
        parts.append(f"{facts['documents']} documents")
    if "corpus_fingerprint" in facts:
        parts.append(f"corpus {facts['corpus_fingerprint']}")
    return ", ".join(parts)


def check_comparable(report_a: dict[str, Any], report_b: dict[str, Any], *, name_a: str = "A",
                     name_b: str = "B") -> list[str]:
    """Refuse (InputError naming both) reports over different queries or corpora; returns the shared query ids."""
    fa, fb = _corpus_facts(report_a), _corpus_facts(report_b)
    both_fingerprinted = "corpus_fingerprint" in fa and "corpus_fingerprint" in fb
    # The fingerprint decides the corpus when both carry it: the same documents under a renamed folder still compare.
    keys = [k for k in CORPUS_FACTS if k in fa and k in fb and not (both_fingerprinted and k == "dataset")]
    differing = [k for k in keys if fa[k] != fb[k]]
    if differing:
        raise InputError(
            f"the reports were scored over different corpora ({', '.join(differing)} differ): "
            f"{name_a}: {_describe(fa)}; {name_b}: {_describe(fb)}",
            hint="compare runs of the same dataset, split and sample")
    qa, qb = set(report_a.get("per_query") or {}), set(report_b.get("per_query") or {})
    if qa != qb:
        raise InputError(f"the reports cover different queries ({len(qa ^ qb)} differ): {name_a} has {len(qa)}, "
                         f"{name_b} has {len(qb)}", hint="compare runs on the same split")
    if not qa:
        raise InputError("the reports have no per-query scores")
    return sorted(qa)


def compare_reports(report_a: dict[str, Any], report_b: dict[str, Any], metrics: list[str], *,
                    resamples: int = 10_000, name_a: str = "A",
                    name_b: str = "B") -> tuple[list[PairedComparison], dict[str, np.ndarray]]:
    """Paired test of B - A per metric over the shared queries, after `check_comparable`; also the differences."""
    qids = check_comparable(report_a, report_b, name_a=name_a, name_b=name_b)
    comparisons: list[PairedComparison] = []
    diffs: dict[str, np.ndarray] = {}
    for metric in metrics:
        for name, report in ((name_a, report_a), (name_b, report_b)):
            absent = [q for q in qids if not isinstance(report["per_query"][q], dict)
                      or metric not in report["per_query"][q]]
            if absent:
                raise InputError(f"metric {metric!r} is missing from report {name} ({len(absent)} queries)")
        xa = np.array([report_a["per_query"][q][metric] for q in qids], dtype=np.float64)
        xb = np.array([report_b["per_query"][q][metric] for q in qids], dtype=np.float64)
        comparisons.append(paired_test(xa, xb, metric=metric, resamples=resamples))
        diffs[metric] = xb - xa
    return comparisons, diffs
