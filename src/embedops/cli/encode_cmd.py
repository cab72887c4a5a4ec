"""`embedops encode`: embed a file of texts with any backend and write the vectors as .npy."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Literal

import typer

from embedops.cli._common import (
    Backend,
    ConfigOpt,
    Quantization,
    console,
    open_project,
    project_encoder,
    resolve_model_early,
)
from embedops.config.checks import writable_target
from embedops.errors import InputError


def encode(
    data: Annotated[Path, typer.Argument(exists=True, dir_okay=False,
                                         help="Texts: .txt (one per line) or JSONL/CSV/Parquet (title + text).")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Where to write the vectors (.npy).")],
    model: Annotated[str | None, typer.Option("--model", "-m", help="Model name, folder or HF id.")] = None,
    backend: Annotated[Backend | None, typer.Option(help="torch, onnx or openvino (default: the project's, else "
                                                         "torch).")] = None,
    quantization: Annotated[Quantization | None,
                            typer.Option(help="onnx only: none or int8 (run `embedops quantize` first).")] = None,
    batch_size: Annotated[int, typer.Option(min=1)] = 32,
    max_batch_tokens: Annotated[int | None, typer.Option(min=1, help="Padded-token budget per batch.")] = None,
    truncate_dim: Annotated[int | None, typer.Option(min=8, help="Matryoshka: keep the first N dimensions.")]
    = None,
    precision: Annotated[Literal["float32", "int8", "uint8", "binary", "ubinary"],
                         typer.Option(help="float32, int8, uint8, binary or ubinary.")] = "float32",
    kind: Annotated[Literal["query", "document"] | None,
                    typer.Option(help="query or document (applies the model's prompt).")] = None,
    threads: Annotated[int | None, typer.Option(min=1, help="onnx only: intra-op threads.")] = None,
    config: ConfigOpt = None,
) -> None:
    """Embed every text in DATA and save an [n, dim] array; prints throughput and truncation."""
    import numpy as np

    from embedops._io import atomic_open
    from embedops.cli.quantize_cmd import read_texts

    if output.suffix != ".npy":
        raise InputError("the output file must end in .npy", where="--output")
    writable_target(output, "--output")
    project = open_project(config)
    backend = backend or project.config.model.backend
    options: dict = {"truncate_dim": truncate_dim}
    if backend == "onnx":
        options["threads"] = threads
    elif quantization not in (None, "none"):
        raise InputError("--quantization applies to the onnx backend only", where="--quantization")
    resolve_model_early(project, model)
    texts = read_texts(data, minimum=1)
    encoder = project_encoder(project, model, backend, quantization, **options)
    if truncate_dim is not None and encoder.dimension < truncate_dim:
        raise InputError(f"the model gives {encoder.dimension} dimensions; cannot keep the first {truncate_dim}",
                         where="--truncate-dim")
    started = time.perf_counter()
    vectors, usage = encoder.encode_with_usage(texts, batch_size=batch_size, kind=kind, show_progress=True,  # type: ignore[arg-type]
                             max_batch_tokens=max_batch_tokens, precision=precision)  # type: ignore[arg-type]
    seconds = time.perf_counter() - started
    with atomic_open(output, "wb") as fh:
        np.save(fh, vectors)
    console.print(f"{len(texts)} texts -> {output} {vectors.shape} {vectors.dtype}; "
                  f"{len(texts) / seconds:.1f} texts/s, {usage.tokens / seconds:,.0f} tokens/s; "
                  f"{usage.truncated} truncated at {encoder.max_tokens} tokens")


def register(app: typer.Typer) -> None:
    """Add `encode` to the root command."""
    app.command("encode")(encode)
