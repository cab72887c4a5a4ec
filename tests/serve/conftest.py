"""A real `embedops serve` process on 127.0.0.1 (one per test session), with a real model, registry and collection."""

from __future__ import annotations

import csv
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

KEYS = ("test-key-alpha", "test-key-beta")


def free_port() -> int:
    """A port nothing listens on (the OS picks it)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """`python -m embedops.cli.main serve ...` as a subprocess; logs go to a file."""

    def __init__(self, args: list[str], tmp: Path, env: dict[str, str] | None = None):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = tmp / f"server-{self.port}.log"
        full_env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", **(env or {})}
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen([sys.executable, "-m", "embedops.cli.main", "serve", "--host", "127.0.0.1",
                                      "--port", str(self.port), *args], cwd=tmp, env=full_env,
                                     stdout=self._log, stderr=subprocess.STDOUT)

    def wait_ready(self, timeout: float = 180.0) -> None:
        """Poll /ready until 200 (fails with the server's log when it exits or times out)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"server exited with {self.proc.returncode}:\n{self.log}")
            try:
                if httpx.get(f"{self.url}/ready", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.25)
        self.stop()
        pytest.fail(f"server not ready after {timeout} s:\n{self.log}")

    @property
    def log(self) -> str:
        """Everything the server wrote so far."""
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def stop(self, timeout: float = 60.0) -> int:
        """SIGTERM, wait, and return the exit code (SIGKILL if it hangs)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        return self.proc.returncode


def wait_for(fn, timeout: float = 20.0):
    """Poll `fn` every 0.2 s until it returns something truthy (or `timeout` passes); its last value."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = fn()
        if value:
            return value
        time.sleep(0.2)
    return fn()


def sts_sentences(shared: Path, n: int) -> list[tuple[str, str]]:
    """(split, sentence) pairs from STS Benchmark (tab-separated, never parsed with quoting)."""
    out: list[tuple[str, str]] = []
    with open(shared / "stsbenchmark" / "stsbenchmark.tsv", encoding="utf-8") as fh:
        for row in csv.reader(fh, delimiter="\t", quoting=csv.QUOTE_NONE):
            if row[0] == "split":
                continue
            out.append((row[0], row[2]))
            if len(out) >= n:
                break
    return out


@pytest.fixture(scope="session")
def sentences(shared_data) -> list[str]:
    """300 short real sentences."""
    return [s for _, s in sts_sentences(shared_data, 300)]


@pytest.fixture(scope="session")
def serve_root(tmp_path_factory, encoder, shared_data) -> Path:
    """A registry whose `champion` is a copy of the bundled model, and a collection `sts` built by the library."""
    from embedops.index import Collection
    from embedops.models import bundled_default_path
    from embedops.registry import Registry

    root = tmp_path_factory.mktemp("serve")
    Registry(root / "registry").import_model(bundled_default_path(), name="minilm", alias="champion")
    docs = [{"id": f"s{i}", "text": text, "metadata": {"split": split, "n": i}}
            for i, (split, text) in enumerate(sts_sentences(shared_data, 120))]
    with Collection.create(root / "collections" / "sts", encoder) as col:
        col.add(docs)
    return root


@pytest.fixture(scope="session")
def server(serve_root) -> Server:
    """The session's server: auth on, models `default` and `champion`, collections under serve_root."""
    srv = Server(["--model", "default", "--model", "champion", "--collections-root", str(serve_root / "collections"),
                  "--max-queue", "256"], serve_root,
                 env={"EMBEDOPS_API_KEYS": ",".join(KEYS), "EMBEDOPS_REGISTRY": str(serve_root / "registry")})
    srv.wait_ready()
    yield srv
    code = srv.stop()
    # uvicorn re-raises SIGTERM after its graceful shutdown, so a clean stop exits by that signal.
    assert code in (0, -signal.SIGTERM), srv.log
    assert '"message": "stopped"' in srv.log


@pytest.fixture()
def client(server) -> httpx.Client:
    """An authenticated HTTP client for the session's server."""
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {KEYS[0]}"}, timeout=120) as c:
        yield c
