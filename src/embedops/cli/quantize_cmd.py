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


def _check_path(path: Path | None, flag: str, *, folder_ok: bool = True, file_ok: bool = True) -> None:
    """Refuse a path that does not exist or is the wrong kind (file / folder), naming the option."""
    if path is None:
        return
    if not path.exists():
        raise InputError(f"no such file or folder: {path}", where=flag)
    if path.is_dir() and not folder_ok:
        raise InputError(f"{path} is a folder; give a file", where=flag)
    if not path.is_dir() and not file_ok:
        raise InputError(f"{path} is a file; give a folder", where=flag)


def _check_output(output: Path | None, inputs: list[Path | None]) -> None:
    """The report path must be a new or existing file in an existing folder, and none of the inputs."""
    if output is None:
        return
    if output.is_dir():
        raise InputError(f"{output} is a folder; give a file name for the JSON report", where="--output")
    if not output.parent.resolve().is_dir():
        raise InputError(f"folder {output.parent} does not exist", where="--output")
    if any(p is not None and p.exists() and p.resolve() == output.resolve() for p in inputs):
        raise InputError(f"{output} is one of the inputs; it would be overwritten", where="--output")


def _at_least(value: int | None, minimum: int, flag: str) -> None:
    if value is not None and value < minimum:
        raise InputError(f"must be at least {minimum}, got {value}", where=flag)


def quantize(
    model: ModelOpt = None,
    calibration: Annotated[Path | None, typer.Option(help="Texts to compare on: .txt lines or JSONL/CSV/Parquet.")]
    = None,
    sts: Annotated[Path | None, typer.Option(help="STS file/folder: Spearman check (and calibration if none).")]
    = None,
    sts_split: Annotated[str | None, typer.Option(help="STS split for the gate [default: dev].")] = None,
    beir: Annotated[Path | None, typer.Option(help="BEIR folder: nDCG@10 check on a sample.")] = None,
    beir_queries: Annotated[int | None, typer.Option(help="Queries sampled from --beir [default: 100].")] = None,
    beir_documents: Annotated[int | None, typer.Option(help="Documents sampled from --beir [default: 1000].")]
    = None,
    method: Annotated[str | None, typer.Option(help="onnx only: dynamic (default) or static (calibrated QDQ).")]
    = None,
    per_channel: Annotated[bool | None, typer.Option("--per-channel/--no-per-channel",
                                                     help="onnx only: per-channel weight scales [default: on].")]
    = None,
    reduce_range: Annotated[bool | None, typer.Option("--reduce-range/--no-reduce-range",
                                                      help="onnx only: 7-bit weights (CPUs without VNNI).")] = None,
    exclude: Annotated[list[str] | None, typer.Option(help="onnx only: node-name patterns kept in float "
                                                           "(repeatable).")] = None,
    config: Annotated[Path | None, typer.Option(help="embedops.yaml with a `quantization:` section.")] = None,
    threads: Annotated[int | None, typer.Option(help="Inference threads (at least 1).")] = None,
    backend: Annotated[str | None, typer.Option(help="openvino (static int8 by NNCF: the recommended, faster one) or "
                                                     "onnx (dynamic int8). Default: the yaml's model.backend if it is "
                                                     "one of these, else openvino when its extra is installed and "
                                                     "there are >= 100 calibration texts, else onnx.")] = None,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write the gate report as JSON.")] = None,
) -> None:
    """Quantise a model to int8 (exporting first if needed); refuse it if the quality gate fails (exit 1)."""
    from embedops._io import atomic_write_json
    from embedops.cli._common import open_project
    from embedops.errors import MissingDependencyError, ModelError
    from embedops.models import resolve_model
    from embedops.models.quantize import QUANT_BACKENDS, RECOMMENDED_BACKEND, QuantRecipe, choose_backend

    quiet_libraries()
    # Every option is checked before anything is exported, quantised or written (bad input exits 2, leaves nothing).
    if backend is not None and backend not in QUANT_BACKENDS:
        raise InputError(f"must be one of {', '.join(QUANT_BACKENDS)}, got {backend!r}", where="--backend")
    if method is not None and method not in ("dynamic", "static"):
        raise InputError(f"must be dynamic or static, got {method!r}", where="--method")
    onnx_only = {"--method": method, "--per-channel": per_channel, "--reduce-range": reduce_range,
                 "--exclude": exclude or None}
    given = [flag for flag, value in onnx_only.items() if value is not None]
    if backend == "openvino" and given:
        raise InputError("applies to --backend onnx only (openvino quantises statically with NNCF)", where=given[0])
    if any(not p.strip() for p in exclude or ()):
        raise InputError("empty node-name pattern", where="--exclude")
    _at_least(threads, 1, "--threads")
    _at_least(beir_queries, 1, "--beir-queries")
    _at_least(beir_documents, 1, "--beir-documents")
    if sts_split is not None and sts is None:
        raise InputError("needs --sts", where="--sts-split")
    for flag, value in (("--beir-queries", beir_queries), ("--beir-documents", beir_documents)):
        if value is not None and beir is None:
            raise InputError("needs --beir", where=flag)
    _check_path(calibration, "--calibration", folder_ok=False)
    _check_path(sts, "--sts")
    _check_path(beir, "--beir", file_ok=False)
    _check_path(config, "--config", folder_ok=False)
    _check_output(output, [calibration, sts, config])
    if calibration is None and sts is None:
        raise InputError("no calibration texts", where="--calibration", hint="give --calibration FILE or --sts FILE")
    cfg_path = config or (Path("embedops.yaml") if Path("embedops.yaml").is_file() else None)
    project = open_project(cfg_path)
    gate = project.config.quantization
    try:
        source = resolve_model(model if model is not None else project.config.model.name,
                               resolver=project.resolver())
    except ModelError as exc:
        raise ModelError(exc.message, where="--model", hint=exc.hint) from None
    pairs = None
    if sts is not None:
        from embedops.data import load_sts

        pairs = load_sts(sts, sts_split or "dev")
    if calibration is not None:
        texts, where = read_texts(calibration, gate.calibration_size), "--calibration"
    else:
        texts, where = list(dict.fromkeys(pairs.sentences1 + pairs.sentences2))[: gate.calibration_size], "--sts"
        if len(texts) < 2:
            raise InputError(f"{len(texts)} distinct sentences; at least 2 needed", where="--sts")
    retrieval = None
    if beir is not None:
        from embedops.data import load_beir, sample_beir

        retrieval = sample_beir(load_beir(beir, "test"), queries=beir_queries or 100,
                                documents=beir_documents or 1000)
    requested = backend or (project.config.model.backend
                            if project.config.model.backend in QUANT_BACKENDS else None)
    try:
        chosen, note = choose_backend(requested, calibration_texts=len(texts), onnx_options=bool(given))
    except MissingDependencyError as exc:
        source_of_choice = f"--backend {requested}" if backend else f"model.backend ({requested})"
        raise InputError(str(exc), where=source_of_choice) from None
    if chosen == "openvino":
        from embedops.models.openvino_quantize import check_calibration_size

        check_calibration_size(len(texts), gate, where=where)
    if note:
        err_console.print(f"note: {note}", markup=False, highlight=False, soft_wrap=True)
    recipe = None
    if chosen == "onnx":
        recipe = QuantRecipe(method=method or "dynamic",  # type: ignore[arg-type]
                             per_channel=True if per_channel is None else per_channel,
                             reduce_range=bool(reduce_range), exclude_nodes=tuple(exclude or ()))
    kind = "static int8 (NNCF)" if chosen == "openvino" else f"{recipe.method} int8"  # type: ignore[union-attr]
    with err_console.status(f"exporting, quantising for {chosen} ({kind}) and gating {source.name}"):
        args = () if model is None else (model,)
        report = project.quantize(*args, calibration=texts, recipe=recipe, sts=pairs, retrieval=retrieval,
                                  threads=threads, backend=chosen)
    console.print(_gate_table(report))
    secs = ", ".join(f"{k} {v:.1f} s" for k, v in report.seconds.items())
    if output:
        atomic_write_json(output, {**report.as_dict(), "backend": chosen, "note": note})
    if report.passed:
        console.print(f"[green]accepted[/]: {report.installed} ({secs}); use it with backend {chosen}, "
                      "quantization int8")
        if chosen != RECOMMENDED_BACKEND and note is None:
            err_console.print(f"note: {RECOMMENDED_BACKEND} static int8 is the recommended backend (faster than onnx "
                              f"dynamic int8 on CPUs with VNNI/AMX, same gate): embedops quantize --backend "
                              f"{RECOMMENDED_BACKEND}", markup=False, highlight=False, soft_wrap=True)
        return
    failed = "; ".join(f"{c.name} {c.value:.4f} vs {c.rule} {c.threshold:.4f} (by {abs(c.margin):.4f})"
                       for c in report.failures)
    err_console.print(f"[bold red]refused[/]: the int8 model failed the quality gate: {failed}. Nothing was installed.",
                      soft_wrap=True)
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
