"""Batch embedding: the local engine and the Ray engine (Ray Data + encoder actors on the session's local Ray) write
the same shards; a rerun keeps finished shards; a crash leaves whole shards only; bad input and a Ray address that
does not answer are clear errors, exit 2."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time

import numpy as np
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from embedops.cli.main import app
from embedops.errors import InputError
from embedops.scale import read_embeddings, read_manifest


@pytest.fixture(scope="module")
def project():
    from embedops.project import Project

    p = Project()
    yield p
    p.close()


@pytest.fixture(scope="module")
def local_run(project, scifact_sample, tmp_path_factory):
    """The baseline: the sample embedded by the local engine, 8 documents per shard."""
    return project.embed(scifact_sample, tmp_path_factory.mktemp("embed") / "local", shard_rows=8)


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def test_local_engine_writes_parquet_shards_and_a_manifest(local_run, project, scifact_sample):
    out = local_run.output
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == \
        ["manifest.json", "part-00000.parquet", "part-00001.parquet", "part-00002.parquet"]
    table = pq.read_table(out / "part-00001.parquet")
    assert table.column_names == ["id", "vector"] and table.schema.field("vector").type.list_size == 384
    ids, vectors = read_embeddings(out)
    from embedops.data import read_documents

    docs = read_documents(scifact_sample)
    assert ids == [d.id for d in docs] and vectors.shape == (24, 384)
    direct = project.encode([d.full_text for d in docs[:4]], kind="document")
    assert _cosines(vectors[:4], direct).min() >= 0.9999
    manifest = read_manifest(out)
    assert manifest["status"] == "complete" and manifest["documents"] == 24 and manifest["engine"] == "local"
    assert manifest["model"]["fingerprint"] == project.encoder.fingerprint
    assert [s["rows"] for s in manifest["shards"]] == [8, 8, 8] and local_run.embedded_shards == 3


def test_ray_engine_matches_local_records_nodes_and_reruns_nothing(ray_local, project, scifact_sample, local_run,
                                                                   tmp_path):
    out = tmp_path / "ray"
    report = project.embed(scifact_sample, out, engine="ray", shard_rows=8, workers=2)
    ids, vectors = read_embeddings(out)
    local_ids, local_vectors = read_embeddings(local_run.output)
    assert ids == local_ids
    assert _cosines(vectors, local_vectors).min() >= 0.9999
    manifest = read_manifest(out)
    assert manifest["engine"] == "ray" and manifest["cluster"]["actors"] == 2
    live = set(ray_local.nodes())
    # Every shard names the node and actor that embedded it, as the actor read them from its Ray runtime context.
    assert {s["node_id"] for s in manifest["shards"]} <= live and all(s["worker"] for s in manifest["shards"])
    assert sum(report.nodes.values()) == 3 and report.embedded_shards == 3
    mtimes = {p.name: p.stat().st_mtime_ns for p in out.glob("part-*.parquet")}
    again = project.embed(scifact_sample, out, engine="ray", shard_rows=8, workers=2)
    assert (again.embedded_shards, again.resumed_shards) == (0, 3)
    assert {p.name: p.stat().st_mtime_ns for p in out.glob("part-*.parquet")} == mtimes
    assert all(s["resumed"] for s in again.manifest["shards"])


def test_a_crash_keeps_whole_shards_and_the_rerun_embeds_only_the_rest(project, scifact_sample, local_run,
                                                                       tmp_path):
    out = tmp_path / "crash"

    class Crash(Exception):
        pass

    def crash_after_two(result):
        if result.unit.index == 1:
            raise Crash

    with pytest.raises(Crash):
        project.embed(scifact_sample, out, shard_rows=8, on_shard=crash_after_two)
    assert sorted(p.name for p in out.glob("part-*")) == ["part-00000.parquet", "part-00001.parquet"]
    assert read_manifest(out)["status"] == "running"
    with pytest.raises(InputError, match="not complete"):
        read_embeddings(out)
    (out / ".part-00002.parquet.k1ll3d.tmp").write_bytes(b"PAR1 half a shard of a killed writer")
    report = project.embed(scifact_sample, out, shard_rows=8)
    assert (report.resumed_shards, report.embedded_shards) == (2, 1)
    assert [s["resumed"] for s in report.manifest["shards"]] == [True, True, False]
    assert report.manifest["removed_temp_files"] == [".part-00002.parquet.k1ll3d.tmp"]
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]
    ids, vectors = read_embeddings(out)
    local_ids, local_vectors = read_embeddings(local_run.output)
    assert ids == local_ids and np.allclose(vectors, local_vectors, atol=1e-6)
    with pytest.raises(InputError, match="embeddings of another job"):
        project.embed(scifact_sample, out, shard_rows=16)


def test_a_bad_document_on_a_ray_worker_is_raised_with_its_file_and_line(ray_local, project, tmp_path):
    src = tmp_path / "docs.jsonl"
    src.write_text('{"_id": "a", "text": "a fine text"}\n{"_id": "b", "text": "  "}\n{"_id": "c", "text": "x"}\n')
    with pytest.raises(InputError, match="empty or whitespace-only text") as err:
        project.embed(src, tmp_path / "out", engine="ray", workers=1)
    assert err.value.where == f"{src.resolve()}:2"
    assert not list((tmp_path / "out").glob("part-*"))


def test_cli_embeds_and_prints_the_summary(tmp_path, scifact_sample):
    src = tmp_path / "three.jsonl"
    src.write_text("".join(scifact_sample.read_text(encoding="utf-8").splitlines(keepends=True)[:3]))
    res = CliRunner().invoke(app, ["embed", str(src), "-o", str(tmp_path / "out"), "--shard-rows", "2"])
    assert res.exit_code == 0, res.output
    text = " ".join(res.output.split())  # rich wraps at the runner's 80 columns
    assert "3 documents" in text and "2 shards: 2 embedded now, 0 kept from an earlier run" in text
    assert len(read_embeddings(tmp_path / "out")[0]) == 3


def _cli(*args: str, timeout: float = 120) -> tuple[subprocess.CompletedProcess, float]:
    exe = os.path.join(os.path.dirname(sys.executable), "embedops")
    started = time.monotonic()
    res = subprocess.run([exe, "embed", *args], capture_output=True, text=True, timeout=timeout,
                         env={**os.environ, "NO_COLOR": "1"})
    return res, time.monotonic() - started


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_cli_refuses_a_ray_address_that_does_not_answer(tmp_path, scifact_sample):
    out = tmp_path / "out"
    port = _free_port()  # nothing listens there
    res, seconds = _cli(str(scifact_sample), "-o", str(out), "--engine", "ray", "--address", f"127.0.0.1:{port}")
    assert res.returncode == 2 and seconds < 30
    assert f"error: address: no Ray cluster answers at 127.0.0.1:{port}" in res.stderr
    # Something listens but never speaks Ray: refused once the connect timeout is over, not minutes later.
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    accepted: list[socket.socket] = []
    threading.Thread(target=lambda: accepted.append(listener.accept()[0]), daemon=True).start()
    try:
        res, seconds = _cli(str(scifact_sample), "-o", str(out), "--engine", "ray", "--connect-timeout", "2",
                            "--address", f"127.0.0.1:{listener.getsockname()[1]}")
    finally:
        listener.close()
        for conn in accepted:
            conn.close()
    assert res.returncode == 2 and seconds < 30, res.stderr
    assert "did not answer as a Ray cluster within 2 s" in res.stderr
    assert not out.exists()


def test_cli_names_a_missing_dataset_and_a_shard_that_is_not_parquet(tmp_path):
    res, _ = _cli(str(tmp_path / "nowhere"), "-o", str(tmp_path / "out"))
    assert res.returncode == 2 and f"error: {tmp_path / 'nowhere'}: dataset not found" in res.stderr
    shards = tmp_path / "shards"
    shards.mkdir()
    (shards / "part-0.jsonl").write_text('{"_id": "a", "text": "fine"}\n')
    (shards / "part-1.parquet").write_text("not parquet at all")
    res, _ = _cli(str(shards), "-o", str(tmp_path / "out"), "--engine", "ray")
    assert res.returncode == 2
    assert f"{(shards / 'part-1.parquet').resolve()}: not a valid Parquet file" in res.stderr
    assert not (tmp_path / "out").exists()
