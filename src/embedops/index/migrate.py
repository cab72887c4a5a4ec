"""Copy a collection between stores (FAISS -> Milvus, Milvus -> FAISS, to or from Qdrant), checked by count and
checksum, published only when the copy is proven whole.

    report = migrate("faiss", "index", "milvus://127.0.0.1:19530", "scifact")
    report["checksum"]  # the same sha256 on both sides, or MigrationError before anything is published

The copy goes into a new target (a sibling folder for FAISS, a new physical collection for Milvus and Qdrant); the
target's documents are then read back, counted and checksummed. Only when count and checksum equal the source's is
the target published under its name (a folder swap, an alias move); otherwise, and on any error or Ctrl-C, the new
target is deleted and whatever had that name before is untouched.

The checksum (`checksum`) is a sha256 over every document in id order (UTF-8 bytes): the id, the text (or its
absence), the metadata as canonical JSON (sorted keys, integral floats written as integers, so 2015.0 and 2015 agree
across engines' JSON) and the float32 vector bytes. Writers should pause during a migration: a source that changes
while it is copied is detected (its checksum is taken again at the end) and refused.
"""

from __future__ import annotations

import hashlib
import json
import struct
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from embedops.config.store_url import StoreURL
from embedops.errors import InputError
from embedops.index.base import IndexSpec, Record
from embedops.index.faiss_store import FaissStore
from embedops.index.lifecycle import build_beside
from embedops.index.stores import filling, open_store, store_url

_INTERNAL = {"format", "dimension", "spec", "epoch", "generation"}
BATCH = 1000


class MigrationError(InputError):
    """A migration whose copy did not match its source (count or checksum); nothing was published."""


def records(store: Any, batch_size: int = BATCH) -> Iterator[list[Record]]:
    """Every document of a store with its vector, in batches (the store's own scan when it has one)."""
    scan = getattr(store, "scan", None)
    if scan is not None:
        yield from scan(batch_size, with_vectors=True)
        return
    ids = store.ids()
    for start in range(0, len(ids), batch_size):
        part = [r for r in store.get(ids[start : start + batch_size], with_vectors=True) if r is not None]
        if part:
            yield part


def _canonical(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**63:
        return int(value)
    if isinstance(value, dict):
        return {k: _canonical(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_canonical(v) for v in value]
    return value


def record_digest(record: Record) -> bytes:
    """sha256 of one document: id, text (or its absence), canonical metadata JSON, float32 vector bytes."""
    h = hashlib.sha256()
    for part in (record.id.encode("utf-8", "surrogatepass"),
                 b"\x00" if record.text is None else b"\x01" + record.text.encode("utf-8", "surrogatepass"),
                 json.dumps(_canonical(record.metadata or {}), sort_keys=True, separators=(",", ":"),
                            ensure_ascii=False).encode("utf-8", "surrogatepass"),
                 np.ascontiguousarray(record.vector, dtype="<f4").tobytes()):
        h.update(struct.pack("<Q", len(part)))
        h.update(part)
    return h.digest()


def checksum(store: Any, batch_size: int = BATCH) -> tuple[int, str]:
    """(documents, sha256 hex) over every document in id order (see the module docstring)."""
    digests: list[tuple[bytes, bytes]] = []
    for batch in records(store, batch_size):
        digests.extend((r.id.encode("utf-8", "surrogatepass"), record_digest(r)) for r in batch)
    digests.sort()
    h = hashlib.sha256()
    for doc_id, digest in digests:
        h.update(struct.pack("<Q", len(doc_id)))
        h.update(doc_id)
        h.update(digest)
    return len(digests), h.hexdigest()


def _open_source(url: StoreURL, name: str) -> Any:
    if url.engine == "faiss":
        return FaissStore(name, read_only=False)
    return open_store(url, name)


def migrate(source_store: str | StoreURL | None, source: str | Path, target_store: str | StoreURL | None,
            target: str | Path, *, overwrite: bool = False, spec: IndexSpec | None = None,
            batch_size: int = BATCH, progress: Callable[[int, int], None] | None = None) -> dict[str, Any]:
    """Copy collection `source` of `source_store` to `target` of `target_store` (see the module docstring).

    `spec` is the target's index spec (default: the source's). `progress(copied, total)` is called after each
    batch. Returns counts, the checksum, timings and where the copy went; raises MigrationError (nothing published)
    when the copy differs from the source.
    """
    src_url, dst_url = store_url(source_store, "source store"), store_url(target_store, "target store")
    if src_url.engine == dst_url.engine == "faiss" and Path(source).absolute() == Path(target).absolute() or (
            src_url.engine == dst_url.engine != "faiss" and src_url.redacted() == dst_url.redacted()
            and str(source) == str(target)):
        raise InputError("source and target are the same collection", where=str(target))
    started = time.perf_counter()
    src = _open_source(src_url, str(source))
    try:
        total = src.count()
        facts = {k: v for k, v in src.facts().items() if k not in _INTERNAL}
        if spec is None:
            spec = getattr(src, "spec", None) or IndexSpec()
            if dst_url.engine != "faiss":  # FAISS-only settings of the source become the engines' nearest
                spec = replace(spec, kind="auto" if spec.kind == "ivfpq" else spec.kind, vectors="float32")
        report: dict[str, Any] = {"source": {"store": src_url.redacted(), "name": str(source)},
                                  "target": {"store": dst_url.redacted(), "name": str(target)},
                                  "documents": total, "spec": spec.as_dict()}

        def copy(dst: Any) -> None:
            copied = 0
            t0 = time.perf_counter()
            for batch in records(src, batch_size):
                dst.upsert([r.id for r in batch], np.stack([r.vector for r in batch]),
                           [r.metadata for r in batch], [r.text for r in batch], **_quiet(dst))
                copied += len(batch)
                if progress is not None:
                    progress(copied, total)
            report["copy_seconds"] = round(time.perf_counter() - t0, 3)
            t0 = time.perf_counter()
            src_count, src_sum = checksum(src, batch_size)
            dst_count, dst_sum = checksum(dst, batch_size)
            report["verify_seconds"] = round(time.perf_counter() - t0, 3)
            if src_count != copied or src_count != total:
                raise MigrationError(f"the source changed during the migration ({total} documents at the start, "
                                     f"{copied} copied, {src_count} at the end)", where=str(source),
                                     hint="pause writers and migrate again; nothing was published")
            if (dst_count, dst_sum) != (src_count, src_sum):
                raise MigrationError(f"the copy does not match its source: {dst_count} documents, checksum "
                                     f"{dst_sum[:16]}..., the source {src_count}, {src_sum[:16]}...",
                                     where=str(target), hint="nothing was published; did a writer change the "
                                                             "source meanwhile? pause writers and migrate again")
            report["checksum"] = src_sum

        if dst_url.engine == "faiss":
            with build_beside(target, overwrite=overwrite) as tmp:
                FaissStore.init_folder(tmp, src.dimension, spec, facts=facts)
                dst = FaissStore(tmp)
                try:
                    copy(dst)
                    dst.refresh()  # the keyword index, built before the folder is published
                finally:
                    dst.close()
        else:
            with filling(dst_url, str(target), src.dimension, spec, facts, overwrite=overwrite) as dst:
                copy(dst)
    finally:
        src.close()
    report["seconds"] = round(time.perf_counter() - started, 3)
    return report


def _quiet(store: Any) -> dict[str, Any]:
    # The FAISS store would refresh its keyword index after each batch: once at the end is enough.
    return {"refresh": "none"} if hasattr(store, "keyword_search") else {}
