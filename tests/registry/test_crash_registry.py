"""Crash tests (issue 9): kill -9 and SIGINT at random points of `embedops models import` (copy and --move) and of
training registration. After every round: the registry opens, every version passes `verify`, aliases.json is valid
and every alias names an existing version, the next registry operation leaves no temp file or folder, and the
registry holds exactly a committed state (a version whole with its manifest or absent, no number reused for other
content, champion the old or the new version, a moved model folder never lost).

Training registration: one real `embedops train` of a tiny model costs ~4 s on this machine, too slow for 40 rounds.
So TRAIN_E2E rounds (default 4, kill -9 and SIGINT alternating) kill the whole command at a random point, and the
2 x ROUNDS others kill the end of a training run on a freshly trained model folder (trained once by a complete
`embedops train` first): `register_trained` then `Project.gate_and_promote`, the very code `Project.train` runs
after training. Children are forked by one helper process that imported everything once (crash_zygote.py).
Rounds per signal: EMBEDOPS_CRASH_ROUNDS (default 20).
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from embedops.registry import Registry, integrity

from .tiny_model import make_tiny_model

HELPER = Path(__file__).with_name("crash_zygote.py")
ROUNDS = int(os.environ.get("EMBEDOPS_CRASH_ROUNDS", "20"))
TRAIN_E2E = int(os.environ.get("EMBEDOPS_CRASH_TRAIN_E2E", "4"))
SIGNALS = [signal.SIGKILL, signal.SIGINT]
PAIRS = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "stsbenchmark"


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

    def run(self, job: str, args: dict, delay: float, sig: int, after: Callable[[], bool] | None = None) -> int:
        """Start the job, send `sig` `delay` seconds after the start (or after `after()` first holds); exit code."""
        self.proc.stdin.write(json.dumps({"job": job, "args": [args]}) + "\n")
        self.proc.stdin.flush()
        (pid,) = json.loads(self._line())["pids"]
        if after is not None:
            deadline = time.monotonic() + 30
            while not after() and time.monotonic() < deadline:
                time.sleep(0.0005)
        time.sleep(delay)
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass  # already reaped: it finished before the signal
        (code,) = json.loads(self._line())["status"]
        log = Path(args["log"]).read_text() if Path(args["log"]).exists() else ""
        out = Path(args["log"] + ".out").read_text() if Path(args["log"] + ".out").exists() else ""
        assert code in (0, 130, -signal.SIGKILL) and "ERROR" not in log, f"exit {code}: {log}\n{out[-3000:]}"
        return code

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


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    return make_tiny_model(tmp_path_factory.mktemp("tiny") / "tiny")


def _done(log: Path) -> bool:
    return log.exists() and "done" in log.read_text().splitlines()


class Ledger:
    """What the registry has committed so far, checked against the disk after each round."""

    def __init__(self, root: Path, name: str):
        self.root, self.name = root, name
        self.files: dict[str, dict] = {}  # ref -> the file pins of its manifest, never to change
        self.champion: str | None = None
        self.points: Counter[str] = Counter()

    def check(self, r: int, *, done: bool, content: dict | None, source: Path | None = None) -> str:
        """Check the registry after round `r`; the kill point it reveals. `content`: the pins a new version must
        carry (None: any, as long as they verify); `source`: a folder that must survive unless it was registered."""
        debris = [(p.name, p.is_dir()) for p in integrity.debris(self.root)]
        reg = Registry(self.root)
        versions = reg.versions()  # the next registry operation: removes the debris of the killed one
        assert integrity.debris(self.root) == [], f"round {r}: temp files left after the next operation"
        refs = [v.ref for v in versions]
        assert set(self.files) <= set(refs), f"round {r}: a committed version is gone"
        new = [v for v in versions if v.ref not in self.files]
        assert len(new) <= 1 and all(v.ref == f"{self.name}@v{len(self.files) + 1}" for v in new), refs
        for v in versions:
            reg.verify(v.ref)  # every file as its manifest pins it
            if v.ref in self.files:
                assert v.manifest["files"] == self.files[v.ref], f"round {r}: {v.ref} changed"
        if new and content is not None:
            assert new[0].manifest["files"] == content, f"round {r}: {new[0].ref} holds other content"
        aliases = reg.aliases()
        assert all(info["version"] in refs for info in aliases.values()), aliases
        champion = aliases.get("champion", {}).get("version")
        assert champion in ({self.champion} | {v.ref for v in new}), f"round {r}: champion {champion}"
        if done:
            assert new and champion == new[0].ref, f"round {r}: reported done but not registered and promoted"
        if source is not None and not new:  # not registered: the folder must be there, whole
            assert source.is_dir() and integrity.pin_files(source) == content, f"round {r}: model folder lost"
        if done:
            point = "finished before the signal"
        elif any(is_dir for _name, is_dir in debris):
            point = "staging the version folder"
        elif debris:
            point = "writing a json file (temp left)"
        elif not new:
            point = "before staging"
        elif source is not None and source.exists():
            point = "committed, source folder not yet removed"
        elif champion != new[0].ref:
            point = "committed, champion not yet moved"
        else:
            point = "committed and promoted, exit pending"
        self.points[point] += 1
        for v in new:
            self.files[v.ref] = v.manifest["files"]
        self.champion = champion
        return point


def _report(title: str, ledger: Ledger, rounds: int, seconds: float) -> None:
    print(f"\n{title}: {rounds} rounds in {seconds:.1f} s, {len(ledger.files)} versions committed")
    for point, n in sorted(ledger.points.items(), key=lambda kv: -kv[1]):
        print(f"  {n:3d}  {point}")


def test_models_import_killed(zygote, tmp_path, tiny):
    """`embedops models import <folder> --name x --alias champion [--move]`, killed anywhere."""
    started = time.perf_counter()
    root = tmp_path / "reg"
    content = integrity.pin_files(tiny)
    ledger = Ledger(root, "x")
    argv = ["models", "import", "--name", "x", "--alias", "champion", "--registry", str(root)]
    t = time.perf_counter()
    zygote.run("cli", {"argv": [*argv, str(tiny)], "log": str(tmp_path / "first.log")}, 0.0, 0)
    duration = time.perf_counter() - t
    ledger.check(0, done=True, content=content)
    rng = random.Random(9)
    for r in range(1, 2 * ROUNDS + 1):
        sig, move, triggered = SIGNALS[r % 2], (r // 2) % 2 == 1, (r // 4) % 2 == 1
        src = tiny
        if move:  # a folder of the user's, taken over: it must survive every kill unless it was registered
            src = tmp_path / f"src{r}"
            shutil.copytree(tiny, src)
        log = tmp_path / f"r{r}.log"
        job = {"argv": [*argv, str(src)] + (["--move"] if move else []), "log": str(log)}
        nxt = root / "x" / f"v{len(ledger.files) + 1}"
        if triggered:  # while the version is being staged: from the moment its temp folder appears
            zygote.run("cli", job, rng.uniform(0.0, 0.01), sig,
                       after=lambda nxt=nxt: bool(list(nxt.parent.glob(".v*.tmp"))) or nxt.exists())
        else:
            zygote.run("cli", job, rng.uniform(0.0, 1.2 * duration), sig)
        ledger.check(r, done=_done(log), content=content, source=src if move else None)
        assert tiny.is_dir() and integrity.pin_files(tiny) == content  # a copy never touches its source
    _report("models import", ledger, 2 * ROUNDS, time.perf_counter() - started)
    assert ledger.points["staging the version folder"] >= 1  # the kills did land inside registrations
    assert len(ledger.points) >= 3  # before, inside and after the staging


def _write_pairs(path: Path, n: int) -> None:
    from embedops.data import load_sts

    sts = load_sts(PAIRS, "train")
    rows, seen = [], set()
    for a, b, s in zip(sts.sentences1, sts.sentences2, sts.scores, strict=True):
        if s >= 4.0 and a not in seen and b not in seen:
            seen.update((a, b))
            rows.append({"anchor": a, "positive": b})
        if len(rows) == n:
            break
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))


def test_training_registration_killed(zygote, tmp_path, tiny):
    """`embedops train` killed anywhere, then the registration that ends a training run killed anywhere."""
    started = time.perf_counter()
    root = tmp_path / "reg"
    pairs = tmp_path / "pairs.jsonl"
    _write_pairs(pairs, 12)
    ledger = Ledger(root, "t")
    argv = ["--quiet", "train", str(pairs), "--base", str(tiny), "--registry", str(root), "--name", "t",
            "--alias", "champion", "--batch-size", "4", "--epochs", "1", "--max-tokens", "16",
            "--hard-negatives", "0", "--eval-fraction", "0.25"]
    t = time.perf_counter()
    zygote.run("cli", {"argv": argv, "log": str(tmp_path / "first.log")}, 0.0, 0)
    train_seconds = time.perf_counter() - t
    ledger.check(0, done=True, content=None)
    assert not any((root / ".runs").iterdir())  # a registered run's work folder is gone
    trained = tmp_path / "trained"  # the freshly trained model, as training leaves it before registration
    shutil.copytree(root / "t" / "v1", trained, ignore=shutil.ignore_patterns("manifest.json"))
    content = integrity.pin_files(trained)
    assert Registry(root).get("t@v1").manifest["files"] == content
    rng = random.Random(11)
    for r in range(1, TRAIN_E2E + 1):  # the whole command: reading, training, evaluation, registration
        log = tmp_path / f"e2e{r}.log"
        zygote.run("cli", {"argv": argv, "log": str(log)}, rng.uniform(0.0, 1.2 * train_seconds), SIGNALS[r % 2])
        ledger.check(r, done=_done(log), content=None)
    duration = None
    for r in range(TRAIN_E2E + 1, TRAIN_E2E + 2 * ROUNDS + 2):
        work = root / ".runs" / f"crash{r}"
        shutil.copytree(trained, work / "model")
        log = tmp_path / f"r{r}.log"
        job = {"registry": str(root), "model_dir": str(work / "model"), "work": str(work), "name": "t",
               "round": r, "log": str(log)}
        nxt = root / "t" / f"v{len(ledger.files) + 1}"
        if duration is None:  # the first round runs to the end: how long a registration takes
            t = time.perf_counter()
            zygote.run("register", job, 0.0, 0)
            duration = time.perf_counter() - t
        elif r % 4 < 2:
            zygote.run("register", job, rng.uniform(0.0, 1.2 * duration), SIGNALS[r % 2])
        else:
            zygote.run("register", job, rng.uniform(0.0, 0.01), SIGNALS[r % 2],
                       after=lambda nxt=nxt: bool(list(nxt.parent.glob(".v*.tmp"))) or nxt.exists())
        ledger.check(r, done=_done(log), content=content, source=work / "model")
        if _done(log):
            assert not work.exists()  # the run's work folder goes once its model is registered
    _report("training registration", ledger, TRAIN_E2E + 2 * ROUNDS, time.perf_counter() - started)
    assert ledger.points["staging the version folder"] >= 1
