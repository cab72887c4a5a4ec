"""`embedops quantize`: int8 ONNX model behind a quality gate; `embedops export-onnx`: the fp32 export alone."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from embedops.cli._common import console, err_console, quiet_libraries
from embedops.errors import InputError

ModelOpt = Annotated[str | None, typer.Option("--model", "-m", help="Model name, folder or HF id.")]


def read_texts(path: Path, limit: int | None = None, minimum: int = 2) -> list[str]:
    """Texts from a .txt file (one per line) or a JSONL/CSV/Parquet file (title + text per record)."""
    from embedops.data.readers import iter_lines, read_documents

    name = path.name.lower().removesuffix(".gz")
    if name.endswith(".txt"):
        texts = [line.strip() for _, line in iter_lines(path) if line.strip()]
    else:
        texts = [d.full_text for d in read_documents(path)]
    if len(texts) < minimum:
        raise InputError(f"the file has {len(texts)} usable texts; at least {minimum} needed", where=str(path))
    return texts[:limit] if limit else texts


def _gate_table(report) -> Table:
    table = Table(title=f"quality gate: {report.model} int8 vs float", title_justify="left")
    for col, justify in (("check", "left"), ("value", "right"), ("rule", "left"), ("verdict", "left"),
                         ("detail", "left")):
        table.add_column(col, justify=justify)
    for c in report.checks:
        verdict = "[green]ok[/]" if c.passed else f"[bold red]FAILED by {abs(c.margin):.4f}[/]"
        table.add_row(c.name, f"{c.value:.4f}", f"{c.rule} {c.threshold:.4f}", verdict, c.detail)
    return table


def quantize(
    model: ModelOpt = None,
    calibration: Annotated[Path | None, typer.Option(help="Texts to compare on: .txt lines or JSONL/CSV/Parquet.")]
    = None,
    sts: Annotated[Path | None, typer.Option(help="STS file/folder: Spearman check (and calibration if none).")]
    = None,
    sts_split: Annotated[str, typer.Option(help="STS split for the gate.")] = "dev",
    beir: Annotated[Path | None, typer.Option(help="BEIR folder: nDCG@10 check on a sample.")] = None,
    beir_queries: Annotated[int, typer.Option(min=1, help="Queries sampled from --beir.")] = 100,
    beir_documents: Annotated[int, typer.Option(min=1, help="Documents sampled from --beir.")] = 1000,
    method: Annotated[str, typer.Option(help="dynamic or static (calibrated QDQ).")] = "dynamic",
    per_channel: Annotated[bool, typer.Option(help="Per-channel weight scales.")] = True,
    reduce_range: Annotated[bool, typer.Option(help="7-bit weights (CPUs without VNNI).")] = False,
    exclude: Annotated[list[str] | None, typer.Option(help="Node-name patterns to keep in float (repeatable).")]
    = None,
    config: Annotated[Path | None, typer.Option(help="embedops.yaml with a `quantization:` section.")] = None,
    threads: Annotated[int | None, typer.Option(min=1, help="Inference threads.")] = None,
    backend: Annotated[str, typer.Option(help="onnx (dynamic int8, ONNX Runtime) or openvino (static int8 "
                                              "calibrated by NNCF; the faster one on VNNI/AMX CPUs).")] = "onnx",
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write the gate report as JSON.")] = None,
) -> None:
    """Quantise a model to int8 (exporting first if needed); refuse it if the quality gate fails (exit 1)."""
    from embedops._io import atomic_write_json
    from embedops.cli._common import open_project
    from embedops.models.quantize import QuantRecipe

    quiet_libraries()
    if method not in ("dynamic", "static"):
        raise InputError(f"--method must be dynamic or static, got {method!r}")
    if backend not in ("onnx", "openvino"):
        raise InputError(f"--backend must be onnx or openvino, got {backend!r}", where="--backend")
    cfg_path = config or (Path("embedops.yaml") if Path("embedops.yaml").is_file() else None)
    project = open_project(cfg_path)
    gate = project.config.quantization
    pairs = None
    if sts is not None:
        from embedops.data import load_sts

        pairs = load_sts(sts, sts_split)
    if calibration is not None:
        texts = read_texts(calibration, gate.calibration_size)
    elif pairs is not None:
        texts = list(dict.fromkeys(pairs.sentences1 + pairs.sentences2))
    else:
        raise InputError("no calibration texts", hint="give --calibration FILE or --sts FILE")
    retrieval = None
    if beir is not None:
        from embedops.data import load_beir, sample_beir

        retrieval = sample_beir(load_beir(beir, "test"), queries=beir_queries, documents=beir_documents)
    recipe = QuantRecipe(method=method, per_channel=per_channel, reduce_range=reduce_range,  # type: ignore[arg-type]
                         exclude_nodes=tuple(exclude or ()))
    with err_console.status(f"exporting, quantising ({method}) and gating {model or 'default'}"):
        args = () if model is None else (model,)
        report = project.quantize(*args, calibration=texts, recipe=recipe if backend == "onnx" else None, sts=pairs,
                                  retrieval=retrieval, threads=threads, backend=backend)
    console.print(_gate_table(report))
    secs = ", ".join(f"{k} {v:.1f} s" for k, v in report.seconds.items())
    if output:
        atomic_write_json(output, report.as_dict())
    if report.passed:
        console.print(f"[green]accepted[/]: {report.installed} ({secs}); use it with backend {backend}, "
                      "quantization int8")
        return
    failed = "; ".join(f"{c.name} {c.value:.4f} vs {c.rule} {c.threshold:.4f} (by {abs(c.margin):.4f})"
                       for c in report.failures)
    err_console.print(f"[bold red]refused[/]: the int8 model failed the quality gate: {failed}. Nothing was installed.")
    raise typer.Exit(1)


def export_onnx(
    model: ModelOpt = None,
    force: Annotated[bool, typer.Option(help="Export again even if a valid export exists.")] = False,
) -> None:
    """Export a model to ONNX (fp32) once; prints where the cached export lives."""
    from embedops.cli._common import open_project
    from embedops.models import resolve_model
    from embedops.models.export import ensure_export

    quiet_libraries()
    with err_console.status(f"exporting {model or 'default'} to ONNX"):
        exported = ensure_export(resolve_model(model, resolver=open_project().resolver()), force=force)
    console.print(json.dumps({"folder": str(exported.folder), "fingerprint": exported.fingerprint,
                              "int8": bool(exported.manifest.get("int8"))}, indent=2))


def register(app: typer.Typer) -> None:
    """Add `quantize` and `export-onnx` to the root command."""
    app.command("quantize")(quantize)
    app.command("export-onnx")(export_onnx)
