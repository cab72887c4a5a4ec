"""A helper process for the crash tests: loads the model once, then forks one child per job (so a round costs a
fork, not an interpreter and a model load), reports the children's pids, and reaps them.

Protocol (one JSON object per line): the test writes {"job": ..., "args": {...}}; the zygote answers
{"pids": [...]} once the children run and {"status": [...]} (exit codes, -signal) when they are gone. Children log
each completed operation to their own file and leave the zygote's stdout alone; they always end with os._exit.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import traceback
import zlib

import numpy as np

DIM = 384
BATCH, HOT = 20, 5


def unit(key: str) -> np.ndarray:
    """The vector of a document key (deterministic: the test recomputes it to check what was stored)."""
    v = np.random.default_rng(zlib.crc32(key.encode())).standard_normal(DIM).astype(np.float32)
    return v / np.linalg.norm(v)


def writer_ops(count: int) -> list[tuple[str, int]]:
    """The first `count` operations of a writer: add batches 0, 1, 2, ..., and after every third add delete the
    first document of the batch before."""
    ops: list[tuple[str, int]] = []
    b = 0
    while len(ops) < count:
        ops.append(("add", b))
        if b % 3 == 2:
            ops.append(("del", b - 1))
        b += 1
    return ops[:count]


def batch_ids(w: int, r: int, b: int) -> list[str]:
    return [f"w{w}r{r}b{b}i{i}" for i in range(BATCH)]


def _log(path: str, line: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (line + "\n").encode())
    finally:
        os.close(fd)


def writer(args: dict, encoder) -> None:
    from embedops.index import Collection

    w, r, log = args["writer"], args["round"], args["log"]
    col = Collection.open(args["path"])
    for op, b in writer_ops(10_000):
        if op == "add":
            ids = batch_ids(w, r, b)
            version = f"w{w}r{r}b{b}"
            docs = [{"id": i, "text": f"writer {w} batch {b}", "w": w, "r": r, "b": b} for i in ids]
            docs += [{"id": f"hot{h}", "text": "hot document", "version": version} for h in range(HOT)]
            vecs = np.stack([unit(i) for i in ids] + [unit(f"hot{h}:{version}") for h in range(HOT)])
            col.add(docs, vectors=vecs, refresh=False)
        else:
            col.delete([batch_ids(w, r, b)[0]])
        _log(log, f"{op} {b}")


def build(args: dict, encoder) -> None:
    from embedops.index import Collection

    n, tag = args["n"], args["tag"]
    docs = [{"id": f"{tag}-{i}", "text": f"build {tag} document {i} about topic {i % 7}", "tag": tag}
            for i in range(n)]
    vecs = np.stack([unit(f"{tag}-{i}") for i in range(n)])
    Collection.build(args["path"], encoder, docs, vectors=vecs, overwrite=args["overwrite"]).close()
    _log(args["log"], "done")


def prepare(args: dict, encoder) -> None:
    from embedops.data.prepare import PrepareOptions
    from embedops.data.prepare import prepare as run

    run(args["src"], args["out"], PrepareOptions(dedupe="exact"))
    _log(args["log"], "done")


JOBS = {"writer": writer, "build": build, "prepare": prepare}


def _child(job: str, args: dict, encoder) -> None:
    # SIGINT is blocked from before the fork until here, so a signal sent right after the fork is delivered inside
    # this try (as KeyboardInterrupt) instead of escaping into the zygote's own loop in the child.
    code = 1
    try:
        try:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
            JOBS[job](args, encoder)
            code = 0
        finally:
            signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    except KeyboardInterrupt:
        code = 130
    except BaseException:  # noqa: BLE001 - reported to the test through the log file
        _log(args["log"], "ERROR " + traceback.format_exc().replace("\n", " | "))
        code = 1
    os._exit(code)


def main() -> None:
    from embedops._console import quiet_libraries
    from embedops.models import load_encoder

    quiet_libraries()
    encoder = load_encoder()
    encoder.spec(), encoder.fingerprint  # noqa: B018 - computed once, before forking
    import embedops.data.prepare  # noqa: F401 - imported once, before forking
    import embedops.index.ann

    embedops.index.ann.faiss_module()
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        request = json.loads(line)
        if request["job"] == "quit":
            break
        pids = []
        for args in request["args"]:
            sys.stdout.flush()
            blocked = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
            pid = os.fork()
            if pid == 0:
                try:
                    _child(request["job"], args, encoder)
                finally:
                    os._exit(70)  # never run the zygote's loop in a child
            signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
            pids.append(pid)
        print(json.dumps({"pids": pids}), flush=True)
        status = []
        for pid in pids:
            _, st = os.waitpid(pid, 0)
            status.append(-os.WTERMSIG(st) if os.WIFSIGNALED(st) else os.WEXITSTATUS(st))
        print(json.dumps({"status": status}), flush=True)


if __name__ == "__main__":
    main()
