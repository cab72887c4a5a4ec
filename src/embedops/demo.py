"""`make demo`: the whole first loop on the bundled model and the shipped SciFact sample, offline.

prepare -> embed -> search -> evaluate -> check the success criteria.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

SAMPLE = Path(__file__).parent / "samples" / "scifact-mini"
console = Console()


def _shared_sts() -> Path | None:
    for base in (Path.cwd().parent / "shared" / "data", Path(os.environ.get("EMBEDOPS_SHARED_DATA", "/nonexistent"))):
        if (base / "stsbenchmark" / "stsbenchmark.tsv").is_file():
            return base / "stsbenchmark"
    return None


def main(out_dir: str | Path = "demo-output") -> None:
    """Run the demo, writing its files under `out_dir`."""
    from embedops._io import atomic_write_text
    from embedops.cli._common import quiet_libraries
    from embedops.config import load_config
    from embedops.config.starter import render_starter
    from embedops.data import load_beir
    from embedops.data.beir import read_beir_corpus
    from embedops.data.prepare import prepare
    from embedops.eval import evaluate_retrieval, evaluate_sts, exact_search
    from embedops.eval.criteria import measure_criteria
    from embedops.models import load_encoder

    started = time.perf_counter()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    quiet_libraries()
    console.rule("[bold]embedops demo[/]: SciFact sample (40 claims, 300 abstracts), all-MiniLM-L6-v2, offline")

    console.print("[bold]1. prepare[/] clean, dedupe, report")
    report = prepare(SAMPLE / "corpus.jsonl", out / "corpus.jsonl")
    console.print(f"   read {report.read}, cleaned {report.changed_by_cleaning}, "
                  f"duplicates dropped {len(report.dropped_exact_duplicates) + len(report.dropped_near_duplicates)}, "
                  f"written {report.written} -> {out / 'corpus.jsonl'}")

    console.print("[bold]2. embed[/] the corpus with the bundled model")
    encoder = load_encoder()
    docs = list(read_beir_corpus(out / "corpus.jsonl").values())
    doc_emb = encoder.encode([d.full_text for d in docs], show_progress=True)
    console.print(f"   {len(docs)} documents -> {doc_emb.shape[1]}-d vectors; "
                  f"{encoder.truncated_count} inputs truncated at {encoder.max_tokens} tokens (reported, not silent)")

    console.print("[bold]3. search[/]")
    dataset = load_beir(SAMPLE, "test")
    queries = list(dataset.queries.items())[:3]
    q_emb = encoder.encode([q for _, q in queries], kind="query")
    scores, idx = exact_search(q_emb, doc_emb, 3)
    for (qid, text), row_s, row_i in zip(queries, scores, idx, strict=True):
        table = Table(title=f"query {qid}: {text}", title_justify="left", show_header=True)
        table.add_column("score", justify="right")
        table.add_column("doc")
        table.add_column("relevant")
        table.add_column("title")
        for s, i in zip(row_s, row_i, strict=True):
            d = docs[i]
            table.add_row(f"{s:.3f}", d.id, "yes" if d.id in dataset.qrels.get(qid, {}) else "", d.title[:80])
        console.print(table)

    console.print("[bold]4. evaluate[/]")
    res = evaluate_retrieval(encoder, dataset)
    table = Table(title="retrieval on the sample (exact search)", title_justify="left")
    for m in res.metrics:
        table.add_column(m, justify="right")
    table.add_row(*[f"{v:.4f}" for v in res.metrics.values()])
    console.print(table)
    sts_dir = _shared_sts()
    if sts_dir:
        from embedops.data import load_sts

        sts = evaluate_sts(encoder, load_sts(sts_dir, "test"))
        console.print(f"   STS Benchmark test: Spearman {sts['spearman']:.4f}, Pearson {sts['pearson']:.4f} "
                      f"({sts['pairs']} pairs; published 0.8203)")

    console.print("[bold]5. check[/] the success criteria in a starter project file")
    cfg_path = out / "embedops.yaml"
    atomic_write_text(cfg_path, render_starter(name="demo", data_path=str(SAMPLE / "corpus.jsonl"),
                                               retrieval=str(SAMPLE), sts=str(sts_dir) if sts_dir else "null"))
    results = measure_criteria(load_config(cfg_path), encoder)
    table = Table(title=f"criteria in {cfg_path}", title_justify="left")
    for col in ("criterion", "measured", "result"):
        table.add_column(col)
    for r in results:
        table.add_row(str(r.criterion), "" if r.value is None else f"{r.value:.4g}", r.status)
    console.print(table)
    console.rule(f"done in {time.perf_counter() - started:.0f} s; files in {out}/")


if __name__ == "__main__":
    main()
