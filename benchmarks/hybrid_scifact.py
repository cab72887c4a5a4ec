"""SciFact through a Collection: dense Flat vs the exact-search evaluation, HNSW recall, BM25, hybrid fusions.

Run: HF_HUB_OFFLINE=1 flock /tmp/embedops-cpu.lock .venv/bin/python benchmarks/hybrid_scifact.py
Writes benchmarks/results/hybrid_scifact.json. Corpus embeddings come from embedops' cache (encode_cached), the
same vectors the exact-search evaluation uses, so the comparison isolates the index.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "scifact"
OUT = ROOT / "benchmarks" / "results" / "hybrid_scifact.json"


def main() -> int:
    """Run every measurement, print a table, write the JSON."""
    import faiss
    import numpy as np

    from embedops.data import load_beir
    from embedops.eval import evaluate_retrieval, evaluate_run, paired_test
    from embedops.index import Collection, IndexSpec
    from embedops.models import load_encoder

    faiss.omp_set_num_threads(1)
    ds = load_beir(DATA, "test")
    encoder = load_encoder(None)
    metrics = ("ndcg@10", "recall@100")
    t0 = time.perf_counter()
    exact = evaluate_retrieval(encoder, ds, metrics=metrics)
    print(f"exact-search evaluation: nDCG@10 {exact.metrics['ndcg@10']:.4f} ({time.perf_counter() - t0:.1f}s)")
    qids = list(ds.queries)
    qtexts = [ds.queries[q] for q in qids]
    results: dict = {"dataset": "scifact/test", "documents": len(ds.corpus), "queries": len(qids),
                     "model": encoder.name, "exact_search": exact.metrics, "modes": {}}
    per_query: dict[str, list[float]] = {}

    def score(name: str, hits_rows, seconds: float) -> None:
        run = {q: {h.id: h.score for h in row} for q, row in zip(qids, hits_rows, strict=True)}
        res = evaluate_run(ds.qrels, run, metrics)
        per_query[name] = [res.per_query[q]["ndcg@10"] for q in ds.qrels]
        results["modes"][name] = {**res.metrics, "ms_per_query": round(1000 * seconds / len(qids), 2)}
        print(f"{name:24s} nDCG@10 {res.metrics['ndcg@10']:.4f}  recall@100 {res.metrics['recall@100']:.4f}  "
              f"{1000 * seconds / len(qids):.2f} ms/query")

    with tempfile.TemporaryDirectory() as tmp:
        col = Collection.create(Path(tmp) / "scifact", encoder, spec=IndexSpec(kind="flat"))
        t0 = time.perf_counter()
        from embedops.eval.cache import encode_cached

        docs = list(ds.corpus.values())
        col.add(docs, vectors=encode_cached(encoder, [d.full_text for d in docs], kind="document"), refresh=False)
        results["build_seconds_flat"] = round(time.perf_counter() - t0, 2)
        results["index_flat"] = col.info()["index"]
        qv = encoder.encode(qtexts, kind="query")

        def timed(fn):
            t = time.perf_counter()
            out = fn()
            return out, time.perf_counter() - t

        dense, sec = timed(lambda: col.store.search(qv, 100))
        score("dense (flat)", dense, sec)
        diff = results["modes"]["dense (flat)"]["ndcg@10"] - exact.metrics["ndcg@10"]
        results["flat_vs_exact_ndcg10_diff"] = diff
        print(f"flat collection vs exact evaluation: nDCG@10 difference {diff:+.6f}")

        # The keyword index is built beside the live one (never inside a query): time the build on its own.
        t0 = time.perf_counter()
        col.refresh()
        results["bm25_build_seconds"] = round(time.perf_counter() - t0, 2)
        kw, sec = timed(lambda: col.search_batch(qtexts, 100, mode="keyword", with_content=False))
        score("bm25", kw, sec)
        for fusion in ("rrf", "minmax"):
            hy, sec = timed(lambda f=fusion: col.search_batch(qtexts, 100, mode="hybrid", fusion=f,
                                                              with_content=False))
            score(f"hybrid ({fusion})", hy, sec)
        default, sec = timed(lambda: col.search_batch(qtexts, 10, mode="hybrid", with_content=False))
        results["hybrid_default_k10_ndcg10"] = evaluate_run(
            ds.qrels, {q: {h.id: h.score for h in row} for q, row in zip(qids, default, strict=True)},
            ("ndcg@10",)).metrics["ndcg@10"]

        flat10 = col.store.search(qv, 10)
        t0 = time.perf_counter()
        col.rebuild(IndexSpec(kind="hnsw"))
        results["build_seconds_hnsw"] = round(time.perf_counter() - t0, 2)
        results["index_hnsw"] = col.info()["index"]
        results["spec_hnsw"] = col.info()["spec"]
        hnsw, sec = timed(lambda: col.store.search(qv, 10))
        recall = float(np.mean([len({h.id for h in a} & {h.id for h in b}) / 10
                                for a, b in zip(hnsw, flat10, strict=True)]))
        results["hnsw_default_recall10_vs_exact"] = recall
        print(f"HNSW (default parameters) recall@10 vs exact: {recall:.4f}")
        hnsw100, sec = timed(lambda: col.store.search(qv, 100))
        score("dense (hnsw)", hnsw100, sec)
        col.close()

    dense_q = per_query["dense (flat)"]
    for name in ("hybrid (rrf)", "hybrid (minmax)", "bm25"):
        cmp = paired_test(dense_q, per_query[name])  # diff = name - dense
        results["modes"][name]["vs_dense"] = {"diff": cmp.diff, "ci": [cmp.ci_low, cmp.ci_high],
                                              "p_value": cmp.p_value}
    cmp = paired_test(per_query["hybrid (rrf)"], per_query["hybrid (minmax)"])  # diff = minmax - rrf
    results["minmax_vs_rrf"] = {"diff": cmp.diff, "ci": [cmp.ci_low, cmp.ci_high], "p_value": cmp.p_value}
    print(f"minmax - rrf: {cmp.diff:+.4f} (95% CI {cmp.ci_low:+.4f}..{cmp.ci_high:+.4f}, p={cmp.p_value:.3f})")
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
