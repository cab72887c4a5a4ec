"""Readers for JSONL, CSV, Parquet and plain-text files, with errors that name the file and line."""

from __future__ import annotations

import csv
import gzip
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from embedops.data.documents import ID_FIELDS, TEXT_FIELDS, document_from_row
from embedops.data.records import Document
from embedops.errors import InputError

__all__ = ["ID_FIELDS", "TEXT_FIELDS", "iter_csv", "iter_jsonl", "iter_lines", "iter_parquet", "iter_rows",
           "read_documents", "require_file"]


def require_file(path: str | Path, what: str = "file") -> Path:
    """Return `path` as a Path if it is an existing file, else raise InputError naming it."""
    p = Path(path)
    if not p.exists():
        raise InputError(f"{what} not found", where=str(p))
    if not p.is_file():
        raise InputError(f"expected a {what}, found a folder", where=str(p))
    return p


def iter_lines(path: str | Path) -> Iterator[tuple[int, str]]:
    """Yield (line number, line without newline); invalid UTF-8 raises InputError naming file and line."""
    p = require_file(path)
    # Decode line by line (not in buffered chunks) so a bad byte is reported on its own line.
    opener = gzip.open if p.suffix == ".gz" else open
    try:
        with opener(p, "rb") as fh:
            for lineno, raw in enumerate(fh, start=1):
                try:
                    line = raw.decode("utf-8")
                except UnicodeDecodeError as exc:
                    raise InputError(
                        f"invalid UTF-8 (byte 0x{raw[exc.start]:02x} at column {exc.start + 1})",
                        where=f"{p}:{lineno}",
                    ) from exc
                if lineno == 1 and line.startswith("\ufeff"):
                    line = line[1:]
                yield lineno, line.rstrip("\r\n")
    except (OSError, EOFError) as exc:
        raise InputError(f"cannot read: {exc}", where=str(p)) from exc


def iter_jsonl(path: str | Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield (line number, object) for each non-blank line; malformed JSON names the file and line."""
    p = Path(path)
    for lineno, line in iter_lines(p):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InputError(f"malformed JSON: {exc.msg} at column {exc.colno}", where=f"{p}:{lineno}") from exc
        if not isinstance(obj, dict):
            raise InputError(f"expected a JSON object, got {type(obj).__name__}", where=f"{p}:{lineno}")
        yield lineno, obj


def iter_csv(path: str | Path, delimiter: str | None = None) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield (line number, row dict) from a CSV/TSV file with a header row."""
    p = require_file(path)
    if delimiter is None:
        delimiter = "\t" if p.name.removesuffix(".gz").endswith((".tsv", ".tab")) else ","
    # Feed csv the strictly decoded lines, so invalid UTF-8 is reported with its line number.
    reader = csv.DictReader((line + "\n" for _, line in iter_lines(p)), delimiter=delimiter)
    try:
        if not reader.fieldnames:
            raise InputError("empty file or missing header row", where=str(p))
        for row in reader:
            if None in row:
                raise InputError(
                    f"row has {len(reader.fieldnames) + len(row[None])} fields, header has "
                    f"{len(reader.fieldnames)}",
                    where=f"{p}:{reader.line_num}",
                )
            yield reader.line_num, row
    except csv.Error as exc:
        raise InputError(f"malformed CSV: {exc}", where=f"{p}:{reader.line_num}") from exc


def iter_parquet(path: str | Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield (row number, row dict) from a Parquet file (row numbers start at 1)."""
    p = require_file(path)
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(p)
    except Exception as exc:  # pyarrow raises ArrowInvalid, OSError, ...
        raise InputError(f"not a readable Parquet file: {exc}", where=str(p)) from exc
    yield from enumerate(table.to_pylist(), start=1)


def iter_rows(path: str | Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """Rows of any supported tabular file, picked by extension."""
    p = Path(path)
    name = p.name.lower().removesuffix(".gz")
    if name.endswith((".jsonl", ".ndjson", ".json")):
        return iter_jsonl(p)
    if name.endswith((".csv", ".tsv", ".tab")):
        return iter_csv(p)
    if name.endswith(".parquet"):
        return iter_parquet(p)
    if not p.exists():
        raise InputError("file not found", where=str(p))
    raise InputError("unsupported file type (use .jsonl, .csv, .tsv or .parquet)", where=str(p))


def read_documents(
    path: str | Path,
    *,
    text_field: str | None = None,
    id_field: str | None = None,
    title_field: str | None = "title",
    allow_empty: bool = False,
) -> list[Document]:
    """Read documents from JSONL/CSV/Parquet by the rules of `data.documents` (ids, text, title, metadata)."""
    p = Path(path)
    return [document_from_row(row, f"{p}:{lineno}", text_field=text_field, id_field=id_field,
                              title_field=title_field, allow_empty=allow_empty)
            for lineno, row in iter_rows(p)]
