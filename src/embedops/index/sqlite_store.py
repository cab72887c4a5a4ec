"""The content store: one SQLite database per collection holding ids, text, metadata (JSON) and deletion markers.

SQLite is the collection's commit point. Each row has a `slot`, its position in the vectors file and in the FAISS
index of the current *epoch*; slots are append-only within an epoch, and a rebuild compacts them under a new epoch
in one transaction. `generation` counts committed writes, so derived files (FAISS checkpoint, BM25 index) can say
which state they match, and a writer can tell that another process wrote since it last looked.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import threading
import weakref
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from embedops.errors import InputError
from embedops.index.filters import Condition, field_types_sql, to_sql

DB_NAME = "collection.db"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS docs (
    slot INTEGER PRIMARY KEY,
    id TEXT NOT NULL,
    text TEXT,
    meta TEXT NOT NULL DEFAULT '{}',
    deleted INTEGER NOT NULL DEFAULT 0
);
CREATE UNIQUE INDEX IF NOT EXISTS docs_live_id ON docs(id) WHERE deleted = 0;
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


def _has_wal(db: Path) -> bool:
    wal = db.with_name(db.name + "-wal")
    return wal.is_file() and wal.stat().st_size > 0


def read_only_uri(db: Path) -> str:
    """SQLite URI that reads `db` without writing anything the reader could avoid.

    `mode=ro` where the folder is writable (a reader beside live writers needs the WAL index, -shm). In a folder
    nobody may write (chmod -w, a read-only mount) no writer can exist: `immutable=1` then reads the file with no
    locks and no -shm, unless a write-ahead log still holds commits, which only `mode=ro` can read.
    """
    uri = db.resolve().as_uri()
    # os.access is always true for root: a folder whose mode has no write bit at all is read-only by intent too.
    writable = os.access(db.parent, os.W_OK) and bool(db.parent.stat().st_mode & 0o222)
    if writable or _has_wal(db):
        return uri + "?mode=ro"
    return uri + "?mode=ro&immutable=1"


class ContentStore:
    """SQLite rows and collection facts.

    Two kinds of connection: the writer's (only used under the collection's write lock, with explicit
    `begin` / `commit` so there is never a nested BEGIN) and one read-only connection per reading thread (sqlite3
    connections must not be shared between threads that use them at the same time). Read methods take the
    connection to use; by default the calling thread's reader.
    """

    def __init__(self, folder: str | Path, *, create: bool = False, read_only: bool = False):
        self.path = Path(folder) / DB_NAME
        self.read_only = read_only
        if not create and not self.path.is_file():
            raise InputError("not a collection (no collection.db)", where=str(Path(folder)))
        self._uri = read_only_uri(self.path) if read_only else None
        try:
            # isolation_level=None: we issue BEGIN/COMMIT ourselves so a batch is one transaction.
            self.conn: sqlite3.Connection | None = self._connect()
            if read_only:
                self.conn.execute("PRAGMA query_only=ON")
                self.conn.execute("SELECT COUNT(*) FROM meta").fetchone()  # fail here, not at the first search
            else:
                self.conn.execute("PRAGMA journal_mode=WAL")
                # FULL: a committed upsert survives power loss, not only a killed process.
                self.conn.execute("PRAGMA synchronous=FULL")
                self.conn.executescript(_SCHEMA)
        except sqlite3.DatabaseError as exc:
            hint = None
            if not read_only and not os.access(self.path.parent, os.W_OK):
                hint = "the folder is not writable: open it with read_only=True (--read-only) to search it"
            elif read_only and _has_wal(self.path):
                hint = ("its last commits are still in collection.db-wal, which a reader without write access "
                        "cannot apply: open it once with write access (closing it folds the log in)")
            raise InputError(f"cannot open the collection database{' read-only' if read_only else ''}: {exc}",
                             where=str(self.path), hint=hint) from exc
        self._local = threading.local()
        # Each reader with the thread that owns it, so readers of finished threads get closed, not leaked.
        self._readers: list[tuple[weakref.ref[threading.Thread], sqlite3.Connection]] = []
        self._readers_lock = threading.Lock()

    def _connect(self) -> sqlite3.Connection:
        # check_same_thread=False only so close() may close every thread's reader; each is used by one thread.
        if self._uri is not None:
            return sqlite3.connect(self._uri, uri=True, isolation_level=None, check_same_thread=False, timeout=30.0)
        return sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=30.0)

    def reader(self) -> sqlite3.Connection:
        """This thread's read-only connection (opened on first use)."""
        conn = getattr(self._local, "conn", None)
        if self.conn is None:
            raise InputError("the collection is closed", where=str(self.path.parent))
        if conn is None:
            conn = self._connect()
            conn.execute("PRAGMA query_only=ON")
            with self._readers_lock:
                gone = [c for ref, c in self._readers if (t := ref()) is None or not t.is_alive()]
                self._readers = [(ref, c) for ref, c in self._readers if all(c is not g for g in gone)]
                self._readers.append((weakref.ref(threading.current_thread()), conn))
            for old in gone:
                with contextlib.suppress(sqlite3.Error):
                    old.close()
            self._local.conn = conn
        return conn

    # -- transactions and facts -------------------------------------------------------------
    def begin(self) -> None:
        """BEGIN IMMEDIATE on the writer connection (the caller holds the write lock)."""
        self.conn.execute("BEGIN IMMEDIATE")

    def bump_generation(self) -> int:
        """Count this transaction as one more committed write; returns the new generation (inside begin)."""
        self.conn.execute(
            "INSERT INTO meta(key, value) VALUES('generation', '1') ON CONFLICT(key) DO UPDATE "
            "SET value = CAST(CAST(value AS INTEGER) + 1 AS TEXT)"
        )
        return int(self.get_meta("generation", 0, self.conn))

    def commit(self) -> None:
        """COMMIT the writer's transaction."""
        self.conn.execute("COMMIT")

    def rollback(self) -> None:
        """ROLLBACK the writer's transaction if one is open (safe to call after a commit)."""
        if self.conn is not None and self.conn.in_transaction:
            self.conn.execute("ROLLBACK")

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """begin ... bump generation ... commit, rolled back on any error (for writes with nothing to publish)."""
        self.begin()
        try:
            yield self.conn
            self.bump_generation()
            self.commit()
        except BaseException:
            self.rollback()
            raise

    def get_meta(self, key: str, default: Any = None, conn: sqlite3.Connection | None = None) -> Any:
        """A JSON value from the meta table."""
        row = (conn or self.reader()).execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return default if row is None else json.loads(row[0])

    def set_meta(self, key: str, value: Any) -> None:
        """Write a JSON value into the meta table (call inside a transaction)."""
        self.conn.execute("INSERT INTO meta(key, value) VALUES(?, ?) ON CONFLICT(key) DO UPDATE SET value = "
                          "excluded.value", (key, json.dumps(value)))

    def all_meta(self, conn: sqlite3.Connection | None = None) -> dict[str, Any]:
        """Every fact of the meta table."""
        return {k: json.loads(v) for k, v in (conn or self.reader()).execute("SELECT key, value FROM meta")}

    def generation(self, conn: sqlite3.Connection | None = None) -> int:
        """Number of committed write transactions."""
        return int(self.get_meta("generation", 0, conn))

    def slot_count(self, conn: sqlite3.Connection | None = None) -> int:
        """Slots used in this epoch (live and deleted)."""
        row = (conn or self.reader()).execute("SELECT MAX(slot) FROM docs").fetchone()
        return 0 if row[0] is None else int(row[0]) + 1

    def ids_and_live(self, conn: sqlite3.Connection | None = None) -> tuple[list[str], np.ndarray]:
        """Id of every slot and a boolean live mask, in slot order."""
        conn = conn or self.reader()
        n = self.slot_count(conn)
        ids: list[str] = [""] * n
        live = np.zeros(n, dtype=bool)
        for slot, doc_id, deleted in conn.execute("SELECT slot, id, deleted FROM docs"):
            ids[slot] = doc_id
            live[slot] = not deleted
        return ids, live

    # -- writes ------------------------------------------------------------------------------
    def insert(self, start: int, ids: Sequence[str], texts: Sequence[str | None],
               metas: Sequence[dict[str, Any]]) -> None:
        """Insert rows at slots start, start+1, ... (inside a transaction)."""
        rows = []
        for i, (doc_id, text, meta) in enumerate(zip(ids, texts, metas, strict=True)):
            try:
                encoded = json.dumps(meta, allow_nan=False, ensure_ascii=False)
            except (TypeError, ValueError) as exc:
                raise InputError(f"metadata of {doc_id!r} is not JSON-serialisable: {exc}",
                                 where=f"batch index {i}") from exc
            rows.append((start + i, doc_id, text, encoded))
        self.conn.executemany("INSERT INTO docs(slot, id, text, meta) VALUES(?, ?, ?, ?)", rows)

    def mark_deleted(self, slots: Sequence[int]) -> None:
        """Set deletion markers (inside a transaction)."""
        self.conn.executemany("UPDATE docs SET deleted = 1 WHERE slot = ?", [(int(s),) for s in slots])

    def compact(self) -> np.ndarray:
        """Drop deleted rows and renumber live slots 0..n-1 in order; returns the old slots kept (in a tx)."""
        kept = np.array([r[0] for r in self.conn.execute("SELECT slot FROM docs WHERE deleted = 0 ORDER BY slot")],
                        dtype=np.int64)
        self.conn.execute("DELETE FROM docs WHERE deleted = 1")
        # Two passes so the primary key never collides while renumbering.
        self.conn.execute("UPDATE docs SET slot = -1 - slot")
        self.conn.executemany("UPDATE docs SET slot = ? WHERE slot = ?",
                              [(new, -1 - int(old)) for new, old in enumerate(kept)])
        return kept

    # -- reads -------------------------------------------------------------------------------
    def live_slots(self, ids: Sequence[str], conn: sqlite3.Connection | None = None) -> dict[str, int]:
        """Slot of each live id among `ids` (unknown ids are absent)."""
        conn = conn or self.reader()
        out: dict[str, int] = {}
        for start in range(0, len(ids), 500):
            chunk = list(ids[start : start + 500])
            marks = ",".join("?" * len(chunk))
            for doc_id, slot in conn.execute(
                f"SELECT id, slot FROM docs WHERE deleted = 0 AND id IN ({marks})", chunk
            ):
                out[doc_id] = slot
        return out

    def rows(self, slots: Sequence[int], conn: sqlite3.Connection | None = None
             ) -> dict[int, tuple[str, str | None, dict[str, Any]]]:
        """(id, text, metadata) for each slot."""
        conn = conn or self.reader()
        out: dict[int, tuple[str, str | None, dict[str, Any]]] = {}
        slots = [int(s) for s in slots]
        for start in range(0, len(slots), 500):
            chunk = slots[start : start + 500]
            marks = ",".join("?" * len(chunk))
            for slot, doc_id, text, meta in conn.execute(
                f"SELECT slot, id, text, meta FROM docs WHERE slot IN ({marks})", chunk
            ):
                out[slot] = (doc_id, text, json.loads(meta))
        return out

    def live_texts(self, below: int, conn: sqlite3.Connection | None = None) -> tuple[list[int], list[str]]:
        """Slots (< below) and texts of the live rows that have text, in slot order (for the keyword index)."""
        slots, texts = [], []
        for slot, text in (conn or self.reader()).execute(
            "SELECT slot, text FROM docs WHERE deleted = 0 AND text IS NOT NULL AND slot < ? ORDER BY slot", (below,)
        ):
            slots.append(slot)
            texts.append(text)
        return slots, texts

    def field_types(self, field: str, conn: sqlite3.Connection | None = None) -> set[str]:
        """JSON types a field takes among live rows."""
        sql, params = field_types_sql(field)
        rows = (conn or self.reader()).execute(sql, params)
        return {r[0] for r in rows if r[0] is not None and r[0] != "null"}

    def matching_slots(self, conditions: list[Condition], conn: sqlite3.Connection | None = None) -> np.ndarray:
        """Live slots whose metadata satisfies every condition."""
        where, params = to_sql(conditions)
        rows = (conn or self.reader()).execute(f"SELECT slot FROM docs WHERE deleted = 0 AND {where}", params)
        return np.fromiter((r[0] for r in rows), dtype=np.int64)

    def integrity(self, conn: sqlite3.Connection | None = None) -> list[str]:
        """Problems SQLite itself finds (PRAGMA integrity_check) and live ids stored twice."""
        conn = conn or self.reader()
        problems = [f"sqlite: {r[0]}" for r in conn.execute("PRAGMA integrity_check") if r[0] != "ok"]
        for doc_id, n in conn.execute(
            "SELECT id, COUNT(*) FROM docs WHERE deleted = 0 GROUP BY id HAVING COUNT(*) > 1 LIMIT 5"
        ):
            problems.append(f"id {doc_id!r} is live in {n} rows")
        row = conn.execute("SELECT COUNT(*), MAX(slot) FROM docs").fetchone()
        if row[0] and row[0] != row[1] + 1:
            problems.append(f"slots are not contiguous: {row[0]} rows, highest slot {row[1]}")
        return problems

    def close(self) -> None:
        """Close the writer's and every thread's reader connection."""
        with self._readers_lock:
            conns, self._readers = [c for _, c in self._readers], []
        if self.conn is not None:
            conns.append(self.conn)
            self.conn = None
        for conn in conns:
            with contextlib.suppress(sqlite3.Error):
                conn.close()
