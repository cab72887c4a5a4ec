"""Serving throughput and latency: `embedops serve` vs a naive FastAPI endpoint calling SentenceTransformer.encode.

A bounded closed-loop load generator on 127.0.0.1: at each concurrency level, C clients each send one STS-B test
sentence per request (POST /v1/embeddings, OpenAI shape) back to back for a fixed time; we report inputs/s,
p50/p95/p99 latency and errors. Servers run one at a time as subprocesses on the same machine as the load generator
(the client's CPU use is part of the picture on a 2-core box; it is the same for every server).

    HF_HUB_OFFLINE=1 flock /tmp/embedops-heavy.lock .venv/bin/python benchmarks/serve.py --seconds 10

Infinity is not run here (see PEERS.md for how to install it in its own venv under benchmarks/.scratch).
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
RESULTS = ROOT / "benchmarks" / "results"


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


def sentences(n: int) -> list[str]:
    """STS-B test sentences (tab-separated, no quoting)."""
    out: list[str] = []
    with open(DATA / "stsbenchmark" / "stsbenchmark.tsv", encoding="utf-8") as fh:
        for row in csv.reader(fh, delimiter="\t", quoting=csv.QUOTE_NONE):
            if row[0] == "test":
                out.extend(row[2:4])
    return out[:n]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(kind: str, port: int, backend: str = "torch") -> subprocess.Popen:
    if kind == "naive":
        cmd = [sys.executable, __file__, "--run-naive", str(port)]
    else:
        cmd = [sys.executable, "-m", "embedops.cli.main", "serve", "--no-auth", "--port", str(port),
               "--backend", backend, "--log-level", "warning", "--max-queue", "100000",
               "--collections-root", str(ROOT / "benchmarks" / ".scratch" / "serve-collections")]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/ready", timeout=2).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.3)
        if proc.poll() is not None:
            raise SystemExit(f"{kind} server exited with {proc.returncode}")
    proc.kill()
    raise SystemExit(f"{kind} server not ready")


def stop(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()


async def load(url: str, texts: list[str], concurrency: int, seconds: float, per_request: int) -> dict:
    """C closed-loop clients for `seconds`; latency of every request, errors counted by status."""
    latencies: list[float] = []
    errors: dict[str, int] = {}
    inputs = 0
    stop_at = time.perf_counter() + seconds
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)

    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as client:
        async def one(worker: int) -> None:
            nonlocal inputs
            i = worker
            while time.perf_counter() < stop_at:
                batch = [texts[(i + j) % len(texts)] for j in range(per_request)]
                i += concurrency * per_request
                started = time.perf_counter()
                try:
                    r = await client.post("/v1/embeddings", json={"model": "all-MiniLM-L6-v2", "input": batch,
                                                                  "encoding_format": "float"})
                    ok = r.status_code == 200
                    key = str(r.status_code)
                except httpx.HTTPError as exc:
                    ok, key = False, type(exc).__name__
                if ok:
                    latencies.append(time.perf_counter() - started)
                    inputs += len(batch)
                else:
                    errors[key] = errors.get(key, 0) + 1

        began = time.perf_counter()
        await asyncio.gather(*(one(w) for w in range(concurrency)))
        elapsed = time.perf_counter() - began

    def pct(q: float) -> float | None:
        if not latencies:
            return None
        return round(statistics.quantiles(latencies, n=100, method="inclusive")[q - 1] * 1000, 1)

    return {"concurrency": concurrency, "requests": len(latencies), "inputs_per_s": round(inputs / elapsed, 1),
            "p50_ms": pct(50), "p95_ms": pct(95), "p99_ms": pct(99), "errors": errors}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=10.0, help="Load time per concurrency level.")
    ap.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    ap.add_argument("--per-request", type=int, default=1, help="Sentences per request.")
    ap.add_argument("--servers", nargs="+", default=["embedops-torch", "naive"],
                    help="embedops-torch, embedops-onnx, naive")
    ap.add_argument("--out", type=Path, default=RESULTS / "serve.json")
    ap.add_argument("--run-naive", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.run_naive:
        import uvicorn

        uvicorn.run(naive_app(), host="127.0.0.1", port=args.run_naive, log_level="warning")
        return
    texts = sentences(2000)
    rows = []
    for name in args.servers:
        port = free_port()
        kind, _, backend = name.partition("-")
        proc = start(kind, port, backend or "torch")
        try:
            url = f"http://127.0.0.1:{port}"
            asyncio.run(load(url, texts, 4, 2.0, args.per_request))  # warm-up, not reported
            for c in args.concurrency:
                row = {"server": name, **asyncio.run(load(url, texts, c, args.seconds, args.per_request))}
                rows.append(row)
                print(json.dumps(row), flush=True)
        finally:
            stop(proc)
    base = {r["concurrency"]: r["inputs_per_s"] for r in rows if r["server"] == "naive"}
    print(f"\n{'server':<16}{'conc':>5}{'inputs/s':>10}{'x naive':>9}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}  errors")
    for r in rows:
        ratio = r["inputs_per_s"] / base[r["concurrency"]] if base.get(r["concurrency"]) else float("nan")
        r["x_naive"] = round(ratio, 2)
        print(f"{r['server']:<16}{r['concurrency']:>5}{r['inputs_per_s']:>10}{ratio:>9.2f}{r['p50_ms']:>9}"
              f"{r['p95_ms']:>9}{r['p99_ms']:>9}  {r['errors'] or ''}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({
        "what": "closed-loop load on 127.0.0.1, one STS-B test sentence per request unless per_request says more",
        "command": "benchmarks/serve.py " + " ".join(sys.argv[1:]), "seconds_per_level": args.seconds,
        "per_request": args.per_request, "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                                                     "processor": platform.processor()},
        "infinity": "not run: not installed in this session (PEERS.md: its own venv under benchmarks/.scratch)",
        "rows": rows}, indent=2) + "\n")
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
