"""The local Milvus server the tests and benchmarks start: nothing of it outlives the process that started it."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path


def _processes_in(folder: Path) -> list[int]:
    """Processes whose working folder or command line names `folder` (the supervisor and Milvus itself)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cwd = os.readlink(entry / "cwd")
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if cwd == str(folder) or str(folder) in cmdline:
            found.append(int(entry.name))
    return found


def test_a_killed_parent_leaves_no_milvus_behind(tmp_path):
    base = tmp_path / "milvus"
    base.mkdir()
    script = ("import os, sys\nfrom embedops.index.milvus_local import LocalMilvus\n"
              f"server = LocalMilvus({str(base)!r}, grace=2)\nprint(server.start(), flush=True)\n"
              "sys.stdin.readline()\nos.kill(os.getpid(), 9)\n")
    proc = subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    url = proc.stdout.readline().strip()
    assert url.startswith("milvus://127.0.0.1:"), url
    assert len(set(_processes_in(base)) - {proc.pid}) >= 2  # running: unshare/supervisor and Milvus
    proc.stdin.write("\n")
    proc.stdin.flush()
    assert proc.wait(30) == -9
    deadline = time.monotonic() + 15
    while _processes_in(base) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _processes_in(base) == []
