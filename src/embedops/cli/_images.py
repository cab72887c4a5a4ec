"""The image side of `embedops index build --images`, `index add --images`, `index search --image` and
`prepare --images`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from embedops.cli._common import console, metrics_table, quiet_libraries


def build_images(project: Any, path: Path, images: Path, *, labels: str, labels_csv: Path | None,
                 model: str | None, spec: Any, batch_size: int, overwrite: bool) -> None:
    """Build an image collection at `path` from the folder `images` (the project's image model unless --model)."""
    from embedops._progress import status

    items = project.read_images(images, labels=labels, labels_csv=labels_csv)  # bad layout refused before loading
    quiet_libraries()
    with status(f"loading image model {model or project.config.images.model}"):
        encoder = project.load_image_encoder(model)
    project.config.model.batch_size = batch_size
    try:
        project.index_images(images, path, encoder=encoder, labels=labels, labels_csv=labels_csv, spec=spec,
                             overwrite=overwrite, show_progress=True)
    finally:
        project.close()
    found = {it.label for it in items if it.label is not None}
    console.print(f"{len(items)} images" + (f", {len(found)} labels" if found else ", no labels"))


def add_images(path: Path, images: Path, *, labels: str, labels_csv: Path | None, batch_size: int,
               store: str | None, config: Path | None) -> None:
    """Add (or replace, same relative path) the images of a folder in the image collection at `path`."""
    from embedops._progress import status
    from embedops.cli._common import open_project
    from embedops.errors import InputError
    from embedops.project_images import check_modality

    project = open_project(config)
    try:
        if project.store_url(store).engine != "faiss":
            raise InputError("image collections are folders on disk; --store holds text collections only",
                             where="--store")
        col = project.open_collection(path)
        check_modality(col, "image", str(path))  # before the folder is read or any model loads
        items = project.read_images(images, labels=labels, labels_csv=labels_csv)  # a bad layout, before the model
        quiet_libraries()
        with status(f"loading image model {col.model.get('name')}"):
            _ = col.encoder
        project.config.model.batch_size = batch_size
        before = len(col)
        n = project.add_images(images, path, labels=labels, labels_csv=labels_csv, show_progress=True)
        held = len(col)
    finally:
        project.close()
    new = held - before
    found = {it.label for it in items if it.label is not None}
    labels_note = f", {len(found)} label{'s' if len(found) != 1 else ''}" if found else ""
    console.print(f"added {n} image{'s' if n != 1 else ''} ({new} new, {n - new} replaced{labels_note}); "
                  f"the collection holds {held}")


def search_image(path: Path, image: Path, k: int, flt: dict | None, *, config: Path | None,
                 read_only: bool) -> list[Any]:
    """Hits for an image query against the collection at `path` (its recorded image model)."""
    from embedops._progress import status
    from embedops.cli._common import open_project
    from embedops.index.images import search_by_image

    project = open_project(config)
    col = project.open_collection(path, read_only=read_only)
    try:
        quiet_libraries()
        with status("loading model"):
            _ = col.encoder
        return search_by_image(col, image, k, flt)
    finally:
        if read_only:
            col.close()
        project.close()


def prepare_images_command(source: Path, output: Path, *, max_side: int | None, image_format: str, quality: int,
                           dedupe: str, hash_distance: int, labels: str, drop_unreadable: bool,
                           config: Path | None) -> None:
    """`embedops prepare --images SOURCE OUTPUT`: convert, shrink and dedupe a folder, print the report."""
    from embedops._progress import start_progress
    from embedops.cli._common import open_project
    from embedops.data.image_prepare import ImagePrepareOptions, report_path

    project = open_project(config)
    opts = ImagePrepareOptions(max_side=max_side or None, format=image_format, quality=quality, dedupe=dedupe,
                               hash_distance=hash_distance, labels=labels, drop_unreadable=drop_unreadable,
                               max_pixels=project.config.images.max_pixels)
    opts.check()
    bar = start_progress(True, None, f"preparing images of {source.name}")
    try:
        report = project.prepare_images(source, output, opts,
                                        progress=(lambda: bar[0].advance(bar[1])) if bar is not None else None)
    finally:
        if bar is not None:
            bar[0].stop()
    summary = report.as_dict()
    rows = [(k, summary[k]) for k in ("read", "converted_to_rgb", "rotated_by_exif", "resized", "unreadable",
                                      "dropped_exact_duplicates", "dropped_near_duplicates", "written")]
    console.print(metrics_table(f"prepare --images {source} -> {output}", rows))
    console.print(f"report: {report_path(Path(output))}")
