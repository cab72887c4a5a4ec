"""Keyword search: BM25 (bm25s, Lucene variant, k1=1.5, b=0.75) with English stopwords and Snowball stemming.

The keyword index is derived from the texts in SQLite and covers the slots [0, slot_count) of one epoch, as they were
at `generation`. Deletions need no rebuild (the searching snapshot's live mask is applied as bm25s' weight mask, and
deleted documents keep counting in the term statistics until the next rebuild, as in Lucene). New documents make it
stale: the store rebuilds it beside the live one (in the background, or in the writer's thread when asked to refresh)
and swaps it in; a search never builds it. A compaction builds the new epoch's index before the swap.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from embedops._io import _umask, atomic_dir
from embedops._optional import require

FOLDER = "bm25"


def _tokenize(texts: list[str]):
    bm25s = require("bm25s", "index")
    stemmer = require("Stemmer", "index").Stemmer("english")
    return bm25s.tokenize(texts, stopwords="en", stemmer=stemmer, show_progress=False, return_ids=False)


class KeywordIndex:
    """BM25 over the stored texts; answers in slots with scores."""

    def __init__(self, slots: np.ndarray, retriever, epoch: int, slot_count: int, generation: int = 0):
        self.slots = slots
        self.retriever = retriever
        self.epoch = epoch
        self.slot_count = slot_count
        self.generation = generation

    @classmethod
    def build(cls, slots: list[int], texts: list[str], epoch: int, slot_count: int,
              generation: int = 0) -> KeywordIndex:
        """Tokenise and index the texts."""
        bm25s = require("bm25s", "index")
        retriever = bm25s.BM25(k1=1.5, b=0.75, method="lucene")
        tokens = _tokenize(texts) if texts else []
        # Texts of only stopwords, digits or punctuation leave no vocabulary: bm25s cannot index that (max() of an
        # empty sequence), and no keyword query could match anyway.
        has_terms = any(len(t) for t in tokens)
        if has_terms:
            retriever.index(tokens, show_progress=False)
        return cls(np.asarray(slots, dtype=np.int64), retriever if has_terms else None, epoch, slot_count,
                   generation)

    def covering(self, slot_count: int, generation: int) -> KeywordIndex:
        """The same index declared to cover more slots (for slots that were added without text: nothing to index)."""
        return KeywordIndex(self.slots, self.retriever, self.epoch, slot_count, generation)

    def matches(self, epoch: int, slot_count: int) -> bool:
        """Whether this index covers exactly the given state."""
        return self.epoch == epoch and self.slot_count == slot_count

    def search(self, queries: list[str], k: int, mask: np.ndarray | None = None) -> list[list[tuple[int, float]]]:
        """Top-k (slot, score) per query among slots allowed by `mask`; documents scoring 0 are left out."""
        if self.retriever is None or len(self.slots) == 0:
            return [[] for _ in queries]
        tokens = _tokenize(queries)
        weights = None
        if mask is not None:
            weights = mask[self.slots].astype(np.float32)
        kk = min(k, len(self.slots))
        out: list[list[tuple[int, float]]] = []
        for toks in tokens:
            if not toks:  # only stopwords or punctuation: no keyword can match
                out.append([])
                continue
            docs, scores = self.retriever.retrieve([toks], k=kk, show_progress=False, n_threads=1,
                                                   weight_mask=weights)
            out.append([(int(self.slots[d]), float(s)) for d, s in zip(docs[0], scores[0], strict=True)
                        if s > 0])
        return out

    def save(self, folder: Path) -> None:
        """Write under folder/bm25 atomically (a temp folder renamed into place)."""
        with atomic_dir(folder / FOLDER) as tmp:
            os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes 0700: readers of a shared collection need more
            if self.retriever is not None:
                self.retriever.save(str(tmp / "bm25s"), show_progress=False)
            np.save(tmp / "slots.npy", self.slots)
            (tmp / "state.json").write_text(json.dumps({"epoch": self.epoch, "slot_count": self.slot_count,
                                                        "generation": self.generation}))

    @classmethod
    def load(cls, folder: Path) -> KeywordIndex | None:
        """Read a saved index; None when absent or unreadable (it is rebuilt from SQLite then)."""
        root = folder / FOLDER
        try:
            state = json.loads((root / "state.json").read_text())
            slots = np.load(root / "slots.npy")
            retriever = None
            if (root / "bm25s").is_dir():
                retriever = require("bm25s", "index").BM25.load(str(root / "bm25s"), show_progress=False)
            return cls(slots, retriever, int(state["epoch"]), int(state["slot_count"]),
                       int(state.get("generation", 0)))
        except (OSError, ValueError, KeyError):
            return None
