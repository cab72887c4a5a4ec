"""The plan of a batch embedding job: input shards cut into units of at most `shard_rows` documents.

A unit is the grain of work and of resumption: one unit becomes one output shard. Units are cut from the inputs
alone (JSONL: by the byte offset of every `shard_rows`-th non-blank line; Parquet: by row ranges read from the
footer), so the same inputs always give the same units, on any engine and after any crash. Reading a unit's
documents is a seek plus `shard_rows` lines, whichever worker does it, and every error names the file and line.
"""

from __future__ import annotations

import gzip
import hashlib
import json
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from embedops.data.documents import document_from_row
from embedops.data.records import Document
from embedops.errors import InputError

JSONL_SUFFIXES = (".jsonl", ".ndjson", ".jsonl.gz", ".ndjson.gz")
PARQUET_SUFFIXES = (".parquet",)
BEIR_CORPUS = ("corpus.jsonl", "corpus.jsonl.gz")


@dataclass(frozen=True)
class Unit:
    """One unit of work: `rows` documents of one input file, starting at a byte offset (JSONL) or row (Parquet)."""

    index: int
    path: str
    format: str  # "jsonl" | "parquet"
    start: int  # JSONL: byte offset of the first line; Parquet: first row (0-based)
    line: int  # JSONL: line number of the first line; Parquet: first row number (1-based), for messages
    rows: int

    @property
    def source(self) -> str:
        """Where the unit's documents are, for messages and the manifest: `file:first-last`."""
        return f"{self.path}:{self.line}+{self.rows}"

    def as_row(self) -> dict[str, Any]:
        """A plain dict (what a Ray Data row holds)."""
        return asdict(self)

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Unit:
        """The unit a row describes (values may come back as numpy scalars)."""
        return cls(index=int(row["index"]), path=str(row["path"]), format=str(row["format"]),
                   start=int(row["start"]), line=int(row["line"]), rows=int(row["rows"]))


@dataclass(frozen=True)
class Plan:
    """Every unit of a job, plus what identifies the job (inputs as they were, fields, shard size)."""

    inputs: list[dict[str, Any]]
    units: list[Unit]
    shard_rows: int
    text_field: str | None
    id_field: str | None

    @property
    def documents(self) -> int:
        """Documents in all inputs."""
        return sum(u.rows for u in self.units)

    def key(self, fingerprint: str) -> str:
        """A hash of everything that decides the output: inputs (size and mtime), units, fields, model."""
        payload = {"inputs": self.inputs, "units": [u.as_row() for u in self.units], "shard_rows": self.shard_rows,
                   "text_field": self.text_field, "id_field": self.id_field, "fingerprint": fingerprint}
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:32]


def input_files(data: str | Path) -> list[Path]:
    """The shards of a prepared dataset: one file, a BEIR folder's corpus, or every JSONL/Parquet file of a folder."""
    path = Path(data).expanduser()
    if not path.exists():
        raise InputError("dataset not found", where=str(path))
    if path.is_file():
        _format_of(path)  # refuse an unsupported file now, naming it
        return [path.resolve()]
    for name in BEIR_CORPUS:
        if (path / name).is_file():
            return [(path / name).resolve()]
    files = sorted(p.resolve() for p in path.iterdir()
                   if p.is_file() and not p.name.startswith(".") and p.name.lower().endswith(JSONL_SUFFIXES
                                                                                              + PARQUET_SUFFIXES))
    if not files:
        raise InputError("the folder holds no .jsonl, .jsonl.gz or .parquet files", where=str(path),
                         hint="give a prepared dataset (`embedops prepare`), a BEIR folder or a data file")
    return files


def _format_of(path: Path) -> str:
    name = path.name.lower()
    if name.endswith(JSONL_SUFFIXES):
        return "jsonl"
    if name.endswith(PARQUET_SUFFIXES):
        return "parquet"
    raise InputError("unsupported file type (use .jsonl, .jsonl.gz or .parquet)", where=str(path))


def _open(path: Path):
    return gzip.open(path, "rb") if path.name.lower().endswith(".gz") else open(path, "rb")


def make_plan(data: str | Path, shard_rows: int = 1000, *, text_field: str | None = None,
              id_field: str | None = None) -> Plan:
    """Cut the dataset into units; an unreadable or invalid file is refused here, before any worker starts."""
    if isinstance(shard_rows, bool) or not isinstance(shard_rows, int) or shard_rows < 1:
        raise InputError(f"must be an integer >= 1, got {shard_rows!r}", where="shard_rows")
    units: list[Unit] = []
    inputs: list[dict[str, Any]] = []
    for path in input_files(data):
        fmt = _format_of(path)
        cuts = _jsonl_cuts(path, shard_rows) if fmt == "jsonl" else _parquet_cuts(path, shard_rows)
        for start, line, rows in cuts:
            units.append(Unit(len(units), str(path), fmt, start, line, rows))
        st = path.stat()
        inputs.append({"path": str(path), "size": st.st_size, "mtime_ns": st.st_mtime_ns})
    if not units:
        raise InputError("the dataset holds no documents", where=str(data))
    return Plan(inputs, units, shard_rows, text_field, id_field)


def _jsonl_cuts(path: Path, shard_rows: int) -> list[tuple[int, int, int]]:
    """(byte offset, line number, rows) of each run of `shard_rows` non-blank lines."""
    cuts: list[list[int]] = []
    offset = 0
    try:
        with _open(path) as fh:
            for lineno, raw in enumerate(fh, start=1):
                if raw.strip():
                    if not cuts or cuts[-1][2] == shard_rows:
                        cuts.append([offset, lineno, 0])
                    cuts[-1][2] += 1
                offset += len(raw)
    except (OSError, EOFError) as exc:
        raise InputError(f"cannot read: {exc}", where=str(path)) from exc
    return [(a, b, c) for a, b, c in cuts]


def _parquet_cuts(path: Path, shard_rows: int) -> list[tuple[int, int, int]]:
    """(first row, first row number, rows) per `shard_rows` rows; the footer is read, not the data."""
    rows = _parquet_file(path).metadata.num_rows
    return [(start, start + 1, min(shard_rows, rows - start)) for start in range(0, rows, shard_rows)]


def _parquet_file(path: Path):
    import pyarrow.parquet as pq

    try:
        return pq.ParquetFile(path)
    except Exception as exc:  # pyarrow raises ArrowInvalid, OSError, ...
        raise InputError(f"not a valid Parquet file: {exc}", where=str(path)) from exc


def read_unit(unit: Unit, *, text_field: str | None = None, id_field: str | None = None) -> list[Document]:
    """The documents of one unit (title + text as MTEB joins them is `Document.full_text`); errors name file:line."""
    path = Path(unit.path)
    if not path.is_file():
        raise InputError("dataset file not found on this node", where=str(path),
                         hint="on a cluster, every node must see the dataset at the same path (a shared folder)")
    rows = _jsonl_rows(unit) if unit.format == "jsonl" else _parquet_rows(unit)
    docs = [document_from_row(row, where, text_field=text_field, id_field=id_field) for where, row in rows]
    if len(docs) != unit.rows:
        raise InputError(f"expected {unit.rows} documents from line {unit.line}, found {len(docs)}: the file "
                         "changed since the job was planned", where=str(path))
    return docs


def _jsonl_rows(unit: Unit) -> Iterator[tuple[str, dict[str, Any]]]:
    taken = 0
    with _open(Path(unit.path)) as fh:
        fh.seek(unit.start)
        for lineno, raw in enumerate(fh, start=unit.line):
            if taken == unit.rows:
                return
            where = f"{unit.path}:{lineno}"
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise InputError(f"invalid UTF-8 (byte 0x{raw[exc.start]:02x} at column {exc.start + 1})",
                                 where=where) from exc
            if lineno == 1 and line.startswith("\ufeff"):
                line = line[1:]
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise InputError(f"malformed JSON: {exc.msg} at column {exc.colno}", where=where) from exc
            if not isinstance(obj, dict):
                raise InputError(f"expected a JSON object, got {type(obj).__name__}", where=where)
            taken += 1
            yield where, obj


def _parquet_rows(unit: Unit) -> Iterator[tuple[str, dict[str, Any]]]:
    """Rows [start, start + rows) of a Parquet file, reading only the row groups that hold them."""
    pf = _parquet_file(Path(unit.path))
    meta = pf.metadata
    groups, first, seen = [], None, 0
    for g in range(meta.num_row_groups):
        n = meta.row_group(g).num_rows
        if seen + n > unit.start and seen < unit.start + unit.rows:
            groups.append(g)
            first = seen if first is None else first
        seen += n
    try:
        table = pf.read_row_groups(groups) if groups else pf.schema_arrow.empty_table()
    except Exception as exc:  # a damaged page: name the file
        raise InputError(f"cannot read Parquet rows: {exc}", where=unit.path) from exc
    table = table.slice(unit.start - (first or 0), unit.rows)
    for i, row in enumerate(table.to_pylist()):
        yield f"{unit.path}:{unit.line + i}", row
