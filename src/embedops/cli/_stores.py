"""`--store` for the `index` commands and `embedops index migrate`: collections in Milvus or Qdrant."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from embedops.cli._common import ConfigOpt, checked, console, metrics_table, open_project


def _check_store(value: str | None) -> None:
    from embedops.index.stores import store_url

    if value is not None:
        store_url(value)


STORE_HELP = ("Where the collection lives: faiss (a folder), milvus://HOST:PORT, qdrant:///PATH (local mode) or "
              "qdrant+http://HOST:PORT; PATH's last part names it there (default: index.store of the project).")
StoreOpt = Annotated[str | None, typer.Option("--store", help=STORE_HELP, callback=checked(_check_store))]


def migrate(
    source: Annotated[str, typer.Argument(help="The collection to copy: a folder (faiss) or its name in --from.")],
    target: Annotated[str | None, typer.Argument(help="Where to copy it: a folder (faiss) or a name in --to "
                                                      "(default: SOURCE's last part).")] = None,
    from_store: Annotated[str, typer.Option("--from", help="Store holding SOURCE (faiss, milvus://..., qdrant...).",
                                            callback=checked(_check_store))] = "faiss",
    to_store: Annotated[str | None, typer.Option("--to", help="Store to copy into (default: index.store of the "
                                                              "project).", callback=checked(_check_store))] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing TARGET once the copy is verified.")] = False,
    batch_size: Annotated[int, typer.Option(min=1, help="Documents per read and write.")] = 1000,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
    config: ConfigOpt = None,
) -> None:
    """Copy a collection between stores (FAISS <-> Milvus <-> Qdrant) with its vectors, texts, metadata and model
    record; verified by count and checksum before TARGET is published (on failure nothing is)."""
    from embedops._progress import start_progress

    project = open_project(config)
    progress = None

    def advance(done: int, total: int) -> None:
        nonlocal progress
        if progress is None and not as_json:
            progress = start_progress(True, total, "copying")
        if progress is not None:
            progress[0].update(progress[1], completed=done)

    try:
        report = project.migrate_collection(source, target, source_store=from_store, target_store=to_store,
                                            overwrite=overwrite, batch_size=batch_size, progress=advance)
    finally:
        if progress is not None:
            progress[0].stop()
        project.close()
    if as_json:
        console.print_json(json.dumps(report))
        return
    rows = [("from", f"{report['source']['store']} {report['source']['name']}"),
            ("to", f"{report['target']['store']} {report['target']['name']}"),
            ("documents", report["documents"]), ("checksum (sha256, both sides)", report["checksum"]),
            ("copy seconds", report["copy_seconds"]), ("verify seconds", report["verify_seconds"])]
    console.print(metrics_table("migrated", rows))


def remote_info_table(path: Path | str, info: dict[str, Any]) -> None:
    """The `index info` table of a Milvus or Qdrant collection."""
    rows = [("store", info["url"]), ("name", info["name"]), ("physical collection", info["physical"]),
            ("documents", info["documents"]),
            ("model", f"{info['model'].get('name')} ({info['model'].get('fingerprint')})"),
            ("dimension", info["dimension"]),
            ("index", ", ".join(f"{k} {v}" for k, v in info["index"].items())),
            ("metadata fields", ", ".join(f"{k}: {'/'.join(v)}" for k, v in info["metadata_fields"].items()) or "-")]
    console.print(metrics_table(f"collection {path}", rows))
