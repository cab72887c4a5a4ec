"""Read-only opening (chmod -w, a read-only mount) and `Collection.repair` (issue 9). Real files, real FAISS."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from embedops.errors import InputError
from embedops.index import Collection

N = 320

CHILD = textwrap.dedent("""
    import json, sys
    import numpy as np
    from embedops.errors import InputError
    from embedops.index import Collection

    col = Collection.open(sys.argv[1], read_only=True)
    out = {"count": len(col), "integrity": col.integrity_check()}
    out["keyword"] = [h.id for h in col.search("tag7", k=1, mode="keyword")]
    vec = col.store.vectors(["d11"])
    out["dense"] = [h.id for h in col.store.search(vec, 3, {"parity": "odd"})[0]]
    refused = []
    for name, call in (("add", lambda: col.add([{"id": "x", "text": "new"}], vectors=vec)),
                       ("delete", lambda: col.delete(["d1"])), ("flush", col.flush), ("rebuild", col.rebuild)):
        try:
            call()
        except InputError as exc:
            refused.append(name if "read-only" in str(exc) else str(exc))
    out["refused"] = refused
    col.close()
    print(json.dumps(out))
""")


def _unit(n: int, seed: int = 0) -> np.ndarray:
    v = np.random.default_rng(seed).standard_normal((n, 384)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def _docs(n: int) -> list[dict]:
    return [{"id": f"d{i}", "text": f"document tag{i} about cells", "parity": "odd" if i % 2 else "even"}
            for i in range(n)]


def _build(path: Path, encoder, n: int = N) -> None:
    Collection.build(path, encoder, _docs(n), vectors=_unit(n)).close()


def _listing(folder: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(folder.rglob("*"))}


@pytest.fixture
def shared_dir(tmp_path):
    """A folder whose contents get write access back afterwards (so the tmp folder can be cleaned up)."""
    yield tmp_path
    for p in [tmp_path, *tmp_path.rglob("*")]:
        p.chmod(stat.S_IMODE(p.stat().st_mode) | 0o200)


def _run_child(folder: Path, how: str) -> dict:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    if how == "mount":
        if shutil.which("unshare") is None:
            pytest.skip("no unshare to make a read-only mount")
        cmd = ["unshare", "-m", "sh", "-c", 'mount --bind -o ro "$1" "$1" && exec "$2" -c "$3" "$1"', "sh",
               str(folder), sys.executable, CHILD]
        res = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)
        if res.returncode and "Traceback" not in res.stderr:
            pytest.skip(f"cannot make a read-only mount here: {res.stderr.strip()}")
    else:
        for p in [folder, *folder.rglob("*")]:
            p.chmod(stat.S_IMODE(p.stat().st_mode) & ~0o222)
        cmd = [sys.executable, "-c", CHILD, str(folder)]
        if os.geteuid() == 0:  # root writes through chmod -w: read without the capabilities that allow it
            if shutil.which("setpriv") is None:
                pytest.skip("running as root without setpriv: chmod -w cannot stop root")
            cmd = ["setpriv", "--bounding-set=-dac_override,-dac_read_search,-fowner,-linux_immutable", *cmd]
        res = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout.splitlines()[-1])


@pytest.mark.parametrize("how", ["chmod", "mount"])
@pytest.mark.parametrize("clean_close", [True, False])
def test_a_read_only_folder_can_be_searched(shared_dir, encoder, how, clean_close):
    # Issue 9: a read-only collection (a read-only mount, a shared artefact) could not even be searched.
    folder = shared_dir / "col"
    _build(folder, encoder, 40)
    if not clean_close:  # a writer killed after its commit: the last commits are still in the write-ahead log
        code = (f"import numpy as np, os; from embedops.index import Collection; c = Collection.open({str(folder)!r});"
                f"c.add([{{'id': 'late', 'text': 'late document'}}], vectors=np.eye(384, dtype=np.float32)[:1]);"
                "os._exit(0)")
        subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
        assert (folder / "collection.db-wal").stat().st_size > 0
    before = _listing(folder)
    out = _run_child(folder, how)
    assert out["count"] == 40 + (not clean_close) and out["integrity"] == []
    assert out["keyword"] == ["d7"] and out["dense"][0] == "d11" and len(out["dense"]) == 3
    assert out["refused"] == ["add", "delete", "flush", "rebuild"]
    assert _listing(folder) == before  # nothing written: no lock file, checkpoint, keyword index or cut tail


def test_read_only_open_in_process_writes_nothing(tmp_path, encoder):
    folder = tmp_path / "col"
    _build(folder, encoder, 30)
    (folder / "vectors.0.f32").open("ab").write(b"\0" * 100)  # an uncommitted tail: a writer would cut it
    (folder / "write.lock").unlink()
    before = _listing(folder)
    col = Collection.open(folder, encoder, read_only=True)
    assert col.read_only and col.search("tag3", k=1, mode="keyword")[0].id == "d3"
    assert col.integrity_check() == []
    with pytest.raises(InputError, match="read-only"):
        col.add(["more"])
    col.close()
    after = _listing(folder)
    # SQLite's own reader files may appear beside the database in a writable folder; nothing of ours changes.
    assert {k: v for k, v in after.items() if not k.startswith("collection.db-")} == before
    with pytest.raises(InputError, match="cannot be repaired"):
        Collection.open(folder, read_only=True, repair=True)


def test_truncated_vectors_say_what_is_lost_and_drop_lost_repairs(tmp_path, encoder):
    # Issue 9: "the vectors file is truncated: it holds 300 vectors, the database 320", and neither rebuild nor
    # open(repair=True) could repair it.
    folder = tmp_path / "col"
    _build(folder, encoder)
    vec = folder / "vectors.0.f32"
    vec.write_bytes(vec.read_bytes()[: 300 * 384 * 4 + 100])
    for attempt in (lambda: Collection.open(folder, encoder), lambda: Collection.open(folder, encoder, repair=True),
                    lambda: Collection.repair(folder)):
        with pytest.raises(InputError) as err:
            attempt()
        text = str(err.value)
        assert str(vec) in text and "holds 300 vectors, the database 320" in text
        assert "20 live document(s)" in text and "'d300'" in text and "drop-lost" in text
    report = Collection.repair(folder, drop_lost=True)
    assert report["documents"] == 300 and report["lost_ids"] == [f"d{i}" for i in range(300, 320)]
    assert report["problems"] == [] and any("d300" in a or "lost" in a for a in report["actions"])
    col = Collection.open(folder, encoder)
    assert len(col) == 300 and col.integrity_check() == [] and col.get(["d319"]) == [None]
    np.testing.assert_array_equal(col.get(["d299"], with_vectors=True)[0].vector, _unit(N)[299])
    assert col.search("tag5", k=1, mode="keyword")[0].id == "d5"
    col.add([{"id": "d300", "text": "added again"}], vectors=_unit(N)[300:301])
    assert len(col) == 301 and col.integrity_check() == []
    col.close()


def test_repair_rebuilds_every_derived_file(tmp_path, encoder):
    folder = tmp_path / "col"
    _build(folder, encoder, 50)
    manifest = json.loads((folder / "index.json").read_text())
    (folder / manifest["file"]).write_bytes(b"garbage")
    (folder / "bm25" / "state.json").write_text("{not json")
    with pytest.raises(InputError, match="corrupted or truncated"):
        Collection.open(folder, encoder)
    (folder / "vectors.0.f32").open("ab").write(b"\1" * 77)
    (folder / ".index.0.9.faiss.tmp").write_bytes(b"stray")
    for half_saved in (".bm25.k1ll3d.tmp", ".bm25.old"):  # a keyword index save killed midway (folders)
        (folder / half_saved / "bm25s").mkdir(parents=True)
        (folder / half_saved / "slots.npy").write_bytes(b"half")
    report = Collection.repair(folder)
    assert report["documents"] == 50 and report["problems"] == [] and report["lost_ids"] == []
    actions = " | ".join(report["actions"])
    assert "FAISS index" in actions and "77 bytes" in actions and "keyword index" in actions
    assert sorted(p.name for p in folder.iterdir() if p.name.startswith(".")) == []
    col = Collection.open(folder, encoder)
    assert col.integrity_check() == [] and col.store.search(col.store.vectors(["d9"]), 1)[0][0].id == "d9"
    assert col.search("tag9", k=1, mode="keyword")[0].id == "d9"
    col.close()


def test_a_damaged_database_is_reported_as_unrecoverable(tmp_path, encoder):
    folder = tmp_path / "col"
    _build(folder, encoder, 10)
    db = folder / "collection.db"
    db.write_bytes(b"\0" * 100 + db.read_bytes()[100:])
    with pytest.raises(InputError, match="collection.db"):
        Collection.repair(folder)
