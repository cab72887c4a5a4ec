"""SciFact dense retrieval through FAISS Flat, Milvus (FLAT) and Qdrant (local mode): the same nDCG@10, and what
each costs (upsert rate, search latency), plus a checked migration FAISS -> Milvus -> FAISS.

Run: HF_HUB_OFFLINE=1 flock /tmp/embedops-heavy.lock .venv/bin/python benchmarks/stores.py
Writes benchmarks/results/stores.json. The corpus is embedded once with the bundled model through embedops' cache
(encode_cached, ~5 min of CPU when cold), so every backend gets the same vectors and only the store differs.

- FAISS Flat (IndexSpec kind=flat) is the baseline: exact inner product, in process.
- Milvus 2.3.5 standalone from the `milvus` package, started here (embedops.index.milvus_local, default settings),
  index FLAT / metric IP; searched at consistency Session (the store's default: read-your-writes within the
  process) and at Strong (?consistency=strong: every read waits for the server's next time tick, 200 ms by default).
- Qdrant through qdrant-client's local mode in a folder (no Qdrant server can be installed here): exact search in
  Python, DOT distance.

Latency: one query per call (k=100, the depth the metrics read), median and p95 over the 300 test queries, after 10
warm-up calls. Upsert: the whole corpus (vectors, texts, metadata) in batches of 512, as Collection.add sends them.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "scifact"
OUT = ROOT / "benchmarks" / "results" / "stores.json"
K = 100
BATCH = 512
TOLERANCE = 0.002


def main() -> int:
    """Embed, load every backend, search, score, migrate; print the table and write the JSON."""
    import faiss
    import numpy as np

    from embedops.data import load_beir
    from embedops.eval import evaluate_run
    from embedops.eval.cache import encode_cached
    from embedops.index import FaissStore, IndexSpec
    from embedops.index.migrate import migrate
    from embedops.index.milvus_local import LocalMilvus
    from embedops.index.stores import create_store, open_store
    from embedops.models import load_encoder

    faiss.omp_set_num_threads(1)
    ds = load_beir(DATA, "test")
    encoder = load_encoder(None)
    docs = list(ds.corpus.values())
    ids = [d.id for d in docs]
    texts = [d.full_text for d in docs]
    metas = [{"title_words": len((d.title or "").split())} for d in docs]
    t0 = time.perf_counter()
    vectors = encode_cached(encoder, texts, kind="document", show_progress=True)
    embed_seconds = time.perf_counter() - t0
    qids = list(ds.queries)
    qv = encoder.encode([ds.queries[q] for q in qids], kind="query")
    print(f"{len(docs)} documents ({embed_seconds:.1f} s to embed or read from the cache), {len(qids)} queries")

    results: dict = {"dataset": "scifact/test", "documents": len(docs), "queries": len(qids), "k": K,
                     "model": encoder.name, "batch": BATCH, "backends": {}, "cpu": _cpu()}

    def load(store) -> float:
        started = time.perf_counter()
        for s in range(0, len(ids), BATCH):
            store.upsert(ids[s : s + BATCH], vectors[s : s + BATCH], metas[s : s + BATCH], texts[s : s + BATCH])
        return time.perf_counter() - started

    def measure(name: str, store, upsert_seconds: float | None) -> None:
        for q in qv[:10]:
            store.search(q[None, :], K)
        latencies, run = [], {}
        for qid, q in zip(qids, qv, strict=True):
            started = time.perf_counter()
            hits = store.search(q[None, :], K)[0]
            latencies.append(time.perf_counter() - started)
            run[qid] = {h.id: h.score for h in hits}
        metrics = evaluate_run(ds.qrels, run, ("ndcg@10", "recall@100")).metrics
        row = {**metrics, "search_ms_median": round(1000 * statistics.median(latencies), 3),
               "search_ms_p95": round(1000 * float(np.percentile(latencies, 95)), 3),
               "top10": {q: list(r)[:10] for q, r in run.items()}}
        if upsert_seconds is not None:
            row["upsert_seconds"] = round(upsert_seconds, 2)
            row["upsert_docs_per_s"] = round(len(ids) / upsert_seconds, 1)
        results["backends"][name] = row
        print(f"{name:28s} nDCG@10 {metrics['ndcg@10']:.4f}  median {row['search_ms_median']:8.2f} ms")

    with tempfile.TemporaryDirectory(prefix="embedops-stores-") as tmp:
        tmp = Path(tmp)
        faiss_store = FaissStore.create(tmp / "faiss", encoder.output_dimension, IndexSpec(kind="flat"))
        measure("faiss flat (baseline)", faiss_store, load(faiss_store))

        qdrant_url = f"qdrant://{tmp / 'qdrant'}"
        qdrant = create_store(qdrant_url, "scifact", encoder.output_dimension, IndexSpec(kind="flat"))
        measure("qdrant local (exact)", qdrant, load(qdrant))
        qdrant.close()

        server = LocalMilvus(tmp / "milvus")
        started = time.perf_counter()
        url = server.start()
        results["milvus_start_seconds"] = round(time.perf_counter() - started, 2)
        try:
            milvus = create_store(url, "scifact", encoder.output_dimension, IndexSpec(kind="flat"))
            measure("milvus FLAT (session)", milvus, load(milvus))
            milvus.close()
            strong = open_store(url + "?consistency=strong", "scifact")
            measure("milvus FLAT (strong)", strong, None)
            strong.close()
            faiss_store.flush()
            faiss_store.close()
            there = migrate("faiss", tmp / "faiss", url, "migrated", batch_size=1000)
            back = migrate(url, "migrated", "faiss", tmp / "back", batch_size=1000)
            results["migration"] = {"faiss_to_milvus": _brief(there), "milvus_to_faiss": _brief(back),
                                    "checksums_equal": there["checksum"] == back["checksum"]}
        finally:
            server.stop()

    base = results["backends"]["faiss flat (baseline)"]
    print(f"\n{'backend':28s} {'nDCG@10':>8s} {'diff':>9s} {'top-10 same':>11s} {'upsert/s':>9s} "
          f"{'search ms':>9s} {'x FAISS':>8s}")
    for name, row in results["backends"].items():
        diff = row["ndcg@10"] - base["ndcg@10"]
        same = statistics.mean(row["top10"][q] == base["top10"][q] for q in qids)
        row["ndcg10_diff_vs_faiss"] = round(diff, 6)
        row["within_tolerance"] = abs(diff) <= TOLERANCE
        row["top10_identical_fraction"] = round(same, 4)
        row["latency_x_faiss"] = round(row["search_ms_median"] / base["search_ms_median"], 1)
        rate = row.get("upsert_docs_per_s")
        print(f"{name:28s} {row['ndcg@10']:8.4f} {diff:+9.5f} {same:11.3f} "
              f"{rate if rate is not None else '-':>9} {row['search_ms_median']:9.2f} {row['latency_x_faiss']:8.1f}")
    for row in results["backends"].values():
        row.pop("top10")
    m = results["migration"]
    print(f"\nmigration FAISS -> Milvus: {m['faiss_to_milvus']['seconds']} s, Milvus -> FAISS: "
          f"{m['milvus_to_faiss']['seconds']} s, checksums equal: {m['checksums_equal']}")
    results["tolerance"] = TOLERANCE
    results["all_within_tolerance"] = all(r["within_tolerance"] for r in results["backends"].values())
    OUT.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {OUT.relative_to(ROOT)}")
    return 0 if results["all_within_tolerance"] and m["checksums_equal"] else 1


def _brief(report: dict) -> dict:
    return {k: report[k] for k in ("documents", "checksum", "copy_seconds", "verify_seconds", "seconds")}


def _cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return f"{line.split(':', 1)[1].strip()} x{os.cpu_count()}"
    except OSError:
        pass
    return f"x{os.cpu_count()}"


if __name__ == "__main__":
    sys.exit(main())
