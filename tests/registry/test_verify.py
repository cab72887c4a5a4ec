"""Verified artefacts (issue 9): a version whose files changed after registration is refused on load, naming the
file; the check costs a few `stat` calls once the digests are cached, in this process and the next."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from embedops.cli.main import app
from embedops.models import load_encoder, resolve_model
from embedops.registry import Registry, RegistryDamagedError, integrity, registry_resolver

from .tiny_model import make_tiny_model


@pytest.fixture()
def cache(tmp_path: Path, monkeypatch) -> Path:
    """A fresh hash cache for this test."""
    monkeypatch.setenv("EMBEDOPS_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache" / "registry" / "sha256.json"


def _flip_middle_byte(path: Path) -> None:
    """Overwrite one byte in place: same file, same size, other content."""
    with open(path, "r+b") as fh:
        fh.seek(path.stat().st_size // 2)
        byte = fh.read(1)
        fh.seek(-1, os.SEEK_CUR)
        fh.write(bytes([byte[0] ^ 0xFF]))


def test_weights_overwritten_in_place_fail_to_load_naming_the_file(tmp_path: Path, small_model: Path,
                                                                  cache: Path) -> None:
    """The issue's failure: weights overwritten in place loaded silently and returned garbage vectors."""
    root = tmp_path / "reg"
    reg = Registry(root)
    v = reg.import_model(small_model, "m")
    reg.promote(v.ref)
    resolver = registry_resolver(root)
    assert resolve_model("champion", resolver=resolver).path == v.path.resolve()  # loads while intact
    weights = v.path / "model.safetensors"
    stat = weights.stat()
    _flip_middle_byte(weights)
    os.utime(weights, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # even with its old mtime put back
    for spec in ("champion", "m@v1", "m"):
        with pytest.raises(RegistryDamagedError, match=r"file model\.safetensors of m@v1 does not match") as exc:
            load_encoder(spec, resolver=resolver)
        assert exc.value.where == str(weights)
    # Promotion and the CLI refuse it too: one error line naming the file, exit 2.
    res = CliRunner().invoke(app, ["models", "promote", "m@v1", "--alias", "challenger", "--no-gate",
                                   "--registry", str(root)])
    assert res.exit_code == 2 and "model.safetensors" in res.output and "Traceback" not in res.output
    assert "challenger" not in reg.aliases()


def test_truncated_or_missing_files_are_named(tmp_path: Path, cache: Path) -> None:
    root = tmp_path / "reg"
    tiny = make_tiny_model(tmp_path / "tiny")
    reg = Registry(root)
    v1 = reg.import_model(tiny, "t")
    v2 = reg.import_model(tiny, "t")
    with open(v1.path / "model.safetensors", "r+b") as fh:
        fh.truncate(1000)
    with pytest.raises(RegistryDamagedError, match=r"model\.safetensors of t@v1 has 1000 bytes where its manifest"):
        reg.verify("t@v1")
    (v2.path / "tokenizer.json").unlink()  # not a weight file, but it changes the vectors as surely
    with pytest.raises(RegistryDamagedError, match=r"file tokenizer\.json of t@v2 is missing"):
        resolve_model("t@v2", resolver=registry_resolver(root))
    manifest = json.loads((v2.path / "manifest.json").read_text())
    assert set(manifest["files"]) >= {"model.safetensors", "tokenizer.json", "modules.json", "1_Pooling/config.json"}
    assert manifest["weights"] == {"model.safetensors": manifest["files"]["model.safetensors"]["sha256"]}


def _verify_in_new_process(root: Path, spec: str) -> dict:
    code = ("import json, time; from embedops.registry import Registry, integrity\n"
            f"t = time.perf_counter(); Registry({str(root)!r}).verify({spec!r})\n"
            "print(json.dumps({'hashed': integrity.hashed_files, 'seconds': time.perf_counter() - t}))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_second_load_is_fast_hashes_cached_by_identity(tmp_path: Path, small_model: Path, cache: Path) -> None:
    root = tmp_path / "reg"
    reg = Registry(root)
    v = reg.import_model(small_model, "m")
    # Registration primes the cache: even the first load in another process reads no file.
    assert _verify_in_new_process(root, "m@v1")["hashed"] == 0
    cache.unlink()
    before = integrity.hashed_files
    t = time.perf_counter()
    reg.verify("m@v1")
    cold = time.perf_counter() - t
    assert integrity.hashed_files - before == len(v.manifest["files"])  # every pinned file read once
    t = time.perf_counter()
    Registry(root).verify("m@v1")
    warm = time.perf_counter() - t
    assert integrity.hashed_files - before == len(v.manifest["files"])  # and not again
    other = _verify_in_new_process(root, "m@v1")
    assert other["hashed"] == 0  # the cache outlives the process
    print(f"\nverify m@v1 (90 MB): cold {cold * 1000:.1f} ms, warm {warm * 1000:.2f} ms, "
          f"new process warm {other['seconds'] * 1000:.2f} ms")
    assert warm < cold / 5
    # A changed file is read again, whatever the cache holds.
    _flip_middle_byte(v.path / "vocab.txt")
    with pytest.raises(RegistryDamagedError, match=r"vocab\.txt"):
        Registry(root).verify("m@v1")


def test_a_damaged_cache_is_ignored(tmp_path: Path, cache: Path) -> None:
    root = tmp_path / "reg"
    v = Registry(root).import_model(make_tiny_model(tmp_path / "tiny"), "t")
    for junk in (b"{not json", b"\xff\xfe\x00", json.dumps({"format": 1, "entries": [1, 2]}).encode(),
                 json.dumps({"format": 1, "entries": {"x": 5}}).encode()):
        cache.write_bytes(junk)
        before = integrity.hashed_files
        assert Registry(root).verify("t@v1").ref == "t@v1"
        assert integrity.hashed_files - before == len(v.manifest["files"])  # re-hashed, not trusted
        assert json.loads(cache.read_text())["format"] == 1  # and written back whole
    # The temp file of a process killed while writing the cache goes with the next write (pid 2**31-1: no process).
    dead = cache.with_name(f".{cache.name}.{2**31 - 1}.ab12.tmp")
    dead.write_text("{")
    cache.write_bytes(b"junk")
    Registry(root).verify("t@v1")
    assert not dead.exists() and json.loads(cache.read_text())["format"] == 1
