"""`index search|recommend|info --read-only` work on a collection in a folder nobody may write to, and write nothing.

As root, chmod does not stop writes, so the proof is the folder itself: the same files, bytes and mtimes after."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

from embedops import Project
from embedops.cli.main import app

runner = CliRunner()


def _state(folder: Path) -> dict[str, tuple[str, int, int]]:
    return {str(p.relative_to(folder)): (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns,
                                         stat.S_IMODE(p.stat().st_mode))
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _freeze(paths: list[Path]) -> list[Path]:
    """Take write access away. chmod stops everyone but root; for root, the immutable attribute stops writes too
    (where the filesystem and capabilities allow it). Returns the paths made immutable."""
    for p in paths:
        p.chmod(p.stat().st_mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
    if os.geteuid() != 0 or not shutil.which("chattr"):
        return []
    done = []
    for p in paths:
        if subprocess.run(["chattr", "+i", str(p)], capture_output=True).returncode != 0:
            break
        done.append(p)
    return done


@pytest.fixture
def frozen_collection(tmp_path: Path):
    docs = tmp_path / "docs.jsonl"
    docs.write_text("".join(json.dumps({"_id": f"d{i}", "text": t, "year": 2000 + i}) + "\n" for i, t in enumerate(
        ["T cells recognise antigens", "vitamin D and bone density", "insulin resistance in diabetes",
         "a protein that folds in the cell", "sleep and memory consolidation"])))
    col = tmp_path / "col"
    res = runner.invoke(app, ["index", "build", str(col), "-d", str(docs)])
    assert res.exit_code == 0, res.output
    paths = [col, *col.rglob("*")]
    immutable = _freeze(paths)
    yield col
    for p in reversed(immutable):
        subprocess.run(["chattr", "-i", str(p)], check=True)
    for p in paths:
        if p.exists():
            p.chmod(p.stat().st_mode | stat.S_IWUSR)


def test_search_recommend_and_info_read_only_write_nothing(frozen_collection):
    col = frozen_collection
    before = _state(col)
    names_before = sorted(p.name for p in col.rglob("*"))
    res = runner.invoke(app, ["index", "search", str(col), "insulin and diabetes", "-k", "2", "--read-only", "--json"])
    assert res.exit_code == 0, res.output
    hits = json.loads(res.stdout)
    assert [h["id"] for h in hits][0] == "d2" and len(hits) == 2
    res = runner.invoke(app, ["index", "search", str(col), "vitamin", "--mode", "keyword", "--read-only", "--json",
                              "--filter", '{"year": {"gte": 2001}}'])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)[0]["id"] == "d1"
    res = runner.invoke(app, ["index", "recommend", str(col), "-p", "d2", "-k", "2", "--read-only", "--json"])
    assert res.exit_code == 0, res.output
    assert "d2" not in [h["id"] for h in json.loads(res.stdout)]
    res = runner.invoke(app, ["index", "info", str(col), "--read-only", "--json"])
    assert res.exit_code == 0 and json.loads(res.stdout)["documents"] == 5, res.output
    assert _state(col) == before, "a read-only search changed the collection"
    assert sorted(p.name for p in col.rglob("*")) == names_before  # no lock, journal or WAL file appeared
    if not os.access(col, os.W_OK):  # truly unwritable here: a writer's open is refused, naming the way out
        res = runner.invoke(app, ["index", "search", str(col), "insulin"])
        assert res.exit_code == 2 and "--read-only" in res.stderr and "Traceback" not in res.output, res.output
        assert _state(col) == before


def test_project_opens_read_only_and_refuses_writes(frozen_collection):
    from embedops.errors import EmbedopsError

    before = _state(frozen_collection)
    col = Project().open_collection(frozen_collection, read_only=True)
    try:
        assert col.read_only and col.search("sleep", k=1)[0].id == "d4"
        with pytest.raises(EmbedopsError, match="read-only"):
            col.add(["a new document"])
    finally:
        col.close()
    assert _state(frozen_collection) == before
