"""Two processes writing one collection: the file lock serialises them and each catches up with the other's
commits before writing (the old code computed slots from its own stale id map and collided)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np

from embedops.index import FaissStore, IndexSpec

D = 16

OTHER = textwrap.dedent(f"""
    import sys
    import numpy as np
    from embedops.index import FaissStore

    store = FaissStore(sys.argv[1])
    rng = np.random.default_rng(1)
    for batch in range(30):
        v = rng.standard_normal((10, {D})).astype(np.float32)
        store.upsert([f"p{{batch}}-{{i}}" for i in range(10)], v / np.linalg.norm(v, axis=1, keepdims=True),
                     [{{"who": "other"}}] * 10, [f"other text {{batch}}"] * 10)
        if batch % 5 == 4:
            store.delete([f"p{{batch}}-0"])
    store.close()
""")


def test_two_processes_write_one_collection(tmp_path):
    path = tmp_path / "c"
    FaissStore.create(path, D, IndexSpec(kind="flat")).close()
    store = FaissStore(path)
    proc = subprocess.Popen([sys.executable, "-c", OTHER, str(path)], stderr=subprocess.PIPE, text=True)
    rng = np.random.default_rng(0)
    for batch in range(30):
        v = rng.standard_normal((10, D)).astype(np.float32)
        store.upsert([f"m{batch}-{i}" for i in range(10)], v / np.linalg.norm(v, axis=1, keepdims=True),
                     [{"who": "main"}] * 10, [f"main text {batch}"] * 10)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    # One more write takes in everything the other process committed, then answers for both.
    store.upsert(["last"], np.eye(D, dtype=np.float32)[:1])
    store.wait()
    assert len(store) == 300 + 300 - 6 + 1 and store.integrity_check() == []
    assert {r.metadata["who"] for r in store.get(["m29-9", "p29-9"])} == {"main", "other"}
    assert store.get(["p4-0"]) == [None]
    other = store.search(store.vectors(["p12-3"]), 1, {"who": "other"})[0]
    assert [h.id for h in other] == ["p12-3"]
    assert [h.id for h in store.keyword_search(["other text 12"], 20)[0]][:1] != []
    store.close()
    again = FaissStore(path)
    assert len(again) == 595 and again.integrity_check() == []
    again.close()
