"""A real PostgreSQL server for the event-log tests: a throwaway cluster started by the test session."""

from __future__ import annotations

import contextlib
import glob
import itertools
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest


def _pg_bin(name: str) -> str:
    found = shutil.which(name) or next(iter(sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)),
                                       None)
    if not found:
        pytest.fail(f"PostgreSQL's {name} is not installed (apt-get install postgresql); the event log's "
                    "PostgreSQL tests need a real server")
    return found


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _as_postgres_user(cmd: list[str]) -> list[str]:
    # postgres refuses to run as root; run it as `nobody`, which owns the throwaway cluster.
    return ["runuser", "-u", "nobody", "--", *cmd] if os.geteuid() == 0 else cmd


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """Start a PostgreSQL cluster on 127.0.0.1 and a free port; yield its base URL; stop and delete it at the end."""
    initdb, pg_ctl = _pg_bin("initdb"), _pg_bin("pg_ctl")
    # Not under pytest's tmp dir: that is 0700 root, and the server runs as `nobody`.
    root = Path(tempfile.mkdtemp(prefix="embedops-pg-"))
    if os.geteuid() == 0:
        shutil.chown(root, "nobody")
    data, port = root / "data", _free_port()
    run = dict(check=True, capture_output=True, text=True, timeout=120)
    try:
        subprocess.run(_as_postgres_user([initdb, "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8",
                                          "--no-sync"]), **run)
        subprocess.run(_as_postgres_user([pg_ctl, "-D", str(data), "-l", str(root / "server.log"), "-w", "-o",
                                          f"-h 127.0.0.1 -p {port} -k {root} -c fsync=off", "start"]), **run)
    except subprocess.CalledProcessError as exc:
        log = (root / "server.log").read_text() if (root / "server.log").exists() else ""
        shutil.rmtree(root, ignore_errors=True)
        pytest.fail(f"could not start PostgreSQL: {exc.stderr or exc.stdout}\n{log}")
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}"
    finally:
        subprocess.run(_as_postgres_user([pg_ctl, "-D", str(data), "-m", "immediate", "-w", "stop"]),
                       capture_output=True, timeout=60)
        shutil.rmtree(root, ignore_errors=True)


_db_numbers = itertools.count()


@pytest.fixture(params=["sqlite", "postgresql"])
def event_url(request, tmp_path) -> str:
    """A fresh, empty event store: a SQLite file, or a new database on the session's PostgreSQL server."""
    if request.param == "sqlite":
        return str(tmp_path / "events.db")
    import psycopg

    base = request.getfixturevalue("postgres_server")
    name = f"events_{os.getpid()}_{next(_db_numbers)}"
    with contextlib.closing(psycopg.connect(base.replace("postgresql+psycopg", "postgresql") + "/postgres",
                                            autocommit=True)) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    return f"{base}/{name}"


@pytest.fixture
def write_lock():
    """`write_lock(url)`: a context manager holding the store's write lock from another connection."""
    return _hold_write_lock


@contextlib.contextmanager
def _hold_write_lock(url: str) -> Iterator[None]:
    """Hold the event tables' write lock from another connection (another process would do the same)."""
    if "://" not in url:
        import sqlite3

        conn = sqlite3.connect(url, isolation_level=None)
        conn.execute("BEGIN EXCLUSIVE")
        try:
            yield
        finally:
            conn.execute("ROLLBACK")
            conn.close()
        return
    import psycopg

    with contextlib.closing(psycopg.connect(url.replace("postgresql+psycopg", "postgresql"))) as conn:
        conn.execute("LOCK TABLE embedops_requests, embedops_feedback, embedops_alerts IN EXCLUSIVE MODE")
        try:
            yield
        finally:
            conn.rollback()
