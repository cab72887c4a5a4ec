"""The immutable state searches read: ANN index, id map, live mask, vectors map and keyword index of one generation.

The writer builds a new `Snapshot` and swaps it in under the exclusive side of the readers-writer lock, together
with the SQLite commit, so a reader holding the shared side sees SQLite's committed state equal to its snapshot.
Two parts are shared between snapshots of one epoch rather than copied per write: the FAISS index (appended in
place, which is why adds and searches are mutually excluded) and the id list (append-only); a snapshot reads only
its first `slots` entries of either.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np

from embedops.index.ann import AnnIndex
from embedops.index.bm25 import KeywordIndex


class StateVersion(NamedTuple):
    """Which committed state a search reads: equal versions give equal answers (a cache key, an ETag)."""

    epoch: int
    generation: int
    keyword_generation: int | None  # generation whose texts the keyword index holds (None: no keyword index)
    keyword_slots: int | None  # slots of the epoch it covers


@dataclass(frozen=True, slots=True)
class Snapshot:
    """One committed state of a collection, as searches see it."""

    epoch: int
    generation: int
    ann: AnnIndex
    ids: list[str]  # id of each slot; shared append-only within the epoch, read only below `slots`
    slots: int
    live: np.ndarray  # bool per slot, read-only
    live_count: int
    vectors: np.ndarray  # float32 (slots, dimension), a read-only memory map of the epoch's vectors file
    keyword: KeywordIndex | None = None
    # Memo of values derived from this state (live-mask selector, metadata field types); dropped with it.
    cache: dict[str, Any] = field(default_factory=dict)

    @property
    def version(self) -> StateVersion:
        """The state this snapshot answers from."""
        kw = self.keyword
        return StateVersion(self.epoch, self.generation, None if kw is None else kw.generation,
                            None if kw is None else kw.slot_count)

    @property
    def all_live(self) -> bool:
        """No deleted slot: unfiltered searches need no mask."""
        return self.live_count == self.slots

    def keyword_state(self) -> str:
        """'current' when the keyword index covers every slot of this state, else 'stale' (or 'absent')."""
        kw = self.keyword
        if kw is None:
            return "absent"
        return "current" if kw.matches(self.epoch, self.slots) else "stale"


def frozen_mask(mask: np.ndarray) -> np.ndarray:
    """The same array marked read-only (a published live mask is never changed in place)."""
    mask.flags.writeable = False
    return mask
