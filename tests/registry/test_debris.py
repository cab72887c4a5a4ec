"""Temp files of killed registry writes are removed by the next run, never a live writer's (issue 9); concurrent
writers queue on the registry lock; a version number is never given to other content; a moved folder survives."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from embedops.registry import Registry, integrity

from .tiny_model import make_tiny_model


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    return make_tiny_model(tmp_path_factory.mktemp("tiny") / "tiny")


def _plant_debris(root: Path) -> list[Path]:
    """What kill -9 leaves at each step: a staged version, an aliases temp, a manifest temp, a marker temp."""
    staged = root / "t" / ".v7.k1ll3d.tmp"
    (staged / "1_Pooling").mkdir(parents=True)
    (staged / "model.safetensors").write_bytes(b"half")
    files = [root / ".aliases.json.ab12cd.tmp", root / "t" / "v1" / ".manifest.json.ef34gh.tmp",
             root / ".registry.json.zz99.tmp"]
    for f in files:
        f.write_text("{")
    return [staged, *files]


def test_debris_removed_by_next_write_and_next_read(tmp_path: Path, tiny: Path) -> None:
    root = tmp_path / "reg"
    reg = Registry(root)
    reg.import_model(tiny, "t")
    (root / ".runs" / "abc" / "checkpoints").mkdir(parents=True)  # training's resumable work: not debris
    planted = _plant_debris(root)
    assert sorted(integrity.debris(root)) == sorted(planted)
    assert [v.ref for v in Registry(root).versions()] == ["t@v1"]  # a read: removes them (the lock is free)
    assert integrity.debris(root) == [] and not any(p.exists() for p in planted)
    _plant_debris(root)
    v = reg.import_model(tiny, "t")  # a write: removes them under the lock
    assert v.ref == "t@v2" and integrity.debris(root) == []
    assert (root / ".runs" / "abc" / "checkpoints").is_dir()


HOLDER = """
import fcntl, sys, time
from pathlib import Path
root = Path(sys.argv[1])
fh = open(root / ".lock", "a")
fcntl.flock(fh, fcntl.LOCK_EX)
(root / "t" / ".v9.live.tmp").mkdir()  # staging, as a writer does, under the lock
print("staging", flush=True)
time.sleep(60)
"""


def test_a_live_writers_staging_is_never_removed(tmp_path: Path, tiny: Path) -> None:
    """A reader that finds a temp folder while another process holds the lock leaves it alone (and does not
    wait); once that process is gone, the next operation removes what it left."""
    root = tmp_path / "reg"
    Registry(root).import_model(tiny, "t")
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(root)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "staging"
        t = time.perf_counter()
        assert [v.ref for v in Registry(root).versions()] == ["t@v1"]
        assert time.perf_counter() - t < 5  # never queued behind the writer
        assert (root / "t" / ".v9.live.tmp").is_dir()
    finally:
        proc.kill()
        proc.wait()
    Registry(root).versions()
    assert not (root / "t" / ".v9.live.tmp").exists()


WRITER = """
import sys
from embedops.registry import Registry
for _ in range(3):
    print(Registry(sys.argv[1]).import_model(sys.argv[2], "t", alias="champion").ref, flush=True)
"""


def test_concurrent_writers_queue(tmp_path: Path, tiny: Path) -> None:
    root = tmp_path / "reg"
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, str(root), str(tiny)], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(3)]
    refs = []
    for p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
        refs += out.split()
    reg = Registry(root)
    assert sorted(refs) == sorted(v.ref for v in reg.versions()) == sorted(f"t@v{i}" for i in range(1, 10))
    for v in reg.versions():
        reg.verify(v.ref)
    champion = reg.aliases()["champion"]
    assert champion["version"] in refs and len(champion["log"]) == 9 and integrity.debris(root) == []


def test_version_numbers_never_reused_and_moves_never_lose_the_folder(tmp_path: Path, tiny: Path) -> None:
    root = tmp_path / "reg"
    reg = Registry(root)
    reg.import_model(tiny, "t")
    stray = root / "t" / "v2"  # a version folder without a manifest (not ours): kept, and its number skipped
    stray.mkdir()
    (stray / "notes.txt").write_text("keep me")
    assert reg.import_model(tiny, "t").ref == "t@v3" and (stray / "notes.txt").read_text() == "keep me"
    # --move: the files are linked in, the folder removed only after the commit.
    src = tmp_path / "mine"
    shutil.copytree(tiny, src)
    ino = os.stat(src / "model.safetensors").st_ino
    v = reg.import_model(src, "t", move=True)
    assert v.ref == "t@v4" and not src.exists() and os.stat(v.path / "model.safetensors").st_ino == ino
    assert reg.verify("t@v4").manifest["files"] == json.loads((v.path / "manifest.json").read_text())["files"]
    # A move that fails before the commit (a name the registry refuses) leaves the folder where it was.
    shutil.copytree(tiny, src)
    with pytest.raises(Exception, match="invalid model name"):
        reg.import_model(src, "bad name", move=True)
    assert integrity.pin_files(src) == integrity.pin_files(tiny)
