"""The float32 vectors of one epoch: a raw append-only file, memory-mapped for rescoring and exact fallbacks.

Appends are written and fsynced *before* the SQLite commit that makes their slots visible, so the file is never
shorter than the committed slot count; bytes past it are an append that a kill interrupted, and are cut on open.
The quantised indexes keep only codes in memory; rescoring reads the few candidate rows from this file.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from embedops.errors import InputError


class VectorFile:
    """Rows of float32 vectors by slot."""

    def __init__(self, path: Path, dimension: int, committed: int, *, read_only: bool = False):
        self.path = path
        self.dimension = dimension
        self.row_bytes = dimension * 4
        if not path.exists():
            if committed:
                raise InputError(f"the vectors file is missing but the database has {committed} vectors",
                                 where=str(path))
            if not read_only:
                path.touch()
        size = path.stat().st_size if path.exists() else 0
        have = size // self.row_bytes
        if have < committed:
            raise InputError(f"the vectors file is truncated: it holds {have} vectors, the database "
                             f"{committed}", where=str(path))
        if size != committed * self.row_bytes and not read_only:
            # An append whose transaction never committed (killed process): drop it. (A read-only reader maps
            # only the committed rows and leaves the tail to the next writer.)
            with open(path, "r+b") as fh:
                fh.truncate(committed * self.row_bytes)
                os.fsync(fh.fileno())
        self.count = committed

    @staticmethod
    def rows_on_disk(path: Path, dimension: int) -> int:
        """Whole rows the file holds (0 when it is missing)."""
        try:
            return path.stat().st_size // (dimension * 4)
        except FileNotFoundError:
            return 0

    def append(self, vectors: np.ndarray) -> int:
        """Write rows at the end and fsync; returns the first new slot."""
        start = self.count
        with open(self.path, "r+b") as fh:
            fh.truncate(start * self.row_bytes)  # drop a stale tail left by a failed earlier append
            fh.seek(start * self.row_bytes)
            fh.write(np.ascontiguousarray(vectors, dtype=np.float32).tobytes())
            fh.flush()
            os.fsync(fh.fileno())
        return start

    def commit(self, added: int) -> None:
        """Count appended rows as committed after their transaction committed."""
        self.count += added

    def rollback(self) -> None:
        """Forget an append whose transaction failed."""
        with open(self.path, "r+b") as fh:
            fh.truncate(self.count * self.row_bytes)

    def map(self, count: int) -> np.ndarray:
        """The first `count` rows as a read-only memory map (a snapshot's view; later appends do not change it)."""
        if count == 0:
            return np.zeros((0, self.dimension), dtype=np.float32)
        return np.memmap(self.path, dtype=np.float32, mode="r", shape=(count, self.dimension))

    @staticmethod
    def write_new(path: Path, vectors: np.ndarray) -> None:
        """Write a complete file (used by rebuilds) and fsync it."""
        with open(path, "wb") as fh:
            for start in range(0, len(vectors), 65_536):
                fh.write(np.ascontiguousarray(vectors[start : start + 65_536], dtype=np.float32).tobytes())
            fh.flush()
            os.fsync(fh.fileno())
