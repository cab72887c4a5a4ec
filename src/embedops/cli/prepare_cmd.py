"""`embedops prepare`: clean, dedupe and chunk a dataset; write it with a report of what changed."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import typer

from embedops.cli._common import ConfigOpt, console, metrics_table


def prepare_command(
    source: Annotated[Path, typer.Argument(exists=True, help="JSONL/CSV/Parquet file or BEIR folder.")],
    output: Annotated[Path, typer.Argument(help="Cleaned JSONL to write (BEIR corpus layout).")],
    dedupe: Annotated[Literal["none", "exact", "near"], typer.Option(help="none, exact or near.")] = "near",
    near_threshold: Annotated[float, typer.Option(min=0.01, max=1.0, help="Jaccard of word 3-shingles.")] = 0.9,
    drop_empty: Annotated[
        bool, typer.Option(help="Drop empty texts (listed in the report) instead of failing.")
    ] = False,
    strip_html: Annotated[bool, typer.Option(help="Turn HTML into text.")] = True,
    chunk_tokens: Annotated[int | None, typer.Option(min=16, help="Split documents longer than this many tokens.")]
    = None,
    chunk_overlap: Annotated[int, typer.Option(min=0)] = 32,
    model: Annotated[str | None, typer.Option(help="Model whose tokenizer counts tokens for chunking.")] = None,
    text_field: Annotated[str | None, typer.Option(help="Field holding the text (default: text/body/content).")] = None,
    id_field: Annotated[str | None, typer.Option(help="Field holding the id (default: _id/id).")] = None,
    images: Annotated[bool, typer.Option("--images", help="SOURCE and OUTPUT are image folders: convert to RGB, "
                                                          "shrink, drop exact/near duplicates (perceptual hash).")]
    = False,
    max_side: Annotated[int, typer.Option(min=0, help="--images: shrink the longer side to this (0: keep).")] = 1024,
    image_format: Annotated[Literal["jpeg", "png", "webp"], typer.Option("--format", help="--images: output "
                                                                                      "format.")] = "jpeg",
    quality: Annotated[int, typer.Option(min=1, max=100, help="--images: JPEG/WebP quality.")] = 90,
    hash_distance: Annotated[int, typer.Option(min=0, max=32, help="--images: near duplicates differ in at most "
                                                                   "this many of 64 pHash bits.")] = 6,
    labels: Annotated[Literal["auto", "folders", "csv", "none"], typer.Option(
        help="--images: labels from labels.csv or class subfolders (auto), kept in the output.")] = "auto",
    drop_unreadable: Annotated[bool, typer.Option(help="--images: skip (and list) unreadable files instead of "
                                                       "failing.")] = False,
    config: ConfigOpt = None,
) -> None:
    """Clean text (HTML, Unicode, control characters, whitespace), drop duplicates, chunk long documents; with
    --images, convert, shrink and dedupe a folder of images."""
    if images:
        from embedops.cli._images import prepare_images_command

        prepare_images_command(source, output, max_side=max_side, image_format=image_format, quality=quality,
                               dedupe=dedupe, hash_distance=hash_distance, labels=labels,
                               drop_unreadable=drop_unreadable, config=config)
        return
    from embedops._progress import start_progress
    from embedops.config.checks import chunking, writable_target
    from embedops.data.clean import CleanOptions
    from embedops.data.prepare import PrepareOptions, prepare, report_path
    from embedops.errors import InputError

    chunking(chunk_tokens, chunk_overlap, "--chunk-overlap")
    writable_target(output, "OUTPUT")
    if output.absolute() == source.absolute():
        raise InputError("the output would overwrite the source", where="OUTPUT")
    tokenizer = None
    if chunk_tokens:
        from embedops.cli._common import open_project, project_encoder, resolve_model_early

        project = open_project(config)
        resolve_model_early(project, model)
        tokenizer = project_encoder(project, model).tokenizer
    opts = PrepareOptions(clean=CleanOptions(strip_html=strip_html), drop_empty=drop_empty, dedupe=dedupe,
                          near_threshold=near_threshold, chunk_tokens=chunk_tokens, chunk_overlap=chunk_overlap,
                          text_field=text_field, id_field=id_field)
    # The count of records is known only once they are read: the bar counts cleaned records (n/?).
    bar = start_progress(True, None, f"preparing {source.name}")
    try:
        report = prepare(source, output, opts, tokenizer=tokenizer,
                         progress=(lambda: bar[0].advance(bar[1])) if bar is not None else None)
    finally:
        if bar is not None:
            bar[0].stop()
    summary = report.as_dict()
    rows = [(k, summary[k]) for k in ("read", "changed_by_cleaning", "dropped_empty", "dropped_exact_duplicates",
                                      "dropped_near_duplicates", "chunked_documents", "written")]
    console.print(metrics_table(f"prepare {source} -> {output}", rows))
    console.print(f"report: {report_path(Path(output))}")


def register(app: typer.Typer) -> None:
    """Add the `prepare` command."""
    app.command("prepare")(prepare_command)
