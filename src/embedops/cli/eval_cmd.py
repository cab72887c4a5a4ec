"""`embedops eval retrieval | sts | compare`."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from embedops.cli._common import (
    Backend,
    ConfigOpt,
    Quantization,
    console,
    metrics_option,
    metrics_table,
    open_project,
    project_encoder,
    resolve_model_early,
)
from embedops.config.checks import beir_layout, chunking, writable_target
from embedops.errors import InputError

eval_app = typer.Typer(help="Evaluate a model: retrieval (BEIR), STS, and paired comparison of two runs.",
                       no_args_is_help=True)

ModelOpt = Annotated[str | None, typer.Option("--model", "-m", help="Model name, folder, HF id or registry alias.")]
BackendOpt = Annotated[Backend, typer.Option("--backend", help="Encoder backend: torch, onnx or openvino.")]
QuantOpt = Annotated[
    Quantization, typer.Option("--quantization", help="onnx/openvino only: none or int8 (run `embedops quantize` "
                                                      "first).")
]
OutputOpt = Annotated[Path | None, typer.Option("--output", "-o", file_okay=False,
                                                help="Folder for report.json/.md/.png.")]


def _check_quantization(backend: str | None, quantization: str | None) -> None:
    if quantization not in (None, "none") and backend not in ("onnx", "openvino"):
        raise InputError("--quantization int8 needs --backend onnx or openvino", where="--quantization")


def _metrics_list(text: str) -> list[str]:
    from embedops.config.checks import retrieval_metrics

    return retrieval_metrics(text, "--metrics")


@eval_app.command("retrieval")
def retrieval(
    data: Annotated[Path, typer.Argument(exists=True, file_okay=False,
                                         help="BEIR folder (corpus.jsonl, queries.jsonl, qrels/<split>.tsv).")],
    split: Annotated[str, typer.Option(help="Qrels split to evaluate.")] = "test",
    model: ModelOpt = None,
    backend: BackendOpt = "torch",
    quantization: QuantOpt = "none",
    metrics: Annotated[str, metrics_option()] = "ndcg@10,recall@100,mrr@10,map@100",
    batch_size: Annotated[int | None, typer.Option(min=1)] = None,
    sample_queries: Annotated[int | None, typer.Option(min=1, help="Evaluate on this many random queries.")] = None,
    sample_documents: Annotated[int | None, typer.Option(min=1, help="Judged docs + random others up to this "
                                                                     "many.")] = None,
    cache: Annotated[bool, typer.Option(help="Reuse cached embeddings of identical texts and model.")] = True,
    chunk_tokens: Annotated[
        int | None, typer.Option(min=16, help="Split long documents into chunks of this many tokens; max-fold.")
    ] = None,
    chunk_overlap: Annotated[int, typer.Option(min=0)] = 32,
    output: OutputOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Dense retrieval with exact search on a BEIR folder; prints nDCG@10, Recall@100, MRR@10, MAP."""
    from embedops.eval.report import write_metrics_report

    started = time.perf_counter()
    _check_quantization(backend, quantization)
    metric_names = _metrics_list(metrics)
    chunking(chunk_tokens, chunk_overlap, "--chunk-overlap")
    beir_layout(data, split, "--split")
    writable_target(output, "--output", folder=True)
    project = open_project(config, batch_size=batch_size)
    resolve_model_early(project, model)
    encoder = project_encoder(project, model, backend, quantization)
    result, dataset = project.evaluate_retrieval(
        data, split=split, encoder=encoder, metrics=metric_names, sample_queries=sample_queries,
        sample_documents=sample_documents, use_cache=cache, show_progress=True, chunk_tokens=chunk_tokens,
        chunk_overlap=chunk_overlap)
    console.print(f"[bold]{dataset.name}[/] ({split}): {len(dataset.corpus)} documents, "
                  f"{len(dataset.queries)} queries; model [bold]{encoder.name}[/]")
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
    data: Annotated[Path, typer.Argument(exists=True, help="STS file (TSV/CSV/JSONL/Parquet: STS-B, MTEB, SICK, "
                                                           "SentEval layouts) or a folder holding one.")],
    split: Annotated[str, typer.Option(help="train, dev or test.")] = "test",
    model: ModelOpt = None,
    backend: BackendOpt = "torch",
    quantization: QuantOpt = "none",
    batch_size: Annotated[int | None, typer.Option(min=1)] = None,
    cache: Annotated[bool, typer.Option(help="Reuse cached embeddings.")] = True,
    output: OutputOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Spearman and Pearson correlation of cosine similarity with gold scores (STS files of any common layout)."""
    from embedops.eval.report import write_metrics_report

    _check_quantization(backend, quantization)
    writable_target(output, "--output", folder=True)
    project = open_project(config, batch_size=batch_size)
    resolve_model_early(project, model)
    from embedops.data import load_sts

    if not load_sts(data, split).scores:  # refuse a bad file (or no pairs) before loading the model
        raise InputError(f"no STS pairs for split {split!r}", where=str(data))
    encoder = project_encoder(project, model, backend, quantization)
    result = project.evaluate_sts(data, split=split, encoder=encoder, use_cache=cache, show_progress=True)
    metrics = {"spearman": result["spearman"], "pearson": result["pearson"]}
    which = split if result.get("split") else "whole file"
    console.print(metrics_table(f"STS {which} ({result['pairs']} pairs)", metrics.items()))
    if output:
        info = {k: v for k, v in result.items() if k not in metrics}
        paths = write_metrics_report(output, f"{encoder.name} on STS/{split}", metrics, info, extra={"kind": "sts"})
        console.print(f"report: {paths['json']}, {paths['markdown']}, {paths['png']}")


@eval_app.command("compare")
def compare(
    report_a: Annotated[Path, typer.Argument(exists=True, dir_okay=False,
                                             help="report.json of system A (the baseline).")],
    report_b: Annotated[Path, typer.Argument(exists=True, dir_okay=False,
                                             help="report.json of system B (the candidate).")],
    metrics: Annotated[str, metrics_option("Comma-separated metrics to compare.")]
    = "ndcg@10,recall@100",
    resamples: Annotated[int, typer.Option(min=100)] = 10_000,
    output: OutputOpt = None,
) -> None:
    """Paired bootstrap CI and randomization test of B - A over the same queries."""
    from embedops.eval.compare import compare_reports, load_report
    from embedops.eval.report import write_comparison_report

    writable_target(output, "--output", folder=True)
    a, b = load_report(report_a), load_report(report_b)
    comparisons, diffs = compare_reports(a, b, _metrics_list(metrics), resamples=resamples, name_a=str(report_a),
                                         name_b=str(report_b))
    qids = next(iter(diffs.values())) if diffs else []
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
