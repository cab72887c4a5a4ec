"""`FaissStore`, the embedded VectorStore: a directory with a SQLite database, a vectors file and a FAISS index.

Files of a collection directory (txtai's idea: an index is a folder you can copy)::

    collection.db            SQLite: ids, text, metadata JSON, deletion markers, facts (the commit point)
    vectors.<epoch>.f32      float32 vectors by slot, append-only within an epoch
    index.<epoch>.<gen>.faiss   FAISS checkpoint covering slots [0, ntotal) of the epoch
    index.json               manifest naming the checkpoint, its epoch, SQLite generation and checksum

Crash safety: an upsert appends + fsyncs its vectors, then commits one SQLite transaction; the FAISS file is a
checkpoint written to a temp file, fsynced and renamed, and only then named by the manifest. A process killed
anywhere reopens in the last committed state: a torn vector append is cut, slots newer than the checkpoint are
re-added from the vectors file, and a checkpoint from another epoch is ignored and rebuilt.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from embedops._io import atomic_dir, atomic_write_json, file_sha256
from embedops.errors import InputError
from embedops.index.ann import AnnIndex, plan_index
from embedops.index.base import Filter, Hit, IndexSpec, Record
from embedops.index.searching import SearchMixin
from embedops.index.sqlite_store import DB_NAME, ContentStore
from embedops.index.vectorfile import VectorFile

MANIFEST = "index.json"
FORMAT_VERSION = 1


class FaissStore(SearchMixin):
    """FAISS + SQLite vector store with upsert, delete, filtered search, recommend and atomic persistence."""

    def __init__(self, folder: str | Path, *, repair: bool = False):
        self.folder = Path(folder)
        if not self.folder.is_dir():
            raise InputError("collection folder not found", where=str(self.folder))
        self.content = ContentStore(self.folder)
        try:
            self._load(repair)
        except BaseException:
            self.content.close()
            raise

    # -- creation and opening ---------------------------------------------------------------
    @classmethod
    def create(cls, folder: str | Path, dimension: int, spec: IndexSpec | None = None, *,
               facts: dict[str, Any] | None = None, overwrite: bool = False) -> FaissStore:
        """Make an empty collection directory (built under a temp name, renamed into place)."""
        folder = Path(folder)
        if not isinstance(dimension, int) or dimension < 1:
            raise InputError(f"dimension must be a positive integer, got {dimension!r}")
        spec = spec or IndexSpec()
        plan_index(spec, dimension, 0)  # refuse impossible combinations before writing anything
        if folder.exists() and any(folder.iterdir()):
            if not overwrite:
                raise InputError("the folder exists and is not empty", where=str(folder),
                                 hint="choose another path or pass overwrite=True (--overwrite)")
            if not (folder / DB_NAME).is_file():
                raise InputError("refusing to overwrite a folder that is not a collection", where=str(folder))
        with atomic_dir(folder) as tmp:
            content = ContentStore(tmp, create=True)
            with content.transaction():
                content.set_meta("format", FORMAT_VERSION)
                content.set_meta("dimension", dimension)
                content.set_meta("spec", spec.as_dict())
                content.set_meta("epoch", 0)
                for key, value in (facts or {}).items():
                    content.set_meta(key, value)
            content.close()
            (tmp / "vectors.0.f32").touch()
        return cls(folder)

    def _load(self, repair: bool) -> None:
        c = self.content
        if c.get_meta("format") is None:
            raise InputError("not a collection database (no format marker)", where=str(c.path))
        self.dimension = int(c.get_meta("dimension"))
        self.spec = IndexSpec.from_dict(c.get_meta("spec", {}))
        self.epoch = int(c.get_meta("epoch", 0))
        self._ids, self._live = c.ids_and_live()
        self.vectors = VectorFile(self.folder / f"vectors.{self.epoch}.f32", self.dimension, len(self._ids))
        self._selector_cache = None
        self._all_live = bool(self._live.all())
        self.ann = self._load_checkpoint(repair)
        missing = len(self._ids) - self.ann.ntotal
        if missing > 0:  # committed after the last checkpoint: re-add from the vectors file
            self.ann.add(self.vectors.array[self.ann.ntotal :])
        self._remove_strays()

    def _load_checkpoint(self, repair: bool) -> AnnIndex:
        live = int(self._live.sum())
        manifest_path = self.folder / MANIFEST
        manifest = None
        if manifest_path.is_file():
            import json

            try:
                manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:
                if not repair:
                    raise InputError(f"the index manifest is unreadable: {exc}", where=str(manifest_path),
                                     hint="open with repair=True to rebuild it") from exc
        usable = manifest is not None and manifest.get("epoch") == self.epoch and not repair
        if usable:
            from embedops.index.ann import Plan

            plan = Plan(**manifest["plan"])
            path = self.folder / manifest["file"]
            if not path.is_file():
                raise InputError("the FAISS index file named by the manifest is missing", where=str(path),
                                 hint="open with repair=True to rebuild it from the stored vectors")
            if path.stat().st_size != manifest.get("size") or file_sha256(path) != manifest.get("sha256"):
                raise InputError("the FAISS index file is corrupted or truncated (checksum mismatch)",
                                 where=str(path), hint="Collection.open(path, repair=True) or `embedops index "
                                 "rebuild` rebuilds it from the stored vectors; the SQLite data was not touched")
            ann = AnnIndex.read(path, plan, self.dimension, self.spec)
            if ann.ntotal > len(self._ids):
                raise InputError(f"the FAISS index holds {ann.ntotal} vectors, the database {len(self._ids)}",
                                 where=str(path), hint="open with repair=True to rebuild it")
            self._checkpoint = (manifest["file"], ann.ntotal)
            return ann
        plan = plan_index(self.spec, self.dimension, live)
        ann = AnnIndex(plan, self.dimension, self.spec)
        if len(self._ids):
            ann.train(self.vectors.array[self._live] if live else self.vectors.array)
        self._checkpoint = (None, 0)
        return ann

    def _remove_strays(self) -> None:
        keep = {DB_NAME, f"{DB_NAME}-wal", f"{DB_NAME}-shm", MANIFEST, self.vectors.path.name}
        if self._checkpoint[0]:
            keep.add(self._checkpoint[0])
        for p in self.folder.iterdir():
            name = p.name
            stray = (name.startswith(("vectors.", "index.")) and name.endswith((".f32", ".faiss"))) or (
                name.startswith(".") and name.endswith(".tmp"))
            if stray and name not in keep:
                p.unlink(missing_ok=True)

    # -- facts ------------------------------------------------------------------------------
    def __len__(self) -> int:
        return int(self._live.sum())

    @property
    def generation(self) -> int:
        """Committed write transactions so far."""
        return self.content.generation

    def facts(self) -> dict[str, Any]:
        """Everything recorded in the collection's meta table."""
        rows = self.content.conn.execute("SELECT key, value FROM meta").fetchall()
        import json

        return {k: json.loads(v) for k, v in rows}

    def info(self) -> dict[str, Any]:
        """Size, index choice and parameters, memory per vector, files."""
        files = {p.name: p.stat().st_size for p in sorted(self.folder.iterdir()) if p.is_file()}
        return {
            "path": str(self.folder), "documents": len(self), "deleted": len(self._ids) - len(self),
            "dimension": self.dimension, "epoch": self.epoch, "generation": self.generation,
            "spec": self.spec.as_dict(), "index": self.ann.plan.as_dict(),
            "index_bytes_per_vector": round(self.ann.bytes_per_vector(), 1),
            "float_bytes_per_vector": 4 * self.dimension, "checkpoint": self._checkpoint[0],
            "unsaved_vectors": self.ann.ntotal - self._checkpoint[1], "files": files,
        }

    # -- writes -----------------------------------------------------------------------------
    def upsert(self, ids: Sequence[str], vectors: np.ndarray, metadata: Sequence[dict[str, Any]] | None = None,
               texts: Sequence[str | None] | None = None) -> int:
        """Insert or replace (same id) documents in one transaction; returns how many were written."""
        ids = self._check_ids(ids)
        vectors = self._check_vectors(vectors, ids)
        n = len(ids)
        metas = list(metadata) if metadata is not None else [{}] * n
        txts = list(texts) if texts is not None else [None] * n
        for name, seq in (("metadata", metas), ("texts", txts)):
            if len(seq) != n:
                raise InputError(f"{len(seq)} {name} for {n} ids", where="upsert")
        for i, m in enumerate(metas):
            if not isinstance(m, dict):
                raise InputError(f"metadata must be a dict, got {type(m).__name__}", where=f"batch index {i}")
        for i, t in enumerate(txts):
            if t is not None and not isinstance(t, str):
                raise InputError(f"text must be a string, got {type(t).__name__}", where=f"batch index {i}")
        if n == 0:
            return 0
        replaced = self.content.live_slots(ids)
        start = self.vectors.append(vectors)
        try:
            with self.content.transaction():
                self.content.mark_deleted(list(replaced.values()))
                self.content.insert(start, ids, txts, metas)
        except BaseException:
            self.vectors.rollback()
            raise
        self.vectors.commit(n)
        self._ids.extend(ids)
        self._live = np.concatenate([self._live, np.ones(n, dtype=bool)])
        if replaced:
            self._live[list(replaced.values())] = False
        self._selector_cache = None
        self._all_live = bool(self._live.all())
        self.ann.add(vectors)
        self._after_write()
        return n

    def delete(self, ids: Sequence[str]) -> int:
        """Mark documents deleted (compacted away on the next rebuild); returns how many existed."""
        ids = self._check_ids(ids, allow_duplicates=True)
        found = self.content.live_slots(ids)
        if not found:
            return 0
        with self.content.transaction():
            self.content.mark_deleted(list(found.values()))
        self._live[list(found.values())] = False
        self._selector_cache = None
        self._all_live = bool(self._live.all())
        self._after_write()
        return len(found)

    def _after_write(self) -> None:
        live = len(self)
        want = plan_index(self.spec, self.dimension, live)
        deleted = len(self._ids) - live
        current = self.ann.plan.kind
        # Hysteresis: an auto HNSW index goes back to Flat only well below the threshold, so a collection that
        # hovers around it does not rebuild on every write.
        shrink_ok = not (current == "hnsw" and want.kind == "flat" and live > self.spec.hnsw_threshold // 2)
        # A quantiser trained on a small first batch fits the data badly: retrain once the collection grew 10x.
        stale_training = self.ann.needs_training_data and live >= 1000 and live > 10 * self.ann.trained_on
        if (want.kind != current and shrink_ok) or stale_training or (deleted > 1000 and deleted > live):
            self.rebuild()
        elif self.ann.ntotal - self._checkpoint[1] > max(50_000, self._checkpoint[1]):
            self.flush()

    def rebuild(self, spec: IndexSpec | None = None) -> dict[str, Any]:
        """Compact deleted rows and build a fresh index (optionally with a new spec) under a new epoch."""
        spec = spec or self.spec
        live_slots = np.flatnonzero(self._live)
        plan = plan_index(spec, self.dimension, len(live_slots))
        new_epoch = self.epoch + 1
        vec_path = self.folder / f"vectors.{new_epoch}.f32"
        kept_vectors = self.vectors.rows(live_slots) if len(live_slots) else np.zeros((0, self.dimension), "f4")
        VectorFile.write_new(vec_path, kept_vectors)
        ann = AnnIndex(plan, self.dimension, spec)
        ann.add(kept_vectors)
        old_vectors = self.vectors
        with self.content.transaction():
            kept = self.content.compact()
            if not np.array_equal(kept, live_slots):
                raise RuntimeError("live rows changed during rebuild")  # pragma: no cover - single writer
            self.content.set_meta("epoch", new_epoch)
            self.content.set_meta("spec", spec.as_dict())
        old_vectors.close()
        self.epoch, self.spec, self.ann = new_epoch, spec, ann
        self._ids = [self._ids[i] for i in live_slots]
        self._live = np.ones(len(self._ids), dtype=bool)
        self.vectors = VectorFile(vec_path, self.dimension, len(self._ids))
        self._selector_cache = None
        self._all_live = bool(self._live.all())
        self._checkpoint = (None, 0)
        self.flush()
        return self.info()

    def flush(self) -> None:
        """Write the FAISS checkpoint: temp file, fsync, rename, then the manifest that names it."""
        if self._checkpoint[0] and self._checkpoint[1] == self.ann.ntotal:
            return
        name = f"index.{self.epoch}.{self.generation}.faiss"
        final = self.folder / name
        tmp = self.folder / f".{name}.tmp"
        self.ann.write(tmp)
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, final)
        atomic_write_json(self.folder / MANIFEST, {
            "epoch": self.epoch, "generation": self.generation, "ntotal": self.ann.ntotal, "file": name,
            "size": final.stat().st_size, "sha256": file_sha256(final), "plan": self.ann.plan.as_dict(),
        })
        self._checkpoint = (name, self.ann.ntotal)
        self._remove_strays()

    def close(self) -> None:
        """Write the checkpoint if needed and close the database."""
        if getattr(self, "ann", None) is not None and self.content.conn is not None:
            self.flush()
        self.vectors.close()
        self.content.close()

    def __enter__(self) -> FaissStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- reads ------------------------------------------------------------------------------
    def get(self, ids: Sequence[str], *, with_vectors: bool = False) -> list[Record | None]:
        """Stored records in the order asked; None for ids that do not exist."""
        ids = self._check_ids(ids, allow_duplicates=True)
        slots = self.content.live_slots(ids)
        rows = self.content.rows(list(slots.values()))
        out: list[Record | None] = []
        for doc_id in ids:
            slot = slots.get(doc_id)
            if slot is None:
                out.append(None)
                continue
            _, text, meta = rows[slot]
            vec = np.array(self.vectors.array[slot]) if with_vectors else None
            out.append(Record(doc_id, text, meta, vec))
        return out

    def recommend(self, positive_ids: Sequence[str], negative_ids: Sequence[str] = (), k: int = 10,
                  filter: Filter | None = None) -> list[Hit]:
        """More like `positive_ids`, less like `negative_ids` (Qdrant's average-vector rule); examples excluded.

        query = mean(positive) + (mean(positive) - mean(negative)), or mean(positive) without negatives.
        """
        pos = self._check_ids(positive_ids, allow_duplicates=True)
        neg = self._check_ids(negative_ids, allow_duplicates=True) if negative_ids else []
        if not pos:
            raise InputError("recommend needs at least one positive id", where="positive_ids")
        slots = self.content.live_slots(pos + neg)
        unknown = [i for i in pos + neg if i not in slots]
        if unknown:
            raise InputError(f"unknown id(s) {unknown[:5]}", where="positive_ids" if unknown[0] in pos
                             else "negative_ids")
        query = self.vectors.rows(np.array([slots[i] for i in pos])).mean(axis=0)
        if neg:
            query = 2 * query - self.vectors.rows(np.array([slots[i] for i in neg])).mean(axis=0)
        norm = float(np.linalg.norm(query))
        if norm > 0:
            query = query / norm
        exclude = np.array(sorted(set(slots.values())), dtype=np.int64)
        return self._search(query[None, :].astype(np.float32), k, filter, exclude=exclude)[0]

    # -- validation -------------------------------------------------------------------------
    @staticmethod
    def _check_ids(ids: Sequence[str], allow_duplicates: bool = False) -> list[str]:
        if isinstance(ids, str):
            raise InputError("ids must be a list of strings, got a single string", hint="wrap it in a list")
        ids = list(ids)
        seen: dict[str, int] = {}
        for i, doc_id in enumerate(ids):
            if not isinstance(doc_id, str) or not doc_id:
                raise InputError(f"id must be a non-empty string, got {doc_id!r}", where=f"batch index {i}")
            if not allow_duplicates and doc_id in seen:
                raise InputError(f"duplicate id {doc_id!r} in one batch (indexes {seen[doc_id]} and {i})",
                                 where="upsert", hint="each id may appear once per batch")
            seen.setdefault(doc_id, i)
        return ids

    def _check_vectors(self, vectors: Any, ids: list[str]) -> np.ndarray:
        arr = np.asarray(vectors)
        if arr.ndim != 2 or arr.shape[0] != len(ids):
            raise InputError(f"expected vectors of shape ({len(ids)}, {self.dimension}), got {arr.shape}",
                             where="upsert")
        if arr.shape[1] != self.dimension:
            raise InputError(f"vectors have dimension {arr.shape[1]}, the collection has {self.dimension}",
                             where="upsert", hint="was the collection built with another model?")
        if not np.issubdtype(arr.dtype, np.number):
            raise InputError(f"vectors must be numeric, got dtype {arr.dtype}", where="upsert")
        arr = np.ascontiguousarray(arr, dtype=np.float32)
        bad = ~np.isfinite(arr).all(axis=1)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise InputError(f"vector of id {ids[i]!r} contains NaN or infinity ({int(bad.sum())} bad rows)",
                             where=f"batch index {i}")
        return arr


def remove_collection(folder: str | Path) -> None:
    """Delete a collection directory (refuses folders that are not collections)."""
    folder = Path(folder)
    if not (folder / DB_NAME).is_file():
        raise InputError("not a collection", where=str(folder))
    shutil.rmtree(folder)
