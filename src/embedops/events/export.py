"""Parquet export of event tables, streamed in row groups and written atomically."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from embedops._io import atomic_open

_ROW_GROUP = 50_000

SCHEMAS: dict[str, pa.Schema] = {
    "requests": pa.schema([
        ("request_id", pa.string()), ("kind", pa.string()), ("time", pa.timestamp("us", tz="UTC")),
        ("model", pa.string()), ("model_version", pa.string()), ("collection", pa.string()), ("route", pa.string()),
        ("latency_ms", pa.float64()), ("n_inputs", pa.int32()), ("tokens", pa.int32()), ("truncated", pa.int32()),
        ("status", pa.int32()), ("error", pa.string()), ("user_id", pa.string()), ("session_id", pa.string()),
        ("query", pa.string()), ("k", pa.int32()), ("mode", pa.string()),
        ("result_ids", pa.list_(pa.string())), ("scores", pa.list_(pa.float64())),
        ("query_vector", pa.binary()),  # float16 bytes: np.frombuffer(b, np.float16)
    ]),
    "feedback": pa.schema([
        ("request_id", pa.string()), ("kind", pa.string()), ("doc_id", pa.string()), ("rank", pa.int32()),
        ("dwell_ms", pa.float64()), ("user_id", pa.string()), ("session_id", pa.string()),
        ("time", pa.timestamp("us", tz="UTC")),
    ]),
    "alerts": pa.schema([
        ("kind", pa.string()), ("message", pa.string()), ("model_version", pa.string()),
        ("window_start", pa.timestamp("us", tz="UTC")), ("window_end", pa.timestamp("us", tz="UTC")),
        ("details", pa.string()), ("time", pa.timestamp("us", tz="UTC")),
    ]),
}
_JSON_LISTS = {"result_ids", "scores"}
_TIMES = {"time", "window_start", "window_end"}


def _column(name: str, rows: list[Mapping[str, Any]]) -> list[Any]:
    values = [r[name] for r in rows]
    if name in _JSON_LISTS:
        return [json.loads(v) if v else [] for v in values]
    if name in _TIMES:  # epoch seconds -> integer microseconds, which the timestamp type takes as is
        return [None if v is None else int(round(v * 1_000_000)) for v in values]
    if name == "query_vector":
        return [None if v is None else bytes(v) for v in values]
    return values


def write_parquet(path: str | Path, table: str, rows: Iterable[Mapping[str, Any]]) -> int:
    """Stream `rows` of one event table into a Parquet file at `path` (temp file + rename); rows written."""
    schema = SCHEMAS[table]
    total = 0
    with atomic_open(path, "wb") as fh, pq.ParquetWriter(fh, schema) as writer:
        chunk: list[Mapping[str, Any]] = []
        for row in rows:
            chunk.append(row)
            if len(chunk) >= _ROW_GROUP:
                total += _write_chunk(writer, schema, chunk)
                chunk = []
        if chunk or total == 0:
            total += _write_chunk(writer, schema, chunk)
    return total


def _write_chunk(writer: pq.ParquetWriter, schema: pa.Schema, rows: list[Mapping[str, Any]]) -> int:
    arrays = [pa.array(_column(f.name, rows), type=f.type) for f in schema]
    writer.write_table(pa.Table.from_arrays(arrays, schema=schema))
    return len(rows)
