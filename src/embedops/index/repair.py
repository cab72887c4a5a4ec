"""Bringing a damaged collection back to its last committed state, or saying exactly what cannot come back.

SQLite is the commit point; everything else is derived from it and the vectors file. So a repair rebuilds the
FAISS index from the stored vectors, rebuilds the keyword index from the stored texts, cuts an append that never
committed and removes stray files. What it cannot invent is a vector that is gone: a vectors file shorter than the
committed slots (a truncation, a lost file) is an error naming the file, the counts and the documents lost, and
only `drop_lost=True` deletes those documents so the others open again. A damaged SQLite file cannot be rebuilt
from anything: that is reported as such.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import numpy as np

from embedops.errors import InputError


def lost_vectors(store: Any, path: Path, have: int, ids: list[str], live: np.ndarray,
                 drop: bool) -> tuple[list[str], np.ndarray, int]:
    """The vectors file ends before the committed slots: raise what is lost, or (repair with `drop`) delete those
    rows so the rest opens. Returns the ids, live mask and generation left. Called by FaissStore._load."""
    lost = [ids[s] for s in range(have, len(ids)) if live[s]]
    shown = ", ".join(repr(i) for i in lost[:5]) + (" ..." if len(lost) > 5 else "")
    what = (f"the vectors file is truncated: it holds {have} vectors, the database {len(ids)}: the vectors of "
            f"{len(lost)} live document(s) in slots {have}..{len(ids) - 1} are lost ({shown or 'none of them live'})")
    if not drop:
        hint = ("nothing else holds those vectors; `Collection.repair(path, drop_lost=True)` (embedops index repair "
                f"--drop-lost) deletes these {len(lost)} document(s) so the other {int(live[:have].sum())} open "
                "again; add them again afterwards")
        raise InputError(what, where=str(path), hint=None if store.read_only else hint)
    c = store.content
    with c.transaction():
        c.conn.execute("DELETE FROM docs WHERE slot >= ?", (have,))
    store.repairs.append(f"{what}; deleted them")
    store.lost_ids = lost
    ids, live = c.ids_and_live(c.conn)
    return ids, live, c.generation(c.conn)


def repair_collection(path: str | Path, *, drop_lost: bool = False) -> dict[str, Any]:
    """Open with repair, rebuild the derived files, write them, check integrity; a report of what was done.

    Raises InputError naming what cannot be recovered (lost vectors without `drop_lost`, a damaged database,
    problems the integrity check still finds afterwards).
    """
    from embedops.index.faiss_store import FaissStore

    folder = Path(path)
    try:
        store = FaissStore(folder, repair=True, drop_lost=drop_lost)
    except sqlite3.DatabaseError as exc:
        raise _database_lost(folder, exc) from exc
    try:
        store.refresh()
        store.flush()
        problems = store.integrity_check()
        report = {"path": str(folder), "documents": store.count(), "generation": store.generation,
                  "actions": list(store.repairs), "lost_ids": list(store.lost_ids), "problems": problems}
    except sqlite3.DatabaseError as exc:
        raise _database_lost(folder, exc) from exc
    finally:
        store.close()
    if problems:
        raise InputError("repair could not bring the collection back: " + "; ".join(problems), where=str(folder),
                         hint="the SQLite database is the commit point; restore the folder from a copy")
    return report


def _database_lost(folder: Path, exc: Exception) -> InputError:
    return InputError(f"the collection database is damaged ({exc}); it is the commit point, so nothing can rebuild "
                      "it", where=str(folder / "collection.db"), hint="restore the folder from a copy")
