"""`embedops eval retrieval | sts | compare`."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated

import numpy as np
import typer

from embedops.cli._common import console, load_encoder_quietly, metrics_table
from embedops.errors import InputError

eval_app = typer.Typer(help="Evaluate a model: retrieval (BEIR), STS, and paired comparison of two runs.",
                       no_args_is_help=True)

ModelOpt = Annotated[str | None, typer.Option("--model", "-m", help="Model name, folder, HF id or registry alias.")]
BackendOpt = Annotated[str, typer.Option("--backend", help="Encoder backend: torch or onnx.")]
QuantOpt = Annotated[
    str, typer.Option("--quantization", help="onnx only: none or int8 (run `embedops quantize` first).")
]


def _check_quantization(backend: str, quantization: str) -> None:
    if quantization not in ("none", "int8"):
        raise InputError(f"--quantization must be none or int8, got {quantization!r}")
    if quantization != "none" and backend != "onnx":
        raise InputError("--quantization int8 needs --backend onnx")


def _encoder(model: str | None, backend: str, quantization: str):
    _check_quantization(backend, quantization)
    options = {"quantization": quantization} if backend == "onnx" else {}
    return load_encoder_quietly(model, backend, **options)
OutputOpt = Annotated[Path | None, typer.Option("--output", "-o", help="Folder for report.json/.md/.png.")]


def _metrics_list(text: str) -> list[str]:
    from embedops.eval.retrieval import _parse_metric

    names = [m.strip() for m in text.split(",") if m.strip()]
    for name in names:
        _parse_metric(name)
    return names


@eval_app.command("retrieval")
def retrieval(
    data: Annotated[Path, typer.Argument(help="BEIR folder (corpus.jsonl, queries.jsonl, qrels/<split>.tsv).")],
    split: Annotated[str, typer.Option(help="Qrels split to evaluate.")] = "test",
    model: ModelOpt = None,
    backend: BackendOpt = "torch",
    quantization: QuantOpt = "none",
    metrics: Annotated[str, typer.Option(help="Comma-separated metrics.")] = "ndcg@10,recall@100,mrr@10,map@100",
    batch_size: Annotated[int, typer.Option(min=1)] = 32,
    sample_queries: Annotated[int | None, typer.Option(help="Evaluate on this many random queries.")] = None,
    sample_documents: Annotated[int | None, typer.Option(help="Judged docs + random others up to this many.")] = None,
    cache: Annotated[bool, typer.Option(help="Reuse cached embeddings of identical texts and model.")] = True,
    chunk_tokens: Annotated[
        int | None, typer.Option(min=16, help="Split long documents into chunks of this many tokens; max-fold.")
    ] = None,
    chunk_overlap: Annotated[int, typer.Option(min=0)] = 32,
    output: OutputOpt = None,
) -> None:
    """Dense retrieval with exact search on a BEIR folder; prints nDCG@10, Recall@100, MRR@10, MAP."""
    from embedops.data import load_beir, sample_beir
    from embedops.eval import evaluate_retrieval
    from embedops.eval.report import write_metrics_report

    started = time.perf_counter()
    _check_quantization(backend, quantization)
    metric_names = _metrics_list(metrics)
    dataset = load_beir(data, split)
    if sample_queries or sample_documents:
        dataset = sample_beir(dataset, queries=sample_queries, documents=sample_documents)
    encoder = _encoder(model, backend, quantization)
    console.print(f"[bold]{dataset.name}[/] ({split}): {len(dataset.corpus)} documents, "
                  f"{len(dataset.queries)} queries; model [bold]{encoder.name}[/] ({backend})")
    result = evaluate_retrieval(encoder, dataset, metrics=metric_names, batch_size=batch_size,
                                use_cache=cache, show_progress=True, chunk_tokens=chunk_tokens,
                                chunk_overlap=chunk_overlap)
    result.info["wall_seconds_total"] = round(time.perf_counter() - started, 2)
    console.print(metrics_table(f"retrieval on {dataset.name}/{split}", result.metrics.items()))
    info = result.info
    console.print(f"{info['truncated_inputs']} of {info['documents'] + info['queries']} inputs were truncated at "
                  f"{info['max_tokens']} tokens; wall time {info['wall_seconds_total']:.1f} s")
    if output:
        paths = write_metrics_report(output, f"{encoder.name} on {dataset.name}/{split}", result.metrics, info,
                                     extra={"kind": "retrieval", "per_query": result.per_query})
        console.print(f"report: {paths['json']}, {paths['markdown']}, {paths['png']}")


@eval_app.command("sts")
def sts(
    data: Annotated[Path, typer.Argument(help="stsbenchmark.tsv or the folder holding it.")],
    split: Annotated[str, typer.Option(help="train, dev or test.")] = "test",
    model: ModelOpt = None,
    backend: BackendOpt = "torch",
    quantization: QuantOpt = "none",
    batch_size: Annotated[int, typer.Option(min=1)] = 32,
    cache: Annotated[bool, typer.Option(help="Reuse cached embeddings.")] = True,
    output: OutputOpt = None,
) -> None:
    """Spearman and Pearson correlation of cosine similarity with gold scores (STS Benchmark)."""
    from embedops.data import load_sts
    from embedops.eval import evaluate_sts
    from embedops.eval.report import write_metrics_report

    _check_quantization(backend, quantization)
    pairs = load_sts(data, split)
    encoder = _encoder(model, backend, quantization)
    result = evaluate_sts(encoder, pairs, batch_size=batch_size, use_cache=cache, show_progress=True)
    metrics = {"spearman": result["spearman"], "pearson": result["pearson"]}
    console.print(metrics_table(f"STS {split} ({result['pairs']} pairs)", metrics.items()))
    if output:
        info = {k: v for k, v in result.items() if k not in metrics}
        paths = write_metrics_report(output, f"{encoder.name} on STS/{split}", metrics, info, extra={"kind": "sts"})
        console.print(f"report: {paths['json']}, {paths['markdown']}, {paths['png']}")


def _load_report(path: Path) -> dict:
    if not path.is_file():
        raise InputError("report not found", where=str(path))
    try:
        report = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"not a JSON report: {exc}", where=str(path)) from exc
    if not isinstance(report, dict) or "per_query" not in report:
        raise InputError("report has no per-query scores (write it with `eval retrieval --output`)",
                         where=str(path))
    return report


@eval_app.command("compare")
def compare(
    report_a: Annotated[Path, typer.Argument(help="report.json of system A (the baseline).")],
    report_b: Annotated[Path, typer.Argument(help="report.json of system B (the candidate).")],
    metrics: Annotated[str, typer.Option(help="Comma-separated metrics to compare.")] = "ndcg@10,recall@100",
    resamples: Annotated[int, typer.Option(min=100)] = 10_000,
    output: OutputOpt = None,
) -> None:
    """Paired bootstrap CI and randomization test of B - A over the same queries."""
    from embedops.eval.report import write_comparison_report
    from embedops.eval.significance import paired_test

    a, b = _load_report(report_a), _load_report(report_b)
    qa, qb = set(a["per_query"]), set(b["per_query"])
    if qa != qb:
        raise InputError(f"the reports cover different queries ({len(qa ^ qb)} differ); compare runs on the same split")
    qids = sorted(qa)
    comparisons, diffs = [], {}
    for metric in _metrics_list(metrics):
        if metric not in a["per_query"][qids[0]] or metric not in b["per_query"][qids[0]]:
            raise InputError(f"metric {metric!r} is missing from a report")
        xa = np.array([a["per_query"][q][metric] for q in qids])
        xb = np.array([b["per_query"][q][metric] for q in qids])
        comparisons.append(paired_test(xa, xb, metric=metric, resamples=resamples))
        diffs[metric] = xb - xa
    from rich.table import Table

    table = Table(title=f"B ({report_b}) - A ({report_a}), {len(qids)} queries", title_justify="left")
    for col in ("metric", "A", "B", "B - A", "95% CI", "p", "significant"):
        table.add_column(col, justify="right" if col != "metric" else "left")
    for c in comparisons:
        table.add_row(c.metric, f"{c.mean_a:.4f}", f"{c.mean_b:.4f}", f"{c.diff:+.4f}",
                      f"[{c.ci_low:+.4f}, {c.ci_high:+.4f}]", f"{c.p_value:.4f}", "yes" if c.significant else "no")
    console.print(table)
    if output:
        paths = write_comparison_report(output, str(report_a), str(report_b), comparisons, diffs)
        console.print(f"report: {paths['json']}, {paths['markdown']}, {paths['png']}")


def register(app: typer.Typer) -> None:
    """Add the `eval` group."""
    app.add_typer(eval_app, name="eval")
