"""`Collection.build`: built beside the target and swapped in whole (issue 9). Real model, real files, real FAISS."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from embedops.errors import InputError
from embedops.index import Collection, IndexSpec


def _docs(n: int, tag: str) -> list[dict]:
    return [{"id": f"{tag}{i}", "text": f"{tag} document {i} about cells and genes", "tag": tag} for i in range(n)]


def _unit(n: int, seed: int) -> np.ndarray:
    v = np.random.default_rng(seed).standard_normal((n, 384)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def _dead_pid() -> int:
    proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True,
                          check=True)
    return int(proc.stdout)


def _siblings(path) -> list[str]:
    return sorted(p.name for p in path.parent.iterdir() if p.name != path.name)


def test_build_encodes_and_swaps_in(tmp_path, encoder, loader):
    path = tmp_path / "col"
    col = Collection.build(path, encoder, _docs(30, "a"))
    assert len(col) == 30 and col.search("a document about genes", k=1)[0].metadata["tag"] == "a"
    col.close()
    assert _siblings(path) == []
    again = Collection.open(path, loader=loader)
    assert len(again) == 30 and again.integrity_check() == []
    again.close()


def test_failed_overwrite_keeps_the_old_collection(tmp_path, encoder):
    # Issue 9: --overwrite deleted the old collection first; an error 12 s in left 0 documents of 300.
    path = tmp_path / "col"
    Collection.build(path, encoder, _docs(300, "old"), vectors=_unit(300, 0)).close()
    bad = _unit(1100, 1)
    bad[900] = np.nan  # fails in the second chunk, after 512 documents were written
    with pytest.raises(InputError, match="NaN"):
        Collection.build(path, encoder, _docs(1100, "new"), vectors=bad, overwrite=True)
    col = Collection.open(path, encoder)
    assert len(col) == 300 and col.get(["old0"])[0] is not None and col.get(["new0"]) == [None]
    assert col.integrity_check() == []
    np.testing.assert_array_equal(col.get(["old7"], with_vectors=True)[0].vector, _unit(300, 0)[7])
    col.close()
    assert _siblings(path) == []
    # Then an overwrite that succeeds replaces it whole.
    Collection.build(path, encoder, _docs(20, "new"), vectors=_unit(20, 2), overwrite=True).close()
    col = Collection.open(path, encoder)
    assert len(col) == 20 and col.get(["old0"]) == [None] and col.integrity_check() == []
    col.close()
    assert _siblings(path) == []


def test_failed_first_build_leaves_nothing(tmp_path, encoder):
    # Issue 9: a failed build left an empty collection folder; the next build was refused, searches found nothing.
    path = tmp_path / "col"
    with pytest.raises(InputError):
        Collection.build(path, encoder, _docs(5, "a"), vectors=_unit(4, 0))  # 4 vectors for 5 documents
    with pytest.raises(InputError, match="NaN"):
        Collection.build(path, encoder, _docs(3, "a"), vectors=np.full((3, 384), np.nan, np.float32))
    with pytest.raises(InputError, match="impossible|cannot|ivfpq|IVF"):
        Collection.build(path, encoder, _docs(3, "a"), spec=IndexSpec(kind="ivfpq", vectors="int8"))
    with pytest.raises(InputError, match="no documents"):
        Collection.build(path, encoder, [])
    assert not path.exists() and _siblings(path) == []
    Collection.build(path, encoder, _docs(3, "a"), vectors=_unit(3, 0)).close()  # not refused
    assert len(Collection.open(path, encoder)) == 3


def test_without_overwrite_an_existing_collection_is_refused(tmp_path, encoder):
    path = tmp_path / "col"
    Collection.build(path, encoder, _docs(3, "a"), vectors=_unit(3, 0)).close()
    with pytest.raises(InputError, match="collection exists") as err:
        Collection.build(path, encoder, _docs(3, "b"), vectors=_unit(3, 1))
    assert "overwrite" in str(err.value)
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    with pytest.raises(InputError, match="not a collection"):
        Collection.build(tmp_path / "other", encoder, _docs(3, "b"), vectors=_unit(3, 1), overwrite=True)
    assert (tmp_path / "other" / "notes.txt").read_text() == "mine"


def test_an_empty_shell_from_an_older_failed_build_is_replaced(tmp_path, encoder):
    path = tmp_path / "col"
    Collection.create(path, encoder).close()  # what a failed build used to leave: a collection with no documents
    Collection.build(path, encoder, _docs(4, "a"), vectors=_unit(4, 0)).close()
    col = Collection.open(path, encoder)
    assert len(col) == 4
    col.close()


def test_stale_build_folders_of_dead_processes_are_removed(tmp_path, encoder):
    path = tmp_path / "col"
    dead = _dead_pid()
    stale = tmp_path / f".col.building-{dead}-0badf00d"
    (stale / "bm25").mkdir(parents=True)
    (stale / "collection.db").write_bytes(b"half")
    mine = tmp_path / f".col.building-{os.getpid()}-12345678"  # this process's own: maybe a build in a thread
    mine.mkdir()
    Collection.build(path, encoder, _docs(3, "a"), vectors=_unit(3, 0)).close()
    assert not stale.exists() and mine.exists()


def test_a_swap_a_kill_interrupted_is_undone_on_the_next_open(tmp_path, encoder):
    # Where the file system cannot exchange two folders, the old one waits aside during two renames.
    path = tmp_path / "col"
    Collection.build(path, encoder, _docs(3, "a"), vectors=_unit(3, 0)).close()
    aside = tmp_path / f".col.replaced-{_dead_pid()}-00000000"
    os.rename(path, aside)  # a kill fell between the two renames: no collection at the path
    col = Collection.open(path, encoder)
    assert len(col) == 3 and not aside.exists()
    col.close()


def test_a_writer_of_the_replaced_collection_is_refused(tmp_path, encoder):
    path = tmp_path / "col"
    Collection.build(path, encoder, _docs(3, "a"), vectors=_unit(3, 0)).close()
    writer = Collection.open(path, encoder)
    Collection.build(path, encoder, _docs(5, "b"), vectors=_unit(5, 1), overwrite=True).close()
    with pytest.raises(InputError, match="replaced"):
        writer.add(_docs(1, "c"), vectors=_unit(1, 2))
    writer.close()
    col = Collection.open(path, encoder)
    assert len(col) == 5 and col.get(["c0"]) == [None] and col.integrity_check() == []
    col.close()
