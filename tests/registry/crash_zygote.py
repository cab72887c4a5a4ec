"""A helper process for the registry crash tests: imports the CLI, torch and the trainer once, then forks one child
per job (so a round costs a fork, not an interpreter start), reports the children's pids, and reaps them.

Protocol (one JSON object per line): the test writes {"job": ..., "args": {...}}; the zygote answers
{"pids": [...]} once the children run and {"status": [...]} (exit codes, -signal) when they are gone. Children write
their output and a final "done" to their own log file, never to the zygote's stdout; they always end with os._exit.
"""

from __future__ import annotations

import json
import os
import sys
import traceback
from pathlib import Path


def _log(path: str, line: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (line + "\n").encode())
    finally:
        os.close(fd)


def cli(args: dict) -> int:
    """`embedops <argv>` in this process: its exit code (0, 2 for a refused input, 130 when interrupted)."""
    from embedops.cli.main import app

    try:
        app(args=args["argv"])
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    else:
        code = 0
    if code == 0:
        _log(args["log"], "done")
    return code


def register(args: dict) -> int:
    """The end of a training run on a freshly trained model folder: `register_trained` (move into the registry,
    remove the work folder), then `Project.gate_and_promote` (record the gate, move champion) - what `train` runs."""
    from embedops.project import Project
    from embedops.train.run import register_trained

    project = Project.from_options(registry=args["registry"])
    manifest = {"kind": "trained", "round": args["round"]}
    version = register_trained(project.registry, Path(args["model_dir"]), Path(args["work"]), args["name"],
                               manifest)
    _log(args["log"], f"registered {version.ref}")
    project.gate_and_promote(version, "champion", echo=lambda *a: None)
    _log(args["log"], "done")
    return 0


JOBS = {"cli": cli, "register": register}


def _child(job: str, args: dict) -> None:
    code = 0
    out = os.open(args["log"] + ".out", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(out, 1)
    os.dup2(out, 2)
    try:
        code = JOBS[job](args)
    except KeyboardInterrupt:
        code = 130
    except BaseException:  # noqa: BLE001 - reported to the test through the log file
        _log(args["log"], "ERROR " + traceback.format_exc().replace("\n", " | "))
        code = 1
    os._exit(code)


def main() -> None:
    from embedops._console import quiet_libraries

    quiet_libraries()
    import sentence_transformers  # noqa: F401 - imported once, before forking
    import transformers  # noqa: F401

    import embedops.cli.main  # noqa: F401
    import embedops.project  # noqa: F401
    import embedops.train.run  # noqa: F401
    import embedops.train.trainer  # noqa: F401

    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        request = json.loads(line)
        if request["job"] == "quit":
            break
        pids = []
        for args in request["args"]:
            sys.stdout.flush()
            pid = os.fork()
            if pid == 0:
                _child(request["job"], args)
            pids.append(pid)
        print(json.dumps({"pids": pids}), flush=True)
        status = []
        for pid in pids:
            _, st = os.waitpid(pid, 0)
            status.append(-os.WTERMSIG(st) if os.WIFSIGNALED(st) else os.WEXITSTATUS(st))
        print(json.dumps({"status": status}), flush=True)


if __name__ == "__main__":
    main()
