"""`embedops index build | add | delete | search | recommend | info | rebuild | migrate`: collections on disk, or in
Milvus / Qdrant with `--store` (cli/_stores.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Literal

import typer

from embedops.cli._common import (
    Backend,
    ConfigOpt,
    checked,
    console,
    metrics_table,
    open_project,
    project_encoder,
    resolve_model_early,
)
from embedops.cli._stores import StoreOpt, migrate, remote_info_table
from embedops.config.checks import non_empty_text, writable_target
from embedops.errors import InputError

index_app = typer.Typer(help="Vector collections: FAISS + SQLite folders with filters and hybrid search, or "
                             "collections in Milvus / Qdrant (--store).",
                        no_args_is_help=True)

IndexKind = Literal["auto", "flat", "hnsw", "ivfpq"]
Codes = Literal["float32", "int8", "binary"]
# Not `exists=True`: opening restores a collection that a killed swap left aside (the folder is briefly missing).
PathArg = Annotated[Path, typer.Argument(file_okay=False, help="Collection folder (with --store: its last part is the "
                                                                 "collection's name there).")]
OptionalDataOpt = Annotated[Path | None, typer.Option("--data", "-d", exists=True,
                                                     help="JSONL/CSV/Parquet file or a BEIR folder.")]
ImagesOpt = Annotated[Path | None, typer.Option("--images", exists=True, file_okay=False,
                                                help="A folder of images (instead of --data): an image collection.")]
LabelsOpt = Annotated[Literal["auto", "folders", "csv", "none"],
                      typer.Option(help="Image labels: auto (labels.csv if present, else class subfolders), folders, "
                                        "csv or none.")]
LabelsCsvOpt = Annotated[Path | None, typer.Option(exists=True, dir_okay=False,
                                                   help="CSV of image labels (file and label columns).")]
ReadOnlyOpt = Annotated[bool, typer.Option("--read-only", help="Open the collection read-only (a read-only folder "
                                                                "or mount; nothing is written).")]
ModelOpt = Annotated[str | None, typer.Option("--model", "-m", help="Model name, folder or HF id.")]
TextFieldOpt = Annotated[str | None, typer.Option(help="Field holding the text (default: text/body/...).")]
IdFieldOpt = Annotated[str | None, typer.Option(help="Field holding the id (default: _id/id/...).")]


def _read_docs(data: Path, text_field: str | None, id_field: str | None):
    from embedops.data import read_documents
    from embedops.data.beir import read_beir_corpus

    if data.is_dir():
        for name in ("corpus.jsonl", "corpus.jsonl.gz"):
            if (data / name).is_file():
                return list(read_beir_corpus(data / name).values())
        raise InputError("folder has no corpus.jsonl (expected a BEIR folder)", where=str(data))
    docs = read_documents(data, text_field=text_field, id_field=id_field)
    if not docs:
        raise InputError("no documents", where=str(data))
    return docs


def _parse_filter(text: str | None) -> dict | None:
    if not text:
        return None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"not valid JSON: {exc.msg} at column {exc.colno}", where="--filter") from exc
    if not isinstance(value, dict):
        raise InputError("must be a JSON object, e.g. '{\"year\": {\"gte\": 2020}}'", where="--filter")
    return value


FilterOpt = Annotated[str | None, typer.Option("--filter", "-f", help="JSON metadata filter.",
                                               callback=checked(_parse_filter))]


def _open(path: Path, repair: bool = False, config: Path | None = None, read_only: bool = False,
          store: str | None = None):
    """The collection through the Project, which loads the recorded encoder (spec) when a query needs it."""
    return open_project(config).open_collection(path.absolute(), repair=repair, read_only=read_only, store=store)


def _print_hits(hits, as_json: bool, width: int = 100) -> None:
    if as_json:
        console.print_json(json.dumps([h.as_dict() for h in hits], ensure_ascii=False))
        return
    from rich.table import Table

    table = Table(title_justify="left")
    for col, kw in (("#", {"justify": "right"}), ("id", {}), ("score", {"justify": "right"}), ("text", {}),
                    ("metadata", {})):
        table.add_column(col, **kw)
    for i, h in enumerate(hits, 1):
        text = (h.text or "").replace("\n", " ")
        table.add_row(str(i), h.id, f"{h.score:.4f}", text[:width] + ("…" if len(text) > width else ""),
                      json.dumps(h.metadata, ensure_ascii=False)[:60] if h.metadata else "")
    console.print(table)


@index_app.command("build")
def build(
    path: Annotated[Path, typer.Argument(help="Collection folder to create.")],
    data: OptionalDataOpt = None,
    images: ImagesOpt = None,
    labels: LabelsOpt = "auto",
    labels_csv: LabelsCsvOpt = None,
    model: ModelOpt = None,
    backend: Annotated[Backend | None, typer.Option(help="Encoder backend: torch, onnx or openvino (default: the "
                                                         "project's).")] = None,
    kind: Annotated[IndexKind, typer.Option(help="auto (Flat, HNSW above the threshold), flat, hnsw or ivfpq.")]
    = "auto",
    vectors: Annotated[Codes, typer.Option(help="Stored codes: float32, int8 or binary (rescored).")] = "float32",
    hnsw_threshold: Annotated[int, typer.Option(min=1, help="auto: HNSW above this many vectors.")] = 20_000,
    ef_search: Annotated[int, typer.Option(min=1, help="HNSW efSearch.")] = 128,
    text_field: TextFieldOpt = None,
    id_field: IdFieldOpt = None,
    batch_size: Annotated[int, typer.Option(min=1)] = 32,
    cache: Annotated[bool, typer.Option(help="Reuse embeddings cached by `embedops eval`.")] = False,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing collection at PATH.")] = False,
    store: StoreOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Build a collection from a data file or BEIR folder (--data), or from a folder of images (--images, labels from
    class subfolders or a labels CSV); records the encoder's full spec (model, fingerprint ...)."""
    from embedops.index import IndexSpec
    from embedops.index.lifecycle import check_target

    if (data is None) == (images is None):
        raise InputError("give exactly one of --data (texts) or --images (a folder of images)", where="--data")
    path = path.absolute()
    project = open_project(config)
    if project.store_url(store).engine == "faiss":
        writable_target(path, "PATH", folder=True)
        check_target(path, overwrite)  # the build checks again; this refuses before the model loads
    spec = IndexSpec(kind=kind, vectors=vectors, hnsw_threshold=hnsw_threshold, ef_search=ef_search)
    if images is not None:  # image collections: cli/_images.py
        from embedops.cli._images import build_images

        build_images(project, path, images, labels=labels, labels_csv=labels_csv, model=model, spec=spec,
                     batch_size=batch_size, overwrite=overwrite)
        _info_table(path)
        return
    resolve_model_early(project, model)
    docs = _read_docs(data, text_field, id_field)
    encoder = project_encoder(project, model, backend)
    embedded = None
    if cache:
        from embedops.eval.cache import encode_cached

        embedded = encode_cached(encoder, [d.full_text for d in docs], kind="document", batch_size=batch_size,
                                 show_progress=True)
    project.config.model.batch_size = batch_size
    # Built beside the target and swapped in when complete: Ctrl-C or an error keeps the previous collection.
    project.build_collection(docs, path, encoder=encoder, spec=spec, overwrite=overwrite, vectors=embedded,
                             show_progress=True, store=store)
    project.close()
    _info_table(path, store=store, config=config)


@index_app.command("add")
def add(
    path: PathArg,
    data: OptionalDataOpt = None,
    images: Annotated[Path | None, typer.Option("--images", exists=True, file_okay=False,
                                                help="A folder of images (instead of --data), for an image "
                                                     "collection; ids are paths relative to it.")] = None,
    labels: LabelsOpt = "auto",
    labels_csv: LabelsCsvOpt = None,
    text_field: TextFieldOpt = None,
    id_field: IdFieldOpt = None,
    batch_size: Annotated[int, typer.Option(min=1)] = 32,
    store: StoreOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Add (or replace, same id) documents (--data) or a folder's images (--images) with the collection's own model."""
    if (data is None) == (images is None):
        raise InputError("give exactly one of --data (texts) or --images (a folder of images)", where="--data")
    if images is not None:  # image collections: cli/_images.py
        from embedops.cli._images import add_images

        add_images(path.absolute(), images, labels=labels, labels_csv=labels_csv, batch_size=batch_size,
                   store=store, config=config)
        return
    from embedops.project_images import check_modality

    docs = _read_docs(data, text_field, id_field)
    col = _open(path, config=config, store=store)
    try:
        check_modality(col, "text", str(path))  # an image model would refuse the texts only after it loaded
        col.add(docs, batch_size=batch_size, show_progress=True)
    finally:
        col.close()
    console.print(f"added {len(docs)} documents; the collection holds {len(col)}")


@index_app.command("delete")
def delete(
    path: PathArg,
    ids: Annotated[list[str] | None, typer.Argument(help="Document ids to delete.")] = None,
    ids_file: Annotated[Path | None, typer.Option(exists=True, dir_okay=False, help="File with one id per line.")]
    = None,
    store: StoreOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Delete documents by id (compacted on the next rebuild)."""
    wanted = list(ids or [])
    if ids_file:
        from embedops.data.readers import iter_lines

        wanted += [line.strip() for _, line in iter_lines(ids_file) if line.strip()]
    if not wanted:
        raise InputError("give ids to delete (arguments or --ids-file)")
    col = _open(path, config=config, store=store)
    try:
        n = col.delete(wanted)
    finally:
        col.close()
    console.print(f"deleted {n} of {len(wanted)} ids; the collection holds {len(col)}")


@index_app.command("search")
def search(
    path: PathArg,
    query: Annotated[str | None, typer.Argument(help="Query text.")] = None,
    image: Annotated[Path | None, typer.Option("--image", exists=True, dir_okay=False,
                                               help="Search by this image instead of a text query.")] = None,
    k: Annotated[int, typer.Option("-k", min=1, help="Number of results.")] = 10,
    filter: FilterOpt = None,
    mode: Annotated[Literal["dense", "keyword", "hybrid"] | None,
                    typer.Option(help="dense, keyword (BM25) or hybrid (default: index.search_mode of the project, "
                                      "else dense).")] = None,
    fusion: Annotated[Literal["minmax", "rrf"] | None,
                      typer.Option(help="Hybrid fusion: minmax or rrf (default: index.fusion).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    read_only: ReadOnlyOpt = False,
    store: StoreOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Search a collection by text, or by an image (--image); --read-only for a folder you may not write to."""
    from embedops._progress import status
    from embedops.cli._common import quiet_libraries

    if (query is None) == (image is None):
        raise InputError("give a QUERY text or --image FILE (one of them)", where="QUERY")
    if image is not None:
        from embedops.cli._images import search_image

        _print_hits(search_image(path.absolute(), image, k, _parse_filter(filter), config=config,
                                 read_only=read_only), as_json)
        return
    non_empty_text(query, "QUERY")
    flt = _parse_filter(filter)
    project = open_project(config)
    mode = mode or project.config.index.search_mode
    fusion = fusion or project.config.index.fusion
    col = project.open_collection(path.absolute(), read_only=read_only, store=store)
    try:
        if len(col) == 0:
            raise InputError("the collection holds no documents", where=str(path),
                             hint="add some with `embedops index add` first")
        if mode != "keyword":
            quiet_libraries()
            with status("loading model"):
                _ = col.encoder
        hits = col.search(query, k, flt, mode=mode, fusion=fusion)
    finally:
        if read_only:
            col.close()  # a read-only collection is not shared through the project
        project.close()
    _print_hits(hits, as_json)


@index_app.command("recommend")
def recommend(
    path: PathArg,
    positive: Annotated[list[str], typer.Option("--positive", "-p", help="Ids to find more like (repeat).")],
    negative: Annotated[list[str] | None, typer.Option("--negative", "-n", help="Ids to steer away from.")] = None,
    k: Annotated[int, typer.Option("-k", min=1)] = 10,
    filter: FilterOpt = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
    read_only: ReadOnlyOpt = False,
    store: StoreOpt = None,
    config: ConfigOpt = None,
) -> None:
    """More like these, less like those (no model needed: uses the stored vectors)."""
    for pid in positive:
        non_empty_text(pid, "--positive")
    col = _open(path, read_only=read_only, store=store, config=config)
    try:
        hits = col.recommend(positive, negative or [], k, _parse_filter(filter))
    finally:
        col.close()
    _print_hits(hits, as_json)


@index_app.command("info")
def info(path: PathArg, as_json: Annotated[bool, typer.Option("--json")] = False,
         read_only: ReadOnlyOpt = False, store: StoreOpt = None, config: ConfigOpt = None) -> None:
    """Size, model, index kind and parameters, memory per vector, files (or the engine's facts with --store)."""
    if as_json:
        col = _open(path, read_only=read_only, store=store, config=config)
        try:
            console.print_json(json.dumps(col.info(), default=str))
        finally:
            col.close()
        return
    _info_table(path, read_only=read_only, store=store, config=config)


@index_app.command("repair")
def repair(
    path: PathArg,
    drop_lost: Annotated[bool, typer.Option("--drop-lost", help="Delete documents whose vectors were lost (the "
                                                                "error names them) so the rest opens.")] = False,
) -> None:
    """Bring a collection back to its last committed state (rebuilds derived files); says what cannot be recovered."""
    from embedops.index import Collection

    report = Collection.repair(path, drop_lost=drop_lost)
    for action in report.get("actions", []):
        console.print(f"- {action}")
    lost = report.get("lost_ids") or []
    console.print(f"{report.get('documents')} documents at generation {report.get('generation')}"
                  + (f"; {len(lost)} lost: {', '.join(lost[:10])}" if lost else "; nothing lost"))
    problems = report.get("problems") or []
    if problems:
        raise InputError("; ".join(problems), where=str(path))


@index_app.command("rebuild")
def rebuild(
    path: PathArg,
    kind: Annotated[IndexKind | None, typer.Option(help="New index kind (default: keep).")] = None,
    vectors: Annotated[Codes | None, typer.Option(help="New stored codes (default: keep).")] = None,
) -> None:
    """Compact deletions and rebuild the FAISS index from the stored vectors (also repairs a damaged file)."""
    from dataclasses import replace

    from embedops._progress import status

    col = _open(path, repair=True)
    try:
        spec = col.store.spec
        changes = {k: v for k, v in (("kind", kind), ("vectors", vectors)) if v}
        with status(f"rebuilding the index of {len(col)} documents"):
            col.rebuild(replace(spec, **changes) if changes else None)
    finally:
        col.close()
    _info_table(path)


def _info_table(path: Path, read_only: bool = False, store: str | None = None, config: Path | None = None) -> None:
    col = _open(path, read_only=read_only, store=store, config=config)
    try:
        i = col.info()
    finally:
        col.close()
    if "store" in i:  # Milvus or Qdrant
        remote_info_table(path, i)
        return
    idx = i["index"]
    rows = [("documents", i["documents"]), ("deleted (not yet compacted)", i["deleted"]),
            ("model", f"{i['model'].get('name')} ({i['model'].get('fingerprint')})"),
            ("dimension", i["dimension"]), ("index", f"{idx['kind']} ({idx['factory']})"),
            ("rescore candidates per hit", idx["rescore"]),
            ("index bytes per vector", i["index_bytes_per_vector"]),
            ("float32 bytes per vector", i["float_bytes_per_vector"]),
            ("keyword index", i["keyword_index"]), ("generation", i["generation"])]
    if idx.get("note"):
        rows.append(("note", idx["note"]))
    console.print(metrics_table(f"collection {path}", rows))


index_app.command("migrate")(migrate)


def register(app: typer.Typer) -> None:
    """Add the `index` command group."""
    app.add_typer(index_app, name="index")
