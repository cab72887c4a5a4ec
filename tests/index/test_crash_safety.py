"""kill -9 in the middle of upserts (and checkpoint writes): the collection reopens in its last committed state."""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time

import numpy as np

from embedops.index import FaissStore, IndexSpec

BATCH, HOT, DIM = 1500, 40, 48

WRITER = textwrap.dedent(f"""
    import sys
    import numpy as np
    from embedops.index import FaissStore

    def vecs(seed, n):
        v = np.random.default_rng(seed).standard_normal((n, {DIM})).astype(np.float32)
        return v / np.linalg.norm(v, axis=1, keepdims=True)

    store = FaissStore(sys.argv[1])
    batch = (len(store) - {HOT}) // {BATCH} if len(store) else 0
    while True:
        # One transaction: new documents plus a new version of every "hot" document.
        ids = [f"b{{batch}}-{{i}}" for i in range({BATCH})] + [f"hot{{i}}" for i in range({HOT})]
        meta = [{{"batch": batch}}] * {BATCH} + [{{"version": batch}}] * {HOT}
        store.upsert(ids, np.vstack([vecs(batch, {BATCH}), vecs(10_000 + batch, {HOT})]), meta)
        print(batch, flush=True)
        if batch % 2 == 1:
            store.flush()  # a FAISS checkpoint write the kill may also interrupt
        batch += 1
""")


def expected(seed: int, n: int) -> np.ndarray:
    v = np.random.default_rng(seed).standard_normal((n, DIM)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def check_state(path, last_printed: int) -> int:
    """Open the store after a kill and verify it is one committed state; return the last batch in it."""
    store = FaissStore(path)
    versions = {r.metadata["version"] for r in store.get([f"hot{i}" for i in range(HOT)])}
    assert len(versions) == 1, f"hot documents from different transactions: {versions}"
    v = versions.pop()
    assert last_printed <= v <= last_printed + 1
    assert len(store) == (v + 1) * BATCH + HOT
    got = store.get([f"b{v}-0", f"b{v}-{BATCH - 1}", "hot0", f"b{v + 1}-0"], with_vectors=True)
    np.testing.assert_array_equal(got[0].vector, expected(v, BATCH)[0])
    np.testing.assert_array_equal(got[1].vector, expected(v, BATCH)[-1])
    np.testing.assert_array_equal(got[2].vector, expected(10_000 + v, HOT)[0])
    assert got[3] is None
    hits = store.search(expected(10_000 + v, HOT)[:3], 10)
    assert [len(r) for r in hits] == [10, 10, 10] and hits[0][0].id == "hot0"
    assert store.integrity_check() == []
    store.close()
    conn = sqlite3.connect(path / "collection.db")
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    conn.close()
    return v


def test_kill_9_mid_upsert_reopens_consistent(tmp_path):
    path = tmp_path / "c"
    FaissStore.create(path, DIM, IndexSpec(kind="hnsw", ef_construction=40)).close()
    rng = random.Random(0)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    for round_ in range(6):
        proc = subprocess.Popen([sys.executable, "-c", WRITER, str(path)], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, env=env)
        last = None
        wanted = rng.randint(1, 3)
        for _ in range(wanted):
            line = proc.stdout.readline()
            assert line, proc.stderr.read()
            last = int(line)
        time.sleep(rng.uniform(0.0, 0.25))  # land somewhere inside the next upsert or checkpoint
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        # Lines printed after `last` but before the kill are also committed; read what is left.
        rest = proc.stdout.read().split()
        if rest:
            last = int(rest[-1])
        proc.stdout.close()
        proc.stderr.close()
        assert proc.returncode == -signal.SIGKILL, f"round {round_}: writer ended on its own"
        check_state(path, last)
