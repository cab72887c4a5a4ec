"""`embedops embed`: embed a prepared dataset into Parquet shards of ids + vectors, locally or on a Ray cluster."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import typer

from embedops.cli._common import Backend, ConfigOpt, console, open_project, quiet_libraries, resolve_model_early


def embed(
    data: Annotated[Path, typer.Argument(help="Prepared dataset: a JSONL/Parquet file, a folder of them, or a BEIR "
                                              "folder (its corpus).")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Output folder: part-NNNNN.parquet shards (id, "
                                                                "vector) and manifest.json.")],
    engine: Annotated[Literal["local", "ray"], typer.Option(help="local (this process) or ray (Ray Data encoder "
                                                                 "actors).")] = "local",
    address: Annotated[str | None, typer.Option(help="ray: the cluster's head, host:port (default: start Ray on "
                                                     "this machine).")] = None,
    workers: Annotated[int | None, typer.Option(min=1, help="ray: encoder actors (default: one per GPU, else one "
                                                            "per --cpus-per-worker CPUs).")] = None,
    cpus_per_worker: Annotated[float, typer.Option(min=0.01, help="ray: CPUs each actor reserves.")] = 1.0,
    gpus_per_worker: Annotated[float | None, typer.Option(min=0, help="ray: GPUs each actor reserves (default: 1 "
                                                                      "when the cluster has GPUs, else 0).")] = None,
    shard_rows: Annotated[int, typer.Option(min=1, help="Documents per output shard (the unit of work and of "
                                                        "resuming).")] = 1000,
    model: Annotated[str | None, typer.Option("--model", "-m", help="Model name, folder, HF id or registry "
                                                                    "alias.")] = None,
    backend: Annotated[Backend | None, typer.Option(help="torch, onnx or openvino (default: the project's).")]
    = None,
    batch_size: Annotated[int | None, typer.Option(min=1, help="Texts per model batch (default: the "
                                                               "project's).")] = None,
    text_field: Annotated[str | None, typer.Option(help="Field holding the text (default: text, body, "
                                                        "content ...).")] = None,
    id_field: Annotated[str | None, typer.Option(help="Field holding the id (default: _id, id, doc_id ...).")]
    = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace the shards of another job in OUTPUT "
                                                                "(a rerun of the same job resumes instead).")]
    = False,
    connect_timeout: Annotated[float, typer.Option(min=0.1, help="ray: seconds to wait for the cluster.")] = 30.0,
    config: ConfigOpt = None,
) -> None:
    """Embed every document of DATA; rerun the same command after a crash to embed only the missing shards."""
    project = open_project(config)
    resolve_model_early(project, model)
    quiet_libraries()
    report = project.embed(data, output, engine=engine, address=address, workers=workers,
                           **({"model": model} if model is not None else {}), backend=backend,
                           shard_rows=shard_rows, batch_size=batch_size, text_field=text_field, id_field=id_field,
                           overwrite=overwrite, cpus_per_worker=cpus_per_worker, gpus_per_worker=gpus_per_worker,
                           connect_timeout=connect_timeout, show_progress=True)
    nodes = ", ".join(f"{node[:8]}: {n}" for node, n in sorted(report.nodes.items()))
    done = (f"{report.docs_per_second:.1f} docs/s ({report.seconds:.1f} s in all); shards per node: {nodes}"
            if report.embedded_shards else f"nothing left to embed ({report.seconds:.1f} s in all)")
    console.print(f"{report.documents} documents -> {report.output} ({report.shards} shards: "
                  f"{report.embedded_shards} embedded now, {report.resumed_shards} kept from an earlier run); {done}",
                  highlight=False)


def register(app: typer.Typer) -> None:
    """Add `embed` to the root command."""
    app.command("embed")(embed)
