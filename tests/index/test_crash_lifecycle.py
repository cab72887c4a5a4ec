"""Crash tests (issue 9): kill -9 and SIGINT at random points of concurrent writer processes, of builds with and
without overwrite, and of `prepare`; after every round the collection opens, passes `integrity_check()` and holds
exactly a committed state (every write a child reported done is there with its vector; nothing half-written).

Children are forked by one helper process that loaded the model once (crash_zygote.py), so a round costs a fork.
Rounds per scenario and signal: EMBEDOPS_CRASH_ROUNDS (default 20: 20 kill -9 and 20 SIGINT rounds per scenario).
"""

from __future__ import annotations

import importlib.util
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from embedops.index import Collection

HELPER = Path(__file__).with_name("crash_zygote.py")
_spec = importlib.util.spec_from_file_location("crash_zygote", HELPER)
z = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(z)

ROUNDS = int(os.environ.get("EMBEDOPS_CRASH_ROUNDS", "20"))
SIGNALS = [signal.SIGKILL, signal.SIGINT]
BUILD_N = 700  # two upsert transactions of 512 + 188 documents


class Zygote:
    """The helper process: start jobs, kill them, collect their exit codes."""

    def __init__(self, workdir: Path):
        env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
        self.err = open(workdir / "zygote.err", "w")  # noqa: SIM115 - closed in close()
        self.proc = subprocess.Popen([sys.executable, str(HELPER)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self.err, text=True, env=env)
        assert json.loads(self._line()) == {"ready": True}

    def _line(self) -> str:
        line = self.proc.stdout.readline()
        assert line, f"helper died: {Path(self.err.name).read_text()[-3000:]}"
        return line

    def run(self, job: str, args: list[dict], delay: float, sig: int,
            after: Callable[[], bool] | None = None) -> list[int]:
        """Start one child per args, send `sig` to each `delay` seconds after the start (or after `after()` first
        holds, when given); their exit codes."""
        self.proc.stdin.write(json.dumps({"job": job, "args": args}) + "\n")
        self.proc.stdin.flush()
        pids = json.loads(self._line())["pids"]
        if after is not None:
            deadline = time.monotonic() + 30
            while not after() and time.monotonic() < deadline:
                time.sleep(0.0005)
        time.sleep(delay)
        for pid in pids:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass  # already reaped: it finished before the signal
        status = json.loads(self._line())["status"]
        for a, code in zip(args, status, strict=True):
            log = Path(a["log"]).read_text() if Path(a["log"]).exists() else ""
            # finished (0), interrupted inside the job (130) or killed (-9); anything else is a harness or job failure
            if code not in (0, 130, -signal.SIGKILL) or "ERROR" in log:
                # pytest.fail, not assert: the child's whole traceback is shown (an assert message is cut short)
                pytest.fail(f"{job} child exited {code} after signal {sig!r} at {delay:.3f} s; its log:\n"
                            + log.replace(" | ", "\n"), pytrace=False)
        return status

    def close(self) -> None:
        self.proc.stdin.write(json.dumps({"job": "quit"}) + "\n")
        self.proc.stdin.close()
        self.proc.wait(timeout=60)
        self.err.close()


@pytest.fixture(scope="module")
def zygote(tmp_path_factory):
    helper = Zygote(tmp_path_factory.mktemp("zygote"))
    yield helper
    helper.close()


def _logged(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def _writer_state(w: int, r: int, count: int) -> tuple[set[str], set[str]]:
    """(ids present, versions of the hot documents those adds wrote) after a writer's first `count` operations."""
    present: set[str] = set()
    versions: set[str] = set()
    for op, b in z.writer_ops(count):
        if op == "add":
            present |= set(z.batch_ids(w, r, b))
            versions.add(f"w{w}r{r}b{b}")
        else:
            present.discard(z.batch_ids(w, r, b)[0])
    return present, versions


def test_concurrent_writer_processes_killed(zygote, tmp_path, encoder):
    path = tmp_path / "col"
    Collection.create(path, encoder).close()
    rng = random.Random(9)
    committed: set[str] = set()  # ids of earlier rounds, which no later round touches
    versions: set[str] = set()
    for r in range(2 * ROUNDS):
        sig = SIGNALS[r % 2]
        logs = [tmp_path / f"r{r}w{w}.log" for w in range(2)]
        args = [{"path": str(path), "writer": w, "round": r, "log": str(logs[w])} for w in range(2)]
        zygote.run("writer", args, rng.uniform(0.05, 0.5), sig)
        col = Collection.open(path)
        try:
            assert col.integrity_check() == [], f"round {r}"
            live = set(col.store.ids())
            hot = {f"hot{h}" for h in range(z.HOT)}
            mine = live - committed - hot
            for w in range(2):
                done = _logged(logs[w])
                assert done == [f"{op} {b}" for op, b in z.writer_ops(len(done))], done
                ids = {i for i in mine if i.startswith(f"w{w}r{r}b")}
                # Exactly the reported operations, plus at most the one in flight, which is all or nothing.
                states = [_writer_state(w, r, len(done) + extra) for extra in (0, 1)]
                assert ids in (states[0][0], states[1][0]), f"round {r} writer {w}: half-written state"
                versions |= states[1][1]
            assert committed <= live, f"round {r}: documents of earlier rounds are gone"
            check_records(col, sorted(mine))
            if live & hot:
                recs = col.get(sorted(hot), with_vectors=True)
                assert len({rec.metadata["version"] for rec in recs}) == 1, "hot documents of two transactions"
                version = recs[0].metadata["version"]
                assert version in versions
                for rec in recs:
                    np.testing.assert_array_equal(rec.vector, z.unit(f"{rec.id}:{version}"))
            committed |= mine
        finally:
            col.close()
    assert len(committed) > 20 * ROUNDS  # the writers got work done between the kills
    col = Collection.open(path)
    check_records(col, sorted(committed))  # earlier rounds' documents are still exactly as written
    col.close()


def check_records(col: Collection, ids: list[str]) -> None:
    """Every record has its own vector and metadata: nothing half-written."""
    for rec in col.get(ids, with_vectors=True):
        np.testing.assert_array_equal(rec.vector, z.unit(rec.id))
        w, rest = rec.id[1:].split("r", 1)
        r, rest = rest.split("b", 1)
        assert rec.metadata == {"w": int(w), "r": int(r), "b": int(rest.split("i")[0])}


def _build_state(path: Path, tags: set[str]) -> str | None:
    """The tag of the one complete build at `path` (None when there is no collection)."""
    if not path.exists():
        return None
    col = Collection.open(path)
    try:
        assert col.integrity_check() == []
        ids = col.store.ids()
        tag = ids[0].split("-")[0]
        assert tag in tags and set(ids) == {f"{tag}-{i}" for i in range(BUILD_N)}, "not one complete build"
        stored = col.store.vectors([f"{tag}-{i}" for i in range(BUILD_N)])
        np.testing.assert_array_equal(stored, np.stack([z.unit(f"{tag}-{i}") for i in range(BUILD_N)]))
        assert col.get([f"{tag}-5"])[0].metadata == {"tag": tag}
        assert col.search("topic", k=3, mode="keyword")  # the keyword index came with it
        return tag
    finally:
        col.close()


@pytest.mark.parametrize("overwrite", [True, False])
def test_builds_killed(zygote, tmp_path, overwrite):
    path = tmp_path / "col"
    rng = random.Random(3 + overwrite)
    started = time.perf_counter()
    log = tmp_path / "calibrate.log"
    zygote.run("build", [{"path": str(path), "n": BUILD_N, "tag": "t0", "overwrite": False, "log": str(log)}],
               0.0, 0)
    duration = time.perf_counter() - started
    previous = _build_state(path, {"t0"})
    assert previous == "t0"
    for r in range(1, 2 * ROUNDS + 1):
        if not overwrite:
            shutil.rmtree(path, ignore_errors=True)
            previous = None
        tag, log = f"t{r}", tmp_path / f"r{r}.log"
        args = [{"path": str(path), "n": BUILD_N, "tag": tag, "overwrite": overwrite, "log": str(log)}]
        zygote.run("build", args, rng.uniform(0.0, 1.2 * duration), SIGNALS[r % 2])
        state = _build_state(path, {tag} | ({previous} if previous else set()))
        if _logged(log) == ["done"]:
            assert state == tag, f"round {r}: the build reported done but is not in place"
        assert state in (previous, tag), f"round {r}: {state}"  # the old one intact, or nothing, or the new one
        previous = state
    # The next build removes what killed builds left beside the target.
    zygote.run("build", [{"path": str(path), "n": BUILD_N, "tag": "last", "overwrite": True,
                          "log": str(tmp_path / "last.log")}], 0.0, 0)
    assert _build_state(path, {"last"}) == "last"
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".col")) == []


def test_prepare_killed(zygote, tmp_path):
    src, out = tmp_path / "raw.jsonl", tmp_path / "clean.jsonl"
    rows = [{"id": f"d{i}", "text": f"<p>Document {i} about <b>topic {i % 50}</b>\x00with a NUL</p>" * 3,
             "group": i % 4} for i in range(4000)]
    src.write_text("".join(json.dumps(row) + "\n" for row in rows))
    rng = random.Random(5)
    started = time.perf_counter()
    zygote.run("prepare", [{"src": str(src), "out": str(out), "log": str(tmp_path / "first.log")}], 0.0, 0)
    duration = time.perf_counter() - started
    expected = out.read_bytes()
    assert expected.count(b"\n") == 4000
    out.unlink()
    seen_temp = 0
    for r in range(2 * ROUNDS):
        log = tmp_path / f"r{r}.log"
        job = [{"src": str(src), "out": str(out), "log": str(log)}]
        if r % 4 < 2:  # anywhere in the run
            zygote.run("prepare", job, rng.uniform(0.0, 1.2 * duration), SIGNALS[r % 2])
        else:  # while the output is being written: from the moment its temp file appears
            before = set(tmp_path.glob(".clean.jsonl.*.tmp"))
            zygote.run("prepare", job, rng.uniform(0.0, 0.01), SIGNALS[r % 2],
                       after=lambda before=before: bool(set(tmp_path.glob(".clean.jsonl.*.tmp")) - before))
        if _logged(log) == ["done"]:
            assert out.exists()
        if out.exists():  # written whole or not at all
            assert out.read_bytes() == expected, f"round {r}"
        temps = list(tmp_path.glob(".clean.jsonl*.tmp"))
        seen_temp += bool(temps)
        # A temp file outlives only the run that was killed writing it: the next run starts by removing it.
        assert len(temps) <= 2, temps
    zygote.run("prepare", [{"src": str(src), "out": str(out), "log": str(tmp_path / "last.log")}], 0.0, 0)
    assert out.read_bytes() == expected and list(tmp_path.glob(".clean.jsonl*.tmp")) == []
    assert seen_temp  # some kills did leave a temp file behind (and the runs after them removed it)
    assert json.loads((tmp_path / "clean.jsonl.report.json").read_text())["written"] == 4000
