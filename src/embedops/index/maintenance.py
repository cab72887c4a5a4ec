"""Maintenance of `FaissStore`: rebuilds beside the live index, keyword refresh, checkpoints, catching up with
other processes, cheap facts and an integrity check.

Rebuilds hold the write lock (other writes wait) but build the new FAISS index, vectors file and keyword index
beside the live ones while readers keep searching; only the commit of the compaction and the snapshot swap take the
exclusive side of the readers-writer lock. Writes never rebuild inline: `_after_write` schedules the work on the
collection's background thread.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import re
from typing import Any

import numpy as np

from embedops._io import atomic_write_json, file_sha256
from embedops.index.ann import AnnIndex, Plan, plan_index
from embedops.index.base import IndexSpec
from embedops.index.bm25 import KeywordIndex
from embedops.index.locks import FolderReplaced
from embedops.index.snapshot import Snapshot, frozen_mask
from embedops.index.vectorfile import VectorFile

MANIFEST = "index.json"


class MaintenanceMixin:
    """Rebuild, refresh, flush, close, info and integrity for FaissStore (which provides the state)."""

    # -- keeping up with other writers ------------------------------------------------------
    def _sync(self) -> Snapshot:
        """Before a write (write lock held): take in what another process or store instance committed."""
        snap = self._snap
        c = self.content
        generation = c.generation(c.conn)
        if generation == snap.generation and not self._damaged:
            return snap
        epoch = int(c.get_meta("epoch", 0, c.conn))
        if epoch == snap.epoch and not self._damaged and snap.ann.ntotal == snap.slots:
            # Same epoch: slots are append-only, so add the new ones and take the new live mask.
            ids, live = c.ids_and_live(c.conn)
            self._vfile = VectorFile(self._vfile.path, self.dimension, len(ids))
            vectors = self._vfile.map(len(ids))
            self._rw.acquire_write()
            try:
                snap.ann.add(np.asarray(vectors[snap.slots :]))
                snap.ids.extend(ids[snap.slots :])
                new = Snapshot(epoch, generation, snap.ann, snap.ids, len(ids), frozen_mask(live), int(live.sum()),
                               vectors, self._snap.keyword)
                self._snap = new
            finally:
                self._rw.release_write()
            self._after_write(new, True)
        else:
            new = self._load(repair=False)
            with self._rw.write():
                self._snap = new
            self._damaged = False
        return self._snap

    def _after_write(self, snap: Snapshot, keyword: bool) -> None:
        """Schedule (never run) what a write made due: keyword refresh, rebuild, checkpoint."""
        if keyword and snap.keyword is not None:
            self.schedule_refresh()
        if self._rebuild_wanted(snap):
            self._worker.schedule("rebuild", self._rebuild_job)
        elif snap.ann.ntotal - self._checkpoint[1] > max(50_000, self._checkpoint[1]):
            self._worker.schedule("checkpoint", self.flush)

    def _rebuild_wanted(self, snap: Snapshot) -> bool:
        live = snap.live_count
        want = plan_index(self.spec, self.dimension, live)
        current = snap.ann.plan.kind
        # Hysteresis: an auto HNSW index goes back to Flat only well below the threshold, so a collection that
        # hovers around it does not rebuild on every write.
        shrink_ok = not (current == "hnsw" and want.kind == "flat" and live > self.spec.hnsw_threshold // 2)
        # A quantiser trained on a small first batch fits the data badly: retrain once the collection grew 10x.
        stale_training = snap.ann.needs_training_data and live >= 1000 and live > 10 * snap.ann.trained_on
        deleted = snap.slots - live
        return (want.kind != current and shrink_ok) or stale_training or (deleted > 1000 and deleted > live)

    def _rebuild_job(self) -> None:
        with self._write_lock:
            if self._closed:
                return
            if self._rebuild_wanted(self._sync()):
                self._rebuild_locked(None)
                self._flush_locked()

    # -- rebuild ----------------------------------------------------------------------------
    def rebuild(self, spec: IndexSpec | None = None) -> dict[str, Any]:
        """Compact deleted rows and build a fresh index (optionally with a new spec) under a new epoch.

        Runs in the caller's thread; other writes wait, searches do not (they use the old index until the swap).
        """
        self._check_writable()
        with self._write_lock:
            self._check_open()
            self._sync()
            self._rebuild_locked(spec)
            self._flush_locked()
        return self.info()

    def _rebuild_locked(self, spec: IndexSpec | None) -> None:
        spec = spec or self.spec
        snap = self._snap
        c = self.content
        live_slots = np.flatnonzero(snap.live)
        n = len(live_slots)
        plan = plan_index(spec, self.dimension, n)
        new_epoch, generation = snap.epoch + 1, snap.generation + 1
        vec_path = self.folder / f"vectors.{new_epoch}.f32"
        kept = np.asarray(snap.vectors[live_slots]) if n else np.zeros((0, self.dimension), np.float32)
        VectorFile.write_new(vec_path, kept)
        try:
            ann = AnnIndex(plan, self.dimension, spec)
            ann.add(kept)
            keyword = None
            if snap.keyword is not None:
                old_slots, texts = c.live_texts(snap.slots, c.conn)
                new_slots = np.searchsorted(live_slots, np.asarray(old_slots, dtype=np.int64)).tolist()
                keyword = KeywordIndex.build(new_slots, texts, new_epoch, n, generation)
            vfile = VectorFile(vec_path, self.dimension, n)
            new = Snapshot(new_epoch, generation, ann, [snap.ids[i] for i in live_slots], n,
                           frozen_mask(np.ones(n, dtype=bool)), n, vfile.map(n), keyword)
            c.begin()
            try:
                if not np.array_equal(c.compact(), live_slots):
                    raise RuntimeError("live rows changed during rebuild")  # pragma: no cover - write lock held
                c.set_meta("epoch", new_epoch)
                c.set_meta("spec", spec.as_dict())
                if c.bump_generation() != generation:
                    raise RuntimeError("generation moved during rebuild")  # pragma: no cover - write lock held
                with self._rw.write():
                    c.commit()
                    self._snap = new
                    self.spec = spec
            except BaseException:
                c.rollback()
                raise
        except BaseException:
            # Only an epoch the database never committed loses its vectors file (a Ctrl-C can land after the
            # COMMIT and before the swap: then the new epoch is the data, and the next write reloads it).
            try:
                committed = int(c.get_meta("epoch", 0, c.conn)) == new_epoch
            except Exception:  # noqa: BLE001 - unknown counts as committed: a stray file is removed later
                committed = True
            if committed:
                self._damaged = True
            elif self._snap.epoch != new_epoch:
                vec_path.unlink(missing_ok=True)
            raise
        self._vfile = vfile
        self._checkpoint = (None, 0, 0)

    # -- keyword index ------------------------------------------------------------------------
    def refresh(self) -> None:
        """Bring the keyword index up to the current state, building it in this thread; searches keep using the
        previous one until the new one is swapped in."""
        with self._keyword_lock:
            self._rw.acquire_read()
            try:
                self._check_open()
                snap = self._snap
                if snap.keyword is None or snap.keyword.matches(snap.epoch, snap.slots):
                    return
                slots, texts = self.content.live_texts(snap.slots)
            finally:
                self._rw.release_read()
            keyword = KeywordIndex.build(slots, texts, snap.epoch, snap.slots, snap.generation)
            with self._rw.write():
                current = self._snap
                # A compaction in between built its own (newer) index: this one belongs to the old epoch.
                if current.epoch == keyword.epoch and (current.keyword is None
                                                       or current.keyword.generation <= keyword.generation):
                    self._snap = dataclasses.replace(current, keyword=keyword)

    def _refresh_job(self) -> None:
        if not self._closed:
            self.refresh()

    def schedule_refresh(self) -> None:
        """Refresh the keyword index on the background thread."""
        self._worker.schedule("keyword", self._refresh_job)

    def wait(self, timeout: float | None = None) -> bool:
        """Block until background work (rebuild, keyword refresh, checkpoint) is done; False on timeout."""
        return self._worker.wait(timeout)

    # -- persistence --------------------------------------------------------------------------
    def flush(self) -> None:
        """Write the FAISS checkpoint and the keyword index (each only when changed)."""
        self._check_writable()
        with self._write_lock:
            if not self._closed:
                self._flush_locked()

    def _flush_locked(self) -> None:
        """Checkpoint: temp file, fsync, rename, then the manifest that names it (write lock held).

        Readers keep searching meanwhile: writing an index only reads it, and no add can run without the lock.
        """
        snap = self._snap
        ann = snap.ann
        if not (self._checkpoint[0] and self._checkpoint[1] == ann.ntotal):
            name = f"index.{snap.epoch}.{snap.generation}.faiss"
            final = self.folder / name
            tmp = self.folder / f".{name}.tmp"
            ann.write(tmp)
            with open(tmp, "rb") as fh:
                os.fsync(fh.fileno())
            os.replace(tmp, final)
            size = final.stat().st_size
            atomic_write_json(self.folder / MANIFEST, {
                "epoch": snap.epoch, "generation": snap.generation, "ntotal": ann.ntotal, "file": name,
                "size": size, "sha256": file_sha256(final), "plan": ann.plan.as_dict(),
            })
            self._checkpoint = (name, ann.ntotal, size)
            self._remove_strays(self._vfile.path.name)
        if snap.keyword is not None and snap.keyword is not self._keyword_saved:
            snap.keyword.save(self.folder)
            self._keyword_saved = snap.keyword

    def close(self) -> None:
        """Finish background work, write the checkpoint and keyword index, and close the files."""
        if self._closed:
            return
        self._worker.close()
        try:
            with self._write_lock:
                if self._closed:
                    return
                try:
                    if not self.read_only:
                        self._flush_locked()
                finally:
                    self._closed = True
                    self.content.close()
        except FolderReplaced:
            # A new build took the folder's place: nothing of this state belongs there any more.
            self._closed = True
            self.content.close()
        self._write_lock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- facts --------------------------------------------------------------------------------
    def info(self) -> dict[str, Any]:
        """Size, index choice and parameters, memory per vector, keyword index and background state, files.

        Cheap: nothing is serialised; memory per vector comes from the last checkpoint's size or the index kind.
        """
        snap = self._snap
        ann = snap.ann
        name, saved, size = self._checkpoint
        if name and saved:
            per_vector, source = size / saved, "checkpoint"
        else:
            per_vector, source = estimated_bytes_per_vector(ann.plan, self.dimension, self.spec), "estimate"
        background = self._worker.state()
        files = {}
        for p in sorted(self.folder.iterdir()):
            with contextlib.suppress(OSError):  # a file a background rebuild or checkpoint just replaced
                if p.is_file():
                    files[p.name] = p.stat().st_size
        return {
            "path": str(self.folder), "documents": snap.live_count, "deleted": snap.slots - snap.live_count,
            "dimension": self.dimension, "epoch": snap.epoch, "generation": snap.generation,
            "spec": self.spec.as_dict(), "index": ann.plan.as_dict(),
            "index_bytes_per_vector": round(per_vector, 1), "index_bytes_source": source,
            "float_bytes_per_vector": 4 * self.dimension, "checkpoint": name, "unsaved_vectors": snap.slots - saved,
            "keyword_index": keyword_summary(snap, background), "keyword": keyword_facts(snap, background),
            "background": background, "files": files,
        }

    def integrity_check(self) -> list[str]:
        """Problems found (empty when sound): SQLite integrity, unique live ids, vectors file length, FAISS size
        and keyword index epoch against the committed state. Holds the write lock while it looks."""
        problems: list[str] = []
        with self._write_lock:
            self._check_open()
            snap = self._snap
            c = self.content
            problems += c.integrity(c.conn)
            meta = c.all_meta(c.conn)
            if (int(meta.get("epoch", 0)), int(meta.get("generation", 0))) != (snap.epoch, snap.generation):
                problems.append(f"database at epoch {meta.get('epoch')} generation {meta.get('generation')}, "
                                f"the snapshot at {snap.epoch}/{snap.generation} (another process wrote?)")
            ids, live = c.ids_and_live(c.conn)
            if ids != snap.ids[: snap.slots] or len(snap.ids) != snap.slots:
                problems.append(f"id map differs from the database ({len(snap.ids)} in memory, {len(ids)} rows)")
            if len(live) != snap.slots or not np.array_equal(live, snap.live) or snap.live_count != live.sum():
                problems.append("live mask differs from the database's deletion markers")
            size = self._vfile.path.stat().st_size if self._vfile.path.exists() else 0
            # A read-only reader leaves an uncommitted tail for the next writer to cut: only a short file is wrong.
            if size < snap.slots * self.dimension * 4 or (size != snap.slots * self.dimension * 4
                                                           and not self.read_only):
                problems.append(f"vectors file holds {size / (self.dimension * 4):g} rows for {snap.slots} slots")
            if snap.ann.ntotal != snap.slots:
                problems.append(f"FAISS index holds {snap.ann.ntotal} vectors for {snap.slots} slots")
            kw = snap.keyword
            if kw is not None:
                if kw.epoch != snap.epoch or kw.slot_count > snap.slots:
                    problems.append(f"keyword index covers epoch {kw.epoch} slots {kw.slot_count}, the state is "
                                    f"epoch {snap.epoch} with {snap.slots} slots")
                if len(kw.slots) and int(kw.slots.max()) >= kw.slot_count:
                    problems.append("keyword index names slots beyond the ones it covers")
        return problems


def estimated_bytes_per_vector(plan: Plan, dimension: int, spec: IndexSpec) -> float:
    """Resident bytes per vector by index kind (used until a checkpoint gives the real size)."""
    if plan.binary:
        code = dimension / 8
    elif plan.kind == "ivfpq":
        m = re.search(r"PQ(\d+)", plan.factory)
        code = (int(m.group(1)) if m else dimension // 8) + 8  # codes plus the id kept in the inverted list
    elif "SQ8" in plan.factory:
        code = float(dimension)
    else:
        code = 4.0 * dimension
    if plan.kind == "hnsw":
        code += 2 * spec.hnsw_m * 4 + 12  # level-0 links (2M int32), level and offset per vector
    return float(code)


def keyword_facts(snap: Snapshot, background: dict[str, Any]) -> dict[str, Any]:
    """Keyword index state of a snapshot: current / refreshing / stale / absent, and how much it covers."""
    kw = snap.keyword
    state = snap.keyword_state()
    if state == "stale" and (background["running"] in ("keyword", "rebuild")
                             or {"keyword", "rebuild"} & set(background["pending"])):
        state = "refreshing"
    if kw is None:
        return {"state": state, "covers": 0, "of": snap.slots}
    return {"state": state, "covers": kw.slot_count, "of": snap.slots, "epoch": kw.epoch,
            "generation": kw.generation}


def keyword_summary(snap: Snapshot, background: dict[str, Any]) -> str:
    """One line for tables: 'current (12 of 12 slots)'."""
    facts = keyword_facts(snap, background)
    if facts["state"] == "absent":
        return "absent (install embedops[index] for keyword search)"
    return f"{facts['state']} (covers {facts['covers']} of {facts['of']} slots)"
