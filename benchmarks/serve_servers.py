"""The servers `benchmarks/serve.py` measures, each started as its own process on 127.0.0.1.

- `embedops-torch`, `embedops-onnx-int8`: `embedops serve` (the int8 row through a project file whose `model:` section
  selects backend onnx + quantization int8, as a user would configure it);
- `naive`: FastAPI calling `SentenceTransformer.encode` once per request (defined here, run with `--run-naive`);
- `infinity-torch`: `infinity_emb v2 --engine torch` from its own venv (PEERS.md), serving the same model folder.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
SCRATCH = ROOT / "benchmarks" / ".scratch" / "serve"
MODEL_ID = "all-MiniLM-L6-v2"
KINDS = ("embedops-torch", "embedops-torch-noevents", "embedops-onnx-int8", "naive", "infinity-torch")


def naive_app():
    """The baseline: one SentenceTransformer, `encode` per request in FastAPI's thread pool, no batching."""
    import numpy as np
    from fastapi import FastAPI
    from sentence_transformers import SentenceTransformer

    from embedops.models import bundled_default_path

    model = SentenceTransformer(str(bundled_default_path()), device="cpu")
    app = FastAPI()

    @app.post("/v1/embeddings")
    def embeddings(body: dict) -> dict:
        texts = body["input"] if isinstance(body["input"], list) else [body["input"]]
        vectors = np.asarray(model.encode(texts, normalize_embeddings=True))
        return {"object": "list", "model": body.get("model"),
                "data": [{"object": "embedding", "index": i, "embedding": v.tolist()} for i, v in enumerate(vectors)]}

    @app.get("/ready")
    def ready() -> dict:
        return {"status": "ready"}

    return app


def model_folder() -> Path:
    """The bundled model folder every server loads."""
    from embedops.models import bundled_default_path

    return Path(bundled_default_path())


def free_port() -> int:
    """A port nothing listens on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Running:
    """A started server: its process, base URL, embeddings path and the `model` value it expects."""

    kind: str
    proc: subprocess.Popen
    url: str
    path: str = "/v1/embeddings"
    model: str = MODEL_ID
    info: dict = field(default_factory=dict)

    def rss_mb(self) -> float:
        """Resident memory of the server process (MB), from /proc."""
        with open(f"/proc/{self.proc.pid}/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
        return float("nan")

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after 30 s."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def find_infinity(venv: Path | None) -> Path | None:
    """The `infinity_emb` executable of the given venv (or /work/infinity-venv, ../infinity-venv), if installed."""
    candidates = [venv] if venv else [ROOT.parent / "infinity-venv", SCRATCH / "infinity-venv"]
    for c in candidates:
        exe = c / "bin" / "infinity_emb"
        if exe.is_file():
            return exe
    return None


def embedops_cmd(port: int, kind: str, extra: list[str]) -> list[str]:
    """`embedops serve` for the torch row, or with a project file selecting onnx int8 for the int8 row."""
    cmd = [sys.executable, "-m", "embedops.cli.main", "serve"]
    if kind == "embedops-onnx-int8":
        SCRATCH.mkdir(parents=True, exist_ok=True)
        config = SCRATCH / "int8.yaml"
        config.write_text("model:\n  name: all-MiniLM-L6-v2\n  backend: onnx\n  quantization: int8\n",
                          encoding="utf-8")
        cmd.append(str(config))
    # A fresh, empty collections root per server: nothing a previous run (or the fuzzer) created is opened.
    root = SCRATCH / f"collections-{port}"
    shutil.rmtree(root, ignore_errors=True)
    return [*cmd, "--no-auth", "--port", str(port), "--log-level", "warning", "--collections-root", str(root), *extra]


def start(kind: str, *, infinity: Path | None = None, extra: list[str] | None = None,
          timeout: float = 240.0, env_extra: dict[str, str] | None = None) -> Running:
    """Start one server and wait until it answers an embeddings request (env_extra: e.g. PYTHONPATH of a baseline
    checkout)."""
    port = free_port()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", **(env_extra or {})}
    SCRATCH.mkdir(parents=True, exist_ok=True)
    log = open(SCRATCH / f"{kind}.log", "wb")  # noqa: SIM115 - the child keeps it
    if kind == "naive":
        cmd = [sys.executable, str(ROOT / "benchmarks" / "serve.py"), "--run-naive", str(port)]
        run = Running(kind, None, f"http://127.0.0.1:{port}")  # type: ignore[arg-type]
    elif kind.startswith("embedops"):
        cmd = embedops_cmd(port, kind, extra or [])
        # Every embedops row logs its events (the default) to a scratch database, except the row that measures
        # what logging costs.
        env["EMBEDOPS_EVENTS"] = "off" if kind.endswith("-noevents") else str(SCRATCH / f"events-{port}.db")
        run = Running(kind, None, f"http://127.0.0.1:{port}")  # type: ignore[arg-type]
    elif kind == "infinity-torch":
        if infinity is None:
            raise RuntimeError("infinity_emb not found (install it in its own venv as PEERS.md says)")
        env.update({"INFINITY_ANONYMOUS_USAGE_STATS": "0", "DO_NOT_TRACK": "1"})
        cmd = [str(infinity), "v2", "--model-id", str(model_folder()), "--engine", "torch", "--device", "cpu",
               "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"]
        run = Running(kind, None, f"http://127.0.0.1:{port}", path="/embeddings")  # type: ignore[arg-type]
    else:
        raise ValueError(f"unknown server {kind!r}; one of {', '.join(KINDS)}")
    run.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT, env=env)
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if run.proc.poll() is not None:
            tail = (SCRATCH / f"{kind}.log").read_text(errors="replace")[-2000:]
            raise RuntimeError(f"{kind} exited with {run.proc.returncode}: {tail}")
        try:
            if kind == "infinity-torch":
                r = httpx.get(f"{run.url}/models", timeout=2)
                if r.status_code == 200:
                    run.model = r.json()["data"][0]["id"]
            r = httpx.post(run.url + run.path, json={"model": run.model, "input": ["ready?"]}, timeout=30)
            if r.status_code == 200:
                run.info["startup_s"] = round(time.monotonic() - started, 1)
                return run
        except (httpx.HTTPError, KeyError, IndexError, ValueError):
            pass
        time.sleep(0.5)
    run.stop()
    raise RuntimeError(f"{kind} not ready after {timeout:g} s")


def infinity_version(exe: Path) -> str | None:
    """infinity-emb's installed version, read from its venv."""
    python = exe.parent / "python"
    if not python.exists() or shutil.which(str(python)) is None:
        return None
    out = subprocess.run([str(python), "-c", "import importlib.metadata as m; print(m.version('infinity-emb'), "
                          "m.version('torch'), m.version('sentence-transformers'))"],
                         capture_output=True, text=True, timeout=60)
    return out.stdout.strip() or None
