"""Stress: 16 threads for >= 20 s on one collection (real model, real SciFact texts, real files on disk).

Threads mix query encoding, dense / keyword / hybrid / filtered search, upserts from two writers, deletes, explicit
rebuilds (compactions), info and get. Every write records the generation it committed (`last_write_generation`);
every search records the state version it ran on (read before and after: equal means it ran on that one). Afterwards
a single-threaded replay rebuilds each committed state from the write log and recomputes each search: dense by brute
force in numpy over that state's vectors, keyword with a BM25 index built single-threaded over the texts its keyword
index held, hybrid by fusing those two. Every result must equal the replay (up to exact score ties); no thread may
raise; the collection must reopen with the expected count and pass its integrity check.
"""

from __future__ import annotations

import os
import random
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest

from embedops.index import Collection, IndexSpec
from embedops.index.bm25 import KeywordIndex
from embedops.index.hybrid import CANDIDATES, fuse

SECONDS = float(os.environ.get("EMBEDOPS_STRESS_SECONDS", "20"))
THREADS = 16
FILTERS: list[dict[str, Any] | None] = [None, None, {"topic": "cells"}, {"topic": {"in": ["genes", "drugs"]}},
                                        {"year": {"gte": 2010}}, {"odd": True}]


@dataclass
class Write:
    generation: int
    upserts: list[tuple[str, np.ndarray, str, dict[str, Any]]] = field(default_factory=list)
    deletes: list[str] = field(default_factory=list)


@dataclass
class Read:
    mode: str
    query: str
    filter: dict[str, Any] | None
    k: int
    hits: list[tuple[str, float]]
    version: Any
    vector: np.ndarray | None = None  # the query vector, when the searching thread encoded it itself


def passes(meta: dict[str, Any], flt: dict[str, Any] | None) -> bool:
    """The filters above, evaluated in Python."""
    for key, cond in (flt or {}).items():
        value = meta.get(key)
        if isinstance(cond, dict) and "in" in cond:
            if value not in cond["in"]:
                return False
        elif isinstance(cond, dict):
            if not isinstance(value, int | float) or value < cond["gte"]:
                return False
        elif value != cond:
            return False
    return True


class Replay:
    """Committed states rebuilt from the write log, and searches recomputed on them, one thread."""

    def __init__(self, initial: Write, writes: list[Write], encoder):
        self.encoder = encoder
        self.log = sorted([initial, *writes], key=lambda w: w.generation)
        gens = [w.generation for w in self.log]
        assert len(set(gens)) == len(gens), "two writes reported the same generation"
        self.states: dict[int, list[tuple[str, int, np.ndarray, str, dict[str, Any]]]] = {}
        self.queries: dict[str, np.ndarray] = {}
        self.keyword: dict[int, KeywordIndex] = {}

    def prepare(self, generations: set[int]) -> None:
        """Materialise the state after every generation in `generations` (entries in slot order)."""
        entries: dict[str, tuple[int, np.ndarray, str, dict[str, Any]]] = {}
        version = 0
        wanted = sorted(generations)
        i = 0
        for w in self.log:
            while i < len(wanted) and wanted[i] < w.generation:
                self.states[wanted[i]] = [(d, *e) for d, e in entries.items()]
                i += 1
            for doc_id, vec, text, meta in w.upserts:
                entries.pop(doc_id, None)  # a replaced document moves to a new slot at the end
                version += 1
                entries[doc_id] = (version, vec, text, meta)
            for doc_id in w.deletes:
                entries.pop(doc_id, None)
        for g in wanted[i:]:
            self.states[g] = [(d, *e) for d, e in entries.items()]

    def qv(self, r: Read) -> np.ndarray:
        if r.vector is not None:
            return r.vector
        if r.query not in self.queries:
            self.queries[r.query] = self.encoder.encode([r.query], kind="query")[0]
        return self.queries[r.query]

    def dense(self, r: Read, depth: int) -> list[tuple[str, float]]:
        state = [e for e in self.states[r.version.generation] if passes(e[4], r.filter)]
        if not state:
            return []
        scores = np.stack([e[2] for e in state]) @ self.qv(r)
        order = np.argsort(-scores, kind="stable")[:depth]
        return [(state[j][0], float(scores[j])) for j in order]

    def lexical(self, r: Read, depth: int) -> list[tuple[str, float]]:
        kw_gen = r.version.keyword_generation
        held = self.states[kw_gen]
        if kw_gen not in self.keyword:
            self.keyword[kw_gen] = KeywordIndex.build(list(range(len(held))), [e[3] for e in held], 0, len(held))
        live = {e[1] for e in self.states[r.version.generation]}
        mask = np.array([e[1] in live and passes(e[4], r.filter) for e in held], dtype=bool)
        rows = self.keyword[kw_gen].search([r.query], depth, mask if len(mask) else None)[0]
        return [(held[slot][0], score) for slot, score in rows]

    def expected(self, r: Read) -> list[tuple[str, float]]:
        """The full ranking the replay gives (the test compares its first k)."""
        if r.mode == "dense":
            return self.dense(r, 10_000)
        if r.mode == "keyword":
            return self.lexical(r, 10_000)
        depth = max(CANDIDATES, r.k)
        return [(str(i), float(s)) for i, s in fuse([self.dense(r, depth), self.lexical(r, depth)], "minmax")]


def same_ranking(got: list[tuple[str, float]], full: list[tuple[str, float]], k: int, tol: float) -> str | None:
    """None when `got` is the replay's top k up to exact ties; else what differs."""
    want = full[:k]
    if len(got) != len(want):
        return f"{len(got)} hits, replay {len(want)}"
    if len({i for i, _ in got}) != len(got):
        return "duplicate ids"
    score_of = dict(full)
    for pos, ((gid, gs), (wid, ws)) in enumerate(zip(got, want, strict=True)):
        if abs(gs - ws) > tol:
            return f"position {pos}: {gid} {gs:.6f}, replay {wid} {ws:.6f}"
        if gid != wid and (gid not in score_of or abs(score_of[gid] - ws) > tol):
            return f"position {pos}: {gid}, replay {wid} (not a tie)"
    return None


@pytest.mark.slow
def test_sixteen_threads_one_collection(tmp_path, encoder, scifact_mini):
    docs, vectors, queries = scifact_mini
    pool = {d["id"]: (d, vectors[i]) for i, d in enumerate(docs)}
    pool_ids = list(pool)
    col = Collection.create(tmp_path / "c", encoder, spec=IndexSpec(kind="flat"))
    first = docs[:150]
    col.add(first, vectors=vectors[:150])
    initial = Write(col.last_write_generation, [(d["id"], vectors[i], d["text"], d["metadata"])
                                                for i, d in enumerate(first)])
    writes: list[Write] = []
    reads: list[Read] = []
    errors: list[tuple[str, BaseException]] = []
    counts: Counter[str] = Counter()
    search_texts = queries + [d["text"][:60] for d in docs[::10]]
    deadline = time.monotonic() + SECONDS
    start = threading.Barrier(THREADS)

    def writer(seed: int) -> None:
        rng = random.Random(seed)
        while time.monotonic() < deadline:
            picked = rng.sample(pool_ids, rng.randint(1, 4))
            batch = []
            for doc_id in picked:
                doc = dict(pool[doc_id][0])
                if rng.random() < 0.5:  # same text, new metadata: replaces the document
                    doc["metadata"] = {**doc["metadata"], "year": rng.randint(2000, 2019), "odd": rng.random() < .5}
                batch.append(doc)
            vecs = encoder.encode([d["text"] for d in batch], kind="document")  # encoding runs beside searches
            refresh = rng.random() < 0.2
            col.add(batch, vectors=vecs, refresh=refresh)
            if refresh:  # read-your-writes: the keyword index already holds this write, whatever others did
                assert col.version.keyword_generation >= col.last_write_generation
            writes.append(Write(col.last_write_generation,
                                [(d["id"], v, d["text"], d["metadata"]) for d, v in zip(batch, vecs, strict=True)]))
            counts["upsert"] += 1

    def deleter(seed: int) -> None:
        rng = random.Random(seed)
        while time.monotonic() < deadline:
            picked = rng.sample(pool_ids, rng.randint(1, 3))
            if col.delete(picked):
                writes.append(Write(col.last_write_generation, deletes=picked))
                counts["delete"] += 1
            time.sleep(0.05)

    def maintainer(seed: int) -> None:
        rng = random.Random(seed)
        while time.monotonic() < deadline:
            time.sleep(rng.uniform(1.5, 3.0))
            col.rebuild()  # compaction beside the live index
            counts["rebuild"] += 1
            info = col.info()
            assert info["documents"] >= 0 and info["keyword"]["epoch"] == info["epoch"]
            col.get(rng.sample(pool_ids, 5), with_vectors=True)

    def encode(seed: int) -> None:
        rng = random.Random(seed)
        while time.monotonic() < deadline:
            i = rng.randrange(len(docs))
            got = encoder.encode([docs[i]["text"]], kind="document")[0]
            assert float(got @ vectors[i]) >= 0.99999, "a vector encoded beside other threads differs"
            counts["encode"] += 1
            info = col.info()  # cheap, and safe beside background rebuilds and checkpoints
            assert info["keyword"]["covers"] <= info["documents"] + info["deleted"]

    def searcher(seed: int) -> None:
        rng = random.Random(seed)
        while time.monotonic() < deadline:
            mode = rng.choice(("dense", "keyword", "hybrid"))
            query, flt, k = rng.choice(search_texts), rng.choice(FILTERS), rng.choice((1, 5, 10, 20))
            qv = None
            if mode == "keyword" or rng.random() < 0.5:  # the whole Collection path: encode, search, content
                before = col.version
                hits = col.search(query, k, flt, mode=mode)
                after = col.version
                assert all(h.text for h in hits if h.metadata is not None)
            else:  # encode first, so the state window spans the search alone (more of these can be replayed)
                qv = encoder.encode([query], kind="query")
                before = col.version
                if mode == "dense":
                    hits = col.store.search(qv, k, flt)[0]
                else:
                    hits = col.store.hybrid_search(qv, [query], k, flt)[0]
                after = col.version
            counts[mode] += 1
            if before == after:  # it ran on exactly this state
                reads.append(Read(mode, query, flt, k, [(h.id, h.score) for h in hits], before,
                                  None if qv is None else qv[0]))

    def run(name: str, fn, seed: int) -> None:
        start.wait()
        try:
            fn(seed)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append((name, exc))

    roles = [("writer", writer), ("writer", writer), ("deleter", deleter), ("maintainer", maintainer),
             ("encode", encode)] + [("searcher", searcher)] * (THREADS - 5)
    threads = [threading.Thread(target=run, args=(f"{name}-{i}", fn, i), name=f"{name}-{i}")
               for i, (name, fn) in enumerate(roles)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(SECONDS + 120)
    assert not any(t.is_alive() for t in threads), "a thread hung"
    assert errors == [], errors[:3]
    col.wait()
    assert counts["upsert"] >= 20 and counts["delete"] >= 5 and counts["rebuild"] >= 3 and counts["encode"] >= 5, counts

    # Replay every search that ran on one known state.
    replay = Replay(initial, writes, encoder)
    replay.prepare({r.version.generation for r in reads} | {r.version.keyword_generation for r in reads}
                   | {col.generation})
    checked: Counter[str] = Counter()
    for r in reads:
        problem = same_ranking(r.hits, replay.expected(r), r.k, 1e-3 if r.mode == "hybrid" else 1e-4)
        assert problem is None, (r.mode, r.query, r.filter, r.k, r.version, problem)
        checked[r.mode] += 1
    print(f"operations {dict(counts)}; searches replayed {dict(checked)}")
    assert min(checked[m] for m in ("dense", "keyword", "hybrid")) >= 20, (checked, counts)

    # The collection reopens in the last committed state, sound, and answers like the replay.
    final = {e[0] for e in replay.states[col.generation]}
    assert set(col.store.ids()) == final
    col.close()
    again = Collection.open(tmp_path / "c", encoder)
    assert len(again) == len(final) and again.integrity_check() == []
    for mode in ("dense", "keyword", "hybrid"):
        for query in queries[:5]:
            r = Read(mode, query, None, 10, [(h.id, h.score) for h in again.search(query, 10, mode=mode)],
                     again.version)
            replay.prepare({r.version.generation, r.version.keyword_generation})
            assert same_ranking(r.hits, replay.expected(r), 10, 1e-3) is None, (mode, query)
    again.close()
