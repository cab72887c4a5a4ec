"""The content store: one SQLite database per collection holding ids, text, metadata (JSON) and deletion markers.

SQLite is the collection's commit point. Each row has a `slot`, its position in the vectors file and in the FAISS
index of the current *epoch*; slots are append-only within an epoch, and a rebuild compacts them under a new epoch
in one transaction. `generation` counts committed writes, so derived files (FAISS checkpoint, BM25 index) can say
which state they match.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from embedops.errors import InputError
from embedops.index.filters import Condition, json_path, to_sql

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


class ContentStore:
    """SQLite rows and collection facts; every write method runs inside `transaction()`."""

    def __init__(self, folder: str | Path, *, create: bool = False):
        self.path = Path(folder) / DB_NAME
        if not create and not self.path.is_file():
            raise InputError("not a collection (no collection.db)", where=str(Path(folder)))
        try:
            # isolation_level=None: we issue BEGIN/COMMIT ourselves so a batch is one transaction.
            self.conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            self.conn.execute("PRAGMA journal_mode=WAL")
            # FULL: a committed upsert survives power loss, not only a killed process.
            self.conn.execute("PRAGMA synchronous=FULL")
            self.conn.executescript(_SCHEMA)
        except sqlite3.DatabaseError as exc:
            raise InputError(f"cannot open the collection database: {exc}", where=str(self.path)) from exc
        self._field_types: dict[str, set[str]] = {}

    # -- transactions and facts -------------------------------------------------------------
    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE ... COMMIT, rolled back on any error; bumps `generation`."""
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield self.conn
            self.conn.execute(
                "INSERT INTO meta(key, value) VALUES('generation', '1') ON CONFLICT(key) DO UPDATE "
                "SET value = CAST(CAST(value AS INTEGER) + 1 AS TEXT)"
            )
            self.conn.execute("COMMIT")
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        finally:
            self._field_types.clear()

    def get_meta(self, key: str, default: Any = None) -> Any:
        """A JSON value from the meta table."""
        row = self.conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return default if row is None else json.loads(row[0])

    def set_meta(self, key: str, value: Any) -> None:
        """Write a JSON value into the meta table (call inside a transaction)."""
        self.conn.execute("INSERT INTO meta(key, value) VALUES(?, ?) ON CONFLICT(key) DO UPDATE SET value = "
                          "excluded.value", (key, json.dumps(value)))

    @property
    def generation(self) -> int:
        """Number of committed write transactions."""
        return int(self.get_meta("generation", 0))

    def slot_count(self) -> int:
        """Slots used in this epoch (live and deleted)."""
        row = self.conn.execute("SELECT MAX(slot) FROM docs").fetchone()
        return 0 if row[0] is None else int(row[0]) + 1

    def ids_and_live(self) -> tuple[list[str], np.ndarray]:
        """Id of every slot and a boolean live mask, in slot order."""
        n = self.slot_count()
        ids: list[str] = [""] * n
        live = np.zeros(n, dtype=bool)
        for slot, doc_id, deleted in self.conn.execute("SELECT slot, id, deleted FROM docs"):
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
    def live_slots(self, ids: Sequence[str]) -> dict[str, int]:
        """Slot of each live id among `ids` (unknown ids are absent)."""
        out: dict[str, int] = {}
        for start in range(0, len(ids), 500):
            chunk = list(ids[start : start + 500])
            marks = ",".join("?" * len(chunk))
            for doc_id, slot in self.conn.execute(
                f"SELECT id, slot FROM docs WHERE deleted = 0 AND id IN ({marks})", chunk
            ):
                out[doc_id] = slot
        return out

    def rows(self, slots: Sequence[int]) -> dict[int, tuple[str, str | None, dict[str, Any]]]:
        """(id, text, metadata) for each slot."""
        out: dict[int, tuple[str, str | None, dict[str, Any]]] = {}
        slots = [int(s) for s in slots]
        for start in range(0, len(slots), 500):
            chunk = slots[start : start + 500]
            marks = ",".join("?" * len(chunk))
            for slot, doc_id, text, meta in self.conn.execute(
                f"SELECT slot, id, text, meta FROM docs WHERE slot IN ({marks})", chunk
            ):
                out[slot] = (doc_id, text, json.loads(meta))
        return out

    def live_texts(self) -> tuple[list[int], list[str]]:
        """Slots and texts of all live rows that have text (for the keyword index)."""
        slots, texts = [], []
        for slot, text in self.conn.execute(
            "SELECT slot, text FROM docs WHERE deleted = 0 AND text IS NOT NULL ORDER BY slot"
        ):
            slots.append(slot)
            texts.append(text)
        return slots, texts

    def field_types(self, fields: Sequence[str]) -> dict[str, set[str]]:
        """JSON types each field takes among live rows (cached until the next write)."""
        for field in fields:
            if field not in self._field_types:
                rows = self.conn.execute(
                    "SELECT DISTINCT json_type(meta, ?) FROM docs WHERE deleted = 0", (json_path(field),)
                )
                self._field_types[field] = {r[0] for r in rows if r[0] is not None and r[0] != "null"}
        return {f: self._field_types[f] for f in fields}

    def matching_slots(self, conditions: list[Condition]) -> np.ndarray:
        """Live slots whose metadata satisfies every condition."""
        where, params = to_sql(conditions)
        rows = self.conn.execute(f"SELECT slot FROM docs WHERE deleted = 0 AND {where}", params)
        return np.fromiter((r[0] for r in rows), dtype=np.int64)

    def close(self) -> None:
        """Close the connection."""
        with contextlib.suppress(sqlite3.Error):
            self.conn.close()
