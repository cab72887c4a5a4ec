"""`FaissStore`, the embedded VectorStore: a directory with a SQLite database, a vectors file and a FAISS index.

Files of a collection directory (txtai's idea: an index is a folder you can copy)::

    collection.db            SQLite: ids, text, metadata JSON, deletion markers, facts (the commit point)
    vectors.<epoch>.f32      float32 vectors by slot, append-only within an epoch
    index.<epoch>.<gen>.faiss   FAISS checkpoint covering slots [0, ntotal) of the epoch
    index.json               manifest naming the checkpoint, its epoch, SQLite generation and checksum
    bm25/                    the keyword index (a derived file, rebuilt when stale)
    write.lock               the lock file writers hold (flock), so two processes never write at once

Crash safety: an upsert appends + fsyncs its vectors, then commits one SQLite transaction; the FAISS file is a
checkpoint written to a temp file, fsynced and renamed, and only then named by the manifest. A process killed
anywhere reopens in the last committed state: a torn vector append is cut, slots newer than the checkpoint are
re-added from the vectors file, and a checkpoint from another epoch is ignored and rebuilt.

Threads: one writer at a time (the write lock), any number of readers on the current `Snapshot` (see snapshot.py
and searching.py). Work that is too heavy for a write call (rebuilds, keyword refresh, checkpoints) runs on the
collection's background thread (see maintenance.py).
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np

from embedops._io import _umask, atomic_dir, file_sha256
from embedops.errors import InputError, MissingDependencyError
from embedops.index.ann import AnnIndex, Plan, plan_index
from embedops.index.background import BackgroundWorker
from embedops.index.base import IndexSpec
from embedops.index.bm25 import KeywordIndex
from embedops.index.lifecycle import restore_replaced
from embedops.index.locks import LOCK_NAME, NullLock, RWLock, WriteLock
from embedops.index.maintenance import MANIFEST, MaintenanceMixin
from embedops.index.repair import lost_vectors
from embedops.index.searching import SearchMixin
from embedops.index.snapshot import Snapshot, StateVersion, frozen_mask
from embedops.index.sqlite_store import DB_NAME, ContentStore
from embedops.index.validation import check_ids, check_vectors
from embedops.index.vectorfile import VectorFile

FORMAT_VERSION = 1
Refresh = Literal["background", "now", "none"]
REFRESH_MODES = ("background", "now", "none")


class FaissStore(SearchMixin, MaintenanceMixin):
    """FAISS + SQLite vector store: upsert, delete, filtered dense and BM25 search, recommend, atomic persistence."""

    def __init__(self, folder: str | Path, *, repair: bool = False, read_only: bool = False,
                 drop_lost: bool = False):
        self.folder = Path(folder)
        if repair and read_only:
            raise InputError("a read-only collection cannot be repaired", where=str(self.folder))
        if not self.folder.is_dir() and (read_only or not restore_replaced(self.folder)):
            raise InputError("collection folder not found", where=str(self.folder))
        self.read_only = read_only
        self.repairs: list[str] = []  # what opening with repair=True did, in words
        self.lost_ids: list[str] = []  # documents deleted by repair(drop_lost=True): their vectors were gone
        self.content = ContentStore(self.folder, read_only=read_only)
        self._rw = RWLock()
        self._write_lock: WriteLock | NullLock = NullLock() if read_only else WriteLock(self.folder)
        self._keyword_lock = threading.Lock()  # one keyword build at a time
        self._worker = BackgroundWorker(str(self.folder))
        self._writes = threading.local()  # generation of each thread's last write (read-your-writes token)
        self._closed = False
        self._damaged = False  # a publish failed after its commit: reload from disk before the next write
        self._keyword_saved: KeywordIndex | None = None
        try:
            with self._write_lock:
                self._snap: Snapshot = self._load(repair, drop_lost=repair and drop_lost)
        except BaseException:
            self.content.close()
            self._write_lock.close()
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
            os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes 0700: readers of a shared collection need more
            cls.init_folder(tmp, dimension, spec, facts=facts)
        return cls(folder)

    @staticmethod
    def init_folder(folder: Path, dimension: int, spec: IndexSpec, *, facts: dict[str, Any] | None = None) -> None:
        """Write the files of an empty collection into an existing empty folder (`create` and builds use it)."""
        content = ContentStore(folder, create=True)
        try:
            with content.transaction():
                content.set_meta("format", FORMAT_VERSION)
                content.set_meta("dimension", dimension)
                content.set_meta("spec", spec.as_dict())
                content.set_meta("epoch", 0)
                for key, value in (facts or {}).items():
                    content.set_meta(key, value)
        finally:
            content.close()
        (folder / "vectors.0.f32").touch()

    def _load(self, repair: bool, *, drop_lost: bool = False) -> Snapshot:
        """Read the committed state from disk (write lock held) and return it as a snapshot."""
        c = self.content
        meta = c.all_meta(c.conn)
        if meta.get("format") is None:
            raise InputError("not a collection database (no format marker)", where=str(c.path))
        self.dimension = int(meta["dimension"])
        self.spec = IndexSpec.from_dict(meta.get("spec", {}))
        epoch, generation = int(meta.get("epoch", 0)), int(meta.get("generation", 0))
        ids, live = c.ids_and_live(c.conn)
        vec_path = self.folder / f"vectors.{epoch}.f32"
        have = VectorFile.rows_on_disk(vec_path, self.dimension)
        if have < len(ids):
            ids, live, generation = lost_vectors(self, vec_path, have, ids, live, drop_lost)
        tail = vec_path.stat().st_size - len(ids) * self.dimension * 4 if vec_path.exists() else 0
        if tail > 0 and not self.read_only:
            self.repairs.append(f"cut {tail} bytes of an append that never committed from {vec_path.name}")
        vfile = VectorFile(vec_path, self.dimension, len(ids), read_only=self.read_only)
        vectors = vfile.map(len(ids))
        ann = self._load_checkpoint(repair, epoch, ids, live, vectors)
        if len(ids) > ann.ntotal:  # committed after the last checkpoint: re-add from the vectors file
            ann.add(np.asarray(vectors[ann.ntotal :]))
        self._vfile = vfile
        keyword = self._load_keyword(epoch, len(ids), generation, fresh=repair)
        snap = Snapshot(epoch, generation, ann, ids, len(ids), frozen_mask(live), int(live.sum()), vectors, keyword)
        if not self.read_only:
            self._remove_strays(vfile.path.name)
        return snap

    def _load_checkpoint(self, repair: bool, epoch: int, ids: list[str], live: np.ndarray,
                         vectors: np.ndarray) -> AnnIndex:
        manifest_path = self.folder / MANIFEST
        manifest = None
        if manifest_path.is_file():
            try:
                manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:
                if not repair:
                    raise InputError(f"the index manifest is unreadable: {exc}", where=str(manifest_path),
                                     hint="open with repair=True to rebuild it") from exc
        if manifest is not None and manifest.get("epoch") == epoch and not repair:
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
            if ann.ntotal > len(ids):
                raise InputError(f"the FAISS index holds {ann.ntotal} vectors, the database {len(ids)}",
                                 where=str(path), hint="open with repair=True to rebuild it")
            self._checkpoint = (manifest["file"], ann.ntotal, int(manifest["size"]))
            return ann
        count = int(live.sum())
        ann = AnnIndex(plan_index(self.spec, self.dimension, count), self.dimension, self.spec)
        if len(ids):
            ann.train(np.asarray(vectors[live] if count else vectors))
        self._checkpoint = (None, 0, 0)
        if repair:
            self.repairs.append(f"rebuilt the FAISS index from the {len(ids)} stored vectors")
        return ann

    def _load_keyword(self, epoch: int, slots: int, generation: int, *, fresh: bool = False) -> KeywordIndex | None:
        """The saved keyword index when it covers this state, else (or when `fresh`) one built now (at open, not
        at a search)."""
        try:
            saved = None if fresh else KeywordIndex.load(self.folder)
            if saved is not None and saved.matches(epoch, slots):
                self._keyword_saved = saved
                return saved
            found, texts = self.content.live_texts(slots, self.content.conn)
            if fresh:
                self.repairs.append(f"rebuilt the keyword index from the {len(texts)} stored texts")
            return KeywordIndex.build(found, texts, epoch, slots, generation)
        except MissingDependencyError:
            return None  # keyword search then names the extra to install

    def _remove_strays(self, vectors_name: str) -> None:
        keep = {DB_NAME, f"{DB_NAME}-wal", f"{DB_NAME}-shm", MANIFEST, LOCK_NAME, vectors_name}
        if self._checkpoint[0]:
            keep.add(self._checkpoint[0])
        for p in self.folder.iterdir():
            name = p.name
            # Temp files and folders (a checkpoint, a keyword index save) of a writer killed mid-write.
            stray = (name.startswith(("vectors.", "index.")) and name.endswith((".f32", ".faiss"))) or (
                name.startswith(".") and name.endswith((".tmp", ".old")))
            if stray and name not in keep:
                if p.is_dir() and not p.is_symlink():
                    shutil.rmtree(p, ignore_errors=True)
                else:
                    p.unlink(missing_ok=True)

    # -- facts ------------------------------------------------------------------------------
    def __len__(self) -> int:
        return self._snap.live_count

    def count(self) -> int:
        """Live documents."""
        return self._snap.live_count

    def ids(self) -> list[str]:
        """Ids of all live documents, in slot order."""
        snap = self._snap
        return [snap.ids[i] for i in np.flatnonzero(snap.live)]

    @property
    def ann(self) -> AnnIndex:
        """The current FAISS index (for measurements; searches go through `search`)."""
        return self._snap.ann

    @property
    def epoch(self) -> int:
        """Compactions so far (slots are renumbered by each)."""
        return self._snap.epoch

    @property
    def generation(self) -> int:
        """Committed write transactions in the state searches currently see."""
        return self._snap.generation

    @property
    def version(self) -> StateVersion:
        """The state searches read now (epoch, generation, keyword index coverage); one attribute read."""
        return self._snap.version

    @property
    def last_write_generation(self) -> int | None:
        """Generation committed by the calling thread's latest write (a read-your-writes token); None before."""
        return getattr(self._writes, "generation", None)

    def facts(self) -> dict[str, Any]:
        """Everything recorded in the collection's meta table."""
        self._check_open()
        return self.content.all_meta()

    def _check_open(self) -> None:
        if self._closed:
            raise InputError("the collection is closed", where=str(self.folder))

    def _check_writable(self) -> None:
        if self.read_only:
            raise InputError("the collection was opened read-only: it cannot be written", where=str(self.folder),
                             hint="open it without read_only=True (with write access to the folder) to change it")

    # -- writes -----------------------------------------------------------------------------
    def upsert(self, ids: Sequence[str], vectors: np.ndarray, metadata: Sequence[dict[str, Any]] | None = None,
               texts: Sequence[str | None] | None = None, *, refresh: Refresh = "background") -> int:
        """Insert or replace (same id) documents in one transaction; returns how many were written.

        `refresh`: "background" schedules the keyword index refresh, "now" rebuilds it in this thread before
        returning, "none" leaves it to the caller (`refresh()` or `schedule_refresh()`).
        """
        self._check_writable()
        if refresh not in REFRESH_MODES:
            raise InputError(f"refresh must be one of {', '.join(REFRESH_MODES)}, got {refresh!r}", where="upsert")
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
        c = self.content
        with self._write_lock:
            self._check_open()
            snap = self._sync()
            start = self._vfile.count
            c.begin()
            try:
                replaced = c.live_slots(ids, c.conn)
                self._vfile.append(vectors)  # fsynced before the commit that makes the slots visible
                c.mark_deleted(list(replaced.values()))
                c.insert(start, ids, txts, metas)
                generation = c.bump_generation()
                live = np.concatenate([snap.live, np.ones(n, dtype=bool)])
                if replaced:
                    live[list(replaced.values())] = False
                new = Snapshot(snap.epoch, generation, snap.ann, snap.ids, start + n, frozen_mask(live),
                               int(live.sum()), self._vfile.map(start + n))
                new = self._publish(new, vectors, ids, textless=all(t is None for t in txts))
            except BaseException:
                if not self._after_failed_write(snap.generation):
                    self._vfile.rollback()  # the append's transaction never committed: its tail goes
                raise
            self._writes.generation = generation
            stale = new.keyword is not None and not new.keyword.matches(new.epoch, new.slots)
            self._after_write(new, stale and refresh == "background")
        if stale and refresh == "now":
            self.refresh()
        return n

    def delete(self, ids: Sequence[str]) -> int:
        """Mark documents deleted (compacted away by a later rebuild); returns how many existed."""
        self._check_writable()
        ids = self._check_ids(ids, allow_duplicates=True)
        c = self.content
        with self._write_lock:
            self._check_open()
            snap = self._sync()
            c.begin()
            try:
                found = c.live_slots(ids, c.conn)
                if not found:
                    c.rollback()
                    return 0
                c.mark_deleted(list(found.values()))
                generation = c.bump_generation()
                live = snap.live.copy()
                live[list(found.values())] = False
                new = Snapshot(snap.epoch, generation, snap.ann, snap.ids, snap.slots, frozen_mask(live),
                               int(live.sum()), snap.vectors)
                new = self._publish(new, None, None)
            except BaseException:
                self._after_failed_write(snap.generation)
                raise
            self._writes.generation = generation
            # Deletions leave the keyword index current: searches mask deleted slots with the live mask.
            self._after_write(new, False)
        return len(found)

    def _after_failed_write(self, generation: int) -> bool:
        """Roll back a write that raised; True when its transaction had committed all the same.

        The database decides, not the code path: an exception (a Ctrl-C) can land between a COMMIT that went
        through and the bookkeeping after it. A committed write's vectors are data: never cut them; the next
        write reloads the state from disk instead.
        """
        c = self.content
        try:
            c.rollback()
            if c.generation(c.conn) == generation:
                return False
        except Exception:  # noqa: BLE001 - unknown counts as committed: an uncut tail is cut at the next open
            pass
        self._damaged = True
        return True

    def _publish(self, new: Snapshot, vectors: np.ndarray | None, ids: list[str] | None, *,
                 textless: bool = False) -> Snapshot:
        """Commit and make the new state visible at once: no reader runs between the commit and the swap.

        The keyword index is taken from the snapshot current at the swap (a refresh may have swapped in a newer
        one since this write began); slots added without text leave a current keyword index current.
        """
        self._rw.acquire_write()
        try:
            self.content.commit()
            try:
                if vectors is not None:
                    self._vfile.commit(len(vectors))
                    new.ann.add(vectors)
                    new.ids.extend(ids)
                keyword = self._snap.keyword
                if textless and keyword is not None and keyword.matches(new.epoch, self._snap.slots):
                    keyword = keyword.covering(new.slots, new.generation)
                new = dataclasses.replace(new, keyword=keyword)
                self._snap = new
            except BaseException:
                # Committed but not published: readers keep the old snapshot; the next write reloads from disk.
                self._damaged = True
                raise
        finally:
            self._rw.release_write()
        return new

    # -- validation (validation.py) ---------------------------------------------------------------
    _check_ids = staticmethod(check_ids)

    def _check_vectors(self, vectors: Any, ids: list[str]) -> np.ndarray:
        return check_vectors(vectors, ids, self.dimension)


def remove_collection(folder: str | Path) -> None:
    """Delete a collection directory (refuses folders that are not collections)."""
    folder = Path(folder)
    if not (folder / DB_NAME).is_file():
        raise InputError("not a collection", where=str(folder))
    shutil.rmtree(folder)
