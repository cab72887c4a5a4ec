"""`make demo`: the whole first loop on the bundled model and the shipped SciFact sample, offline.

prepare -> index -> search (dense, hybrid, recommend) -> evaluate -> check the success criteria.
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


def main(out_dir: str | Path = "demo-output", *, serve: bool = False, port: int = 8000) -> None:
    """Run the demo, writing its files under `out_dir`."""
    from embedops._console import quiet_libraries
    from embedops._io import atomic_write_text
    from embedops.config import load_config
    from embedops.config.starter import render_starter
    from embedops.data import load_beir
    from embedops.data.beir import read_beir_corpus
    from embedops.data.prepare import prepare
    from embedops.eval import evaluate_sts
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

    console.print("[bold]2. index[/] embed the corpus into a FAISS + SQLite collection")
    from embedops.index import Collection

    encoder = load_encoder()
    docs = list(read_beir_corpus(out / "corpus.jsonl").values())
    collection = Collection.create(out / "collection", encoder, overwrite=True)
    collection.add(docs, show_progress=True)
    collection.flush()
    info = collection.info()
    console.print(f"   {len(collection)} documents -> {encoder.output_dimension}-d vectors in {out / 'collection'} "
                  f"(index: {info.get('index', {}).get('factory', '?')}); {encoder.truncated_count} inputs truncated "
                  f"at {encoder.max_tokens} tokens (reported, not silent)")

    console.print("[bold]3. search[/] dense and hybrid (BM25 + dense), then 'more like this'")
    dataset = load_beir(SAMPLE, "test")
    titles = {d.id: d.title for d in docs}
    for mode, (qid, text) in zip(("dense", "hybrid", "hybrid"), list(dataset.queries.items())[:3], strict=True):
        table = Table(title=f"{mode} · query {qid}: {text}", title_justify="left")
        for col, just in (("score", "right"), ("doc", "left"), ("relevant", "left"), ("title", "left")):
            table.add_column(col, justify=just)
        for hit in collection.search(text, k=3, mode=mode):
            table.add_row(f"{hit.score:.3f}", hit.id, "yes" if hit.id in dataset.qrels.get(qid, {}) else "",
                          titles.get(hit.id, "")[:70])
        console.print(table)
    seed = docs[0]
    similar = collection.recommend([seed.id], k=3)
    console.print(f"   more like [italic]{seed.title[:60]}[/]: " + "; ".join(
        f"{titles.get(h.id, h.id)[:50]} ({h.score:.2f})" for h in similar))
    console.print("[bold]4. evaluate[/] retrieval through the collection, dense vs hybrid")
    from embedops.eval import evaluate_run

    qids = list(dataset.queries)
    table = Table(title="retrieval on the sample (40 claims, 300 abstracts)", title_justify="left")
    table.add_column("mode")
    rows = []
    for mode in ("dense", "keyword", "hybrid"):
        hits = collection.search_batch([dataset.queries[q] for q in qids], k=100, mode=mode, with_content=False)
        run = {q: {h.id: h.score for h in row} for q, row in zip(qids, hits, strict=True)}
        res = evaluate_run(dataset.qrels, run)
        rows.append((mode, res.metrics))
    for m in rows[0][1]:
        table.add_column(m, justify="right")
    for mode, metrics in rows:
        table.add_row(mode, *[f"{v:.4f}" for v in metrics.values()])
    console.print(table)
    collection.close()
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
    if serve:
        serve_collection(out / "collection", port=port)


def serve_collection(folder: Path, *, port: int = 8000) -> None:
    """Step 6: serve the demo collection on 127.0.0.1 (no API key: local use) until Ctrl-C."""
    from embedops.cli.serve_cmd import serve as serve_command

    url = f"http://127.0.0.1:{port}"
    console.print(f"[bold]6. serve[/] the collection and the embeddings API at {url} (Ctrl-C stops it)")
    console.print(f"   curl -s {url}/v1/collections/demo/search -H 'content-type: application/json' "
                  """-d '{"query": "vitamin D and diabetes", "k": 3}'""", highlight=False, soft_wrap=True)
    console.print(f"   curl -s {url}/v1/embeddings -H 'content-type: application/json' "
                  """-d '{"input": ["semantic search"], "model": "default"}'""", highlight=False, soft_wrap=True)
    try:
        serve_command(None, host="127.0.0.1", port=port, collection=[f"demo={folder}"], no_auth=True)
    except KeyboardInterrupt:
        pass


def _cli() -> None:
    import argparse

    parser = argparse.ArgumentParser(description="The whole first loop on the bundled model, then serve it.")
    parser.add_argument("--out", default="demo-output", help="folder for the demo's files")
    parser.add_argument("--no-serve", action="store_true", help="stop after the loop (also when CI=true)")
    parser.add_argument("--port", type=int, default=int(os.environ.get("EMBEDOPS_PORT", "8000")))
    args = parser.parse_args()
    serve = not args.no_serve and os.environ.get("CI", "").lower() not in ("true", "1")
    main(args.out, serve=serve, port=args.port)


if __name__ == "__main__":
    _cli()
