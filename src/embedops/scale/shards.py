"""The output of a batch embedding job: Parquet shards of ids + vectors and a manifest, in one folder.

    out/
      manifest.json          the plan (inputs, units, model spec), then the finished job (shards, nodes, timings)
      part-00000.parquet     id: string, vector: fixed_size_list<float32>[dim]; one per unit, in input order
      ...

A shard is written to a temp file and renamed, so a file under its final name is complete; it carries its own record
(plan key, unit, model fingerprint, node and worker that embedded it) in the Parquet footer. Resuming keeps exactly
the shards whose record matches the current plan and embeds the others. The local and the Ray engine write the same
files.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from embedops._io import atomic_write_json, fsync_dir
from embedops.data.outputs import atomic_output, remove_stale_temps
from embedops.errors import InputError
from embedops.scale.plan import Plan, Unit

FORMAT = "embedops-embeddings/1"
MANIFEST = "manifest.json"
LOCK = ".lock"
_META_KEY = b"embedops.shard"


def shard_name(index: int) -> str:
    """File name of the shard of unit `index`."""
    return f"part-{index:05d}.parquet"


@dataclass
class ShardResult:
    """What embedding one unit gave: ids and vectors, and where and how fast it ran."""

    unit: Unit
    ids: list[str]
    vectors: np.ndarray
    node_id: str
    worker: str
    seconds: float
    tokens: int = 0
    truncated: int = 0
    resumed: bool = False  # found complete on disk from an earlier run, not embedded now

    def record(self) -> dict[str, Any]:
        """The manifest's line for this shard."""
        return {"file": shard_name(self.unit.index), "source": self.unit.source, "rows": len(self.ids),
                "node_id": self.node_id, "worker": self.worker, "seconds": round(self.seconds, 3),
                "tokens": self.tokens, "truncated": self.truncated, "resumed": self.resumed}


@dataclass
class OutputFolder:
    """An embedding job's output folder: checks it belongs to this plan, finds finished shards, writes new ones."""

    path: Path
    plan_key: str
    fingerprint: str
    dimension: int
    removed_temps: list[str] = field(default_factory=list)
    _lock_fd: int | None = field(default=None, repr=False)

    def lock(self) -> None:
        """Take the folder for this job (an OS lock, dropped by the kernel if the process dies)."""
        import fcntl

        fd = os.open(self.path / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise InputError("another embedding job is writing this folder", where=str(self.path),
                             hint="wait for it to finish, or give another folder") from None
        self._lock_fd = fd

    def unlock(self) -> None:
        """Release the folder."""
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def prepare(self, manifest: dict[str, Any], *, overwrite: bool) -> None:
        """Create the folder, or check an existing one holds this job's shards (or only ours, with `overwrite`)."""
        path = self.path
        if path.exists() and not path.is_dir():
            raise InputError("the output exists and is a file; give a folder", where=str(path))
        path.mkdir(parents=True, exist_ok=True)
        self.lock()
        old = read_manifest(path, required=False)
        ours = {MANIFEST} | {p.name for p in path.glob("part-*.parquet")}
        foreign = [p.name for p in path.iterdir() if p.name not in ours and not p.name.startswith(".")]
        if foreign:
            raise InputError(f"the output folder holds files that are not embedding shards ({', '.join(foreign[:3])})",
                             where=str(path), hint="give an empty or new folder")
        if old is None and len(ours) > 1:
            raise InputError("the output folder has shards but no manifest", where=str(path),
                             hint="pass --overwrite to start again, or give a new folder")
        if old is not None and old.get("plan_key") != self.plan_key:
            if not overwrite:
                raise InputError("the output folder holds embeddings of another job (other inputs, model or shard "
                                 "size)", where=str(path), hint="pass --overwrite to replace them, or give a new "
                                                                "folder")
        if overwrite and (old is None or old.get("plan_key") != self.plan_key):
            for name in ours:
                with contextlib.suppress(FileNotFoundError):
                    (path / name).unlink()
        for name in sorted(p.name for p in path.iterdir() if p.name.startswith(".") and p.name.endswith(".tmp")):
            # `.part-00003.parquet.XXXX.tmp`: a writer killed mid-shard; removed unless a live writer holds it.
            target = name[1:].split(".parquet.")[0] + ".parquet" if ".parquet." in name else MANIFEST
            self.removed_temps += [p.name for p in remove_stale_temps(path / target)]
        atomic_write_json(path / MANIFEST, manifest)

    def done_units(self, plan: Plan) -> set[int]:
        """Units whose shard is on disk for this plan, from the shards' footers only (nothing locked or written)."""
        done: set[int] = set()
        if not self.path.is_dir():
            return done
        for unit in plan.units:
            file = self.path / shard_name(unit.index)
            record = shard_record(file) if file.is_file() else None
            if record is not None and record.get("plan_key") == self.plan_key and record.get("unit") == unit.as_row():
                done.add(unit.index)
        return done

    def finished(self, plan: Plan) -> dict[int, ShardResult]:
        """Shards already complete for this plan (read back from disk); a shard of another plan is not counted."""
        done: dict[int, ShardResult] = {}
        keep = self.done_units(plan)  # a shard of another plan is embedded again and replaced
        for unit in plan.units:
            if unit.index not in keep:
                continue
            file = self.path / shard_name(unit.index)
            record = shard_record(file) or {}
            ids, vectors = read_shard(file)
            done[unit.index] = ShardResult(unit, ids, vectors, record.get("node_id", ""), record.get("worker", ""),
                                           float(record.get("seconds", 0.0)), int(record.get("tokens", 0)),
                                           int(record.get("truncated", 0)), resumed=True)
        return done

    def write(self, result: ShardResult) -> None:
        """Write one shard atomically (temp file, fsync, rename): a crash leaves the whole shard or none."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        vectors = np.ascontiguousarray(result.vectors, dtype=np.float32)
        if vectors.shape != (len(result.ids), self.dimension):
            raise InputError(f"shard {result.unit.index}: {vectors.shape} vectors for {len(result.ids)} ids of "
                             f"dimension {self.dimension}", where=result.unit.source)
        column = pa.FixedSizeListArray.from_arrays(pa.array(vectors.reshape(-1), type=pa.float32()), self.dimension)
        record = {"plan_key": self.plan_key, "unit": result.unit.as_row(), "fingerprint": self.fingerprint,
                  "node_id": result.node_id, "worker": result.worker, "seconds": round(result.seconds, 3),
                  "tokens": result.tokens, "truncated": result.truncated, "written_at": time.time()}
        table = pa.table({"id": pa.array(result.ids, type=pa.string()), "vector": column})
        table = table.replace_schema_metadata({_META_KEY: json.dumps(record).encode()})
        with atomic_output(self.path / shard_name(result.unit.index), "wb", encoding=None) as fh:
            pq.write_table(table, fh)
        fsync_dir(self.path)


def shard_record(file: Path) -> dict[str, Any] | None:
    """The record a shard carries in its footer (None if the file is not a readable shard)."""
    import pyarrow.parquet as pq

    try:
        meta = pq.read_schema(file).metadata or {}
        return json.loads(meta[_META_KEY])
    except Exception:  # noqa: BLE001 - not ours, or damaged: it is embedded again
        return None


def read_shard(file: Path) -> tuple[list[str], np.ndarray]:
    """(ids, float32 vectors) of one shard."""
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(file)
    except Exception as exc:  # noqa: BLE001 - pyarrow raises several types
        raise InputError(f"not a valid Parquet shard: {exc}", where=str(file)) from exc
    column = table.column("vector").combine_chunks()
    dim = column.type.list_size
    vectors = column.values.to_numpy(zero_copy_only=False).astype(np.float32, copy=False).reshape(-1, dim)
    return table.column("id").to_pylist(), vectors


def read_manifest(folder: str | Path, *, required: bool = True) -> dict[str, Any] | None:
    """The manifest of an output folder (None if there is none and it is not `required`)."""
    file = Path(folder) / MANIFEST
    if not file.is_file():
        if required:
            raise InputError("not an embeddings folder (no manifest.json)", where=str(folder))
        return None
    try:
        manifest = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InputError(f"unreadable manifest: {exc}", where=str(file)) from exc
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise InputError(f"not an embeddings manifest (format is not {FORMAT})", where=str(file))
    return manifest


def read_embeddings(folder: str | Path) -> tuple[list[str], np.ndarray]:
    """All ids and vectors of a finished job, in input order (refuses an unfinished one)."""
    folder = Path(folder)
    manifest = read_manifest(folder)
    assert manifest is not None
    if manifest.get("status") != "complete":
        raise InputError(f"the embedding job is {manifest.get('status')!r}, not complete", where=str(folder),
                         hint="run it again: finished shards are kept and the rest are embedded")
    ids: list[str] = []
    parts: list[np.ndarray] = []
    for shard in manifest["shards"]:
        shard_ids, vectors = read_shard(folder / shard["file"])
        ids += shard_ids
        parts.append(vectors)
    dim = int(manifest["dimension"])
    return ids, (np.concatenate(parts) if parts else np.zeros((0, dim), dtype=np.float32))


def check_unique(results: dict[int, ShardResult]) -> None:
    """Every id once across the job; a repeat names the shard sources of both (the same one when inside one)."""
    seen: dict[str, int] = {}
    for index in sorted(results):
        for doc_id in results[index].ids:
            if doc_id in seen:
                raise InputError(f"duplicate id {doc_id!r} (also in {results[seen[doc_id]].unit.source})",
                                 where=results[index].unit.source, hint="run `embedops prepare` to dedupe")
            seen[doc_id] = index


def node_counts(results: dict[int, ShardResult]) -> dict[str, int]:
    """Shards embedded now per node id (resumed shards are not counted)."""
    out: dict[str, int] = {}
    for r in results.values():
        if not r.resumed:
            out[r.node_id] = out.get(r.node_id, 0) + 1
    return out


def pid_worker() -> str:
    """This process as a worker name (the local engine)."""
    return f"pid-{os.getpid()}"
