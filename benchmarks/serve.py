"""Serving throughput and latency: `embedops serve` (torch fp32, ONNX int8) vs a naive FastAPI endpoint and Infinity.

A bounded closed-loop load generator on 127.0.0.1 (asyncio + aiohttp in one process, `serve_load.py`): at each
concurrency level (1, 8, 32, 128) C clients each send one input per request (POST embeddings, OpenAI shape) back to
back for `--seconds`; two input sets: short STS-B test sentences and SciFact abstracts of at least 256 tokens (every
server truncates them at the model's 256). Servers run one at a time as subprocesses (`serve_servers.py`) on the same
machine as the load generator, with the same inputs; we report inputs/s, p50/p95/p99 latency and errors per cell.

    HF_HUB_OFFLINE=1 flock /tmp/embedops-heavy.lock .venv/bin/python benchmarks/serve.py --seconds 4
    ... benchmarks/serve.py --overload          # 4x capacity for 60 s (serve_stress.py), serve_overload.json
    ... benchmarks/serve.py --fuzz 100          # schemathesis, 100 cases per operation, serve_fuzz.json

Infinity runs when `infinity_emb` is found in `--infinity-venv` (default /work/infinity-venv): see PEERS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import gzip
import json
import os
import platform
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(Path(__file__).resolve().parent))

from serve_load import bodies, closed_loop  # noqa: E402
from serve_servers import KINDS, ROOT, find_infinity, infinity_version, model_folder, start  # noqa: E402

DATA = ROOT.parent / "shared" / "data"
RESULTS = ROOT / "benchmarks" / "results"


def sentences(n: int) -> list[str]:
    """STS-B test sentences (tab-separated, no quoting)."""
    out: list[str] = []
    with open(DATA / "stsbenchmark" / "stsbenchmark.tsv", encoding="utf-8") as fh:
        for row in csv.reader(fh, delimiter="\t", quoting=csv.QUOTE_NONE):
            if row[0] == "test":
                out.extend(row[2:4])
    return out[:n]


def abstracts(n: int, min_tokens: int = 256) -> list[str]:
    """SciFact abstracts (title + text) of at least `min_tokens` tokens under the model's own tokenizer."""
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(model_folder() / "tokenizer.json"))
    tok.no_truncation()
    out: list[str] = []
    with gzip.open(DATA / "scifact" / "corpus.jsonl.gz", "rt", encoding="utf-8") as fh:
        for line in fh:
            doc = json.loads(line)
            text = f"{doc.get('title', '')}. {doc['text']}".strip()
            if len(tok.encode(text).ids) >= min_tokens:
                out.append(text)
                if len(out) >= n:
                    break
    return out


def cpu_info() -> dict:
    """Cores and CPU model, to read next to the numbers."""
    model = ""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            model = next((ln.split(":", 1)[1].strip() for ln in fh if ln.startswith("model name")), "")
    except OSError:
        pass
    return {"cpus": os.cpu_count(), "model": model, "python": platform.python_version()}


def matrix(args: argparse.Namespace) -> None:
    """Every server x input set x concurrency; table and serve.json."""
    inputs = {"sentences": sentences(2000), "abstracts": abstracts(400)}
    infinity = find_infinity(args.infinity_venv)
    notes: dict[str, str] = {}
    servers = [s for s in args.servers if s != "infinity-torch" or infinity is not None]
    if "infinity-torch" in args.servers and infinity is None:
        notes["infinity-torch"] = f"not run: no infinity_emb in {args.infinity_venv or 'the default venvs'}"
    running = {}
    for kind in servers:  # all up at once (idle they use no CPU), so every cell runs the servers back to back
        try:
            running[kind] = start(kind, infinity=infinity, extra=args.server_args)
            print(f"{kind} ready in {running[kind].info['startup_s']} s", flush=True)
        except RuntimeError as exc:
            notes[kind] = f"did not start: {exc}"
            print(notes[kind], flush=True)
    rows: list[dict] = []
    try:
        for input_set in args.inputs:
            reqs = {k: bodies(inputs[input_set], s.model) for k, s in running.items()}
            for k, s in running.items():
                asyncio.run(closed_loop(s.url + s.path, reqs[k], 8, args.warmup))  # warm-up, not reported
            for c in args.concurrency:
                cells: dict[str, list[dict]] = {k: [] for k in running}
                for _ in range(args.rounds):  # rounds interleave the servers: drifting machine load hits all
                    for k, s in running.items():
                        cells[k].append(asyncio.run(closed_loop(s.url + s.path, reqs[k], c, args.seconds)))
                for k, runs in cells.items():
                    row = {"server": k, "data": input_set, **median_cell(runs)}
                    rows.append(row)
                    print(json.dumps(row), flush=True)
        for k, s in running.items():
            notes.setdefault(k, f"ready in {s.info.get('startup_s')} s, RSS after the run {s.rss_mb():.0f} MB")
    finally:
        for s in running.values():
            s.stop()
    ratios = table(rows)
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = args.out or RESULTS / "serve.json"
    out.write_text(json.dumps({
        "what": "closed-loop load on 127.0.0.1, one input per request; servers one at a time, same inputs",
        "command": "benchmarks/serve.py " + " ".join(sys.argv[1:]), "seconds_per_cell": args.seconds,
        "rounds": args.rounds,
        "machine": cpu_info(), "infinity": infinity_version(infinity) if infinity else None, "servers": notes,
        "ratios_at_32_sentences": ratios, "rows": rows}, indent=2) + "\n")
    print(f"\nwrote {out}")


def median_cell(runs: list[dict]) -> dict:
    """The round with the median throughput (its latencies with it), plus every round's inputs/s and all errors."""
    ordered = sorted(runs, key=lambda r: r["inputs_per_s"])
    cell = dict(ordered[(len(ordered) - 1) // 2])
    errors: dict[str, int] = {}
    for r in runs:
        for key, n in r["errors"].items():
            errors[key] = errors.get(key, 0) + n
    cell.update(errors=errors, rounds_inputs_per_s=[r["inputs_per_s"] for r in runs])
    return cell


def table(rows: list[dict]) -> dict:
    """Print the table (x naive per cell) and return the headline ratios at 32 clients on sentences."""
    base = {(r["data"], r["concurrency"]): r["inputs_per_s"] for r in rows if r["server"] == "naive"}
    print(f"\n{'server':<20}{'data':<11}{'conc':>5}{'inputs/s':>10}{'x naive':>9}{'p50 ms':>9}{'p95 ms':>9}"
          f"{'p99 ms':>9}  errors")
    for r in rows:
        b = base.get((r["data"], r["concurrency"]))
        r["x_naive"] = round(r["inputs_per_s"] / b, 2) if b else None
        print(f"{r['server']:<20}{r['data']:<11}{r['concurrency']:>5}{r['inputs_per_s']:>10}"
              f"{r['x_naive'] if r['x_naive'] is not None else '-':>9}{r['p50_ms']!s:>9}{r['p95_ms']!s:>9}"
              f"{r['p99_ms']!s:>9}  {r['errors'] or ''}")
    at = {r["server"]: r["inputs_per_s"] for r in rows if r["data"] == "sentences" and r["concurrency"] == 32}
    ratios = {}
    for ours in ("embedops-torch", "embedops-onnx-int8"):
        for peer in ("naive", "infinity-torch"):
            if at.get(ours) and at.get(peer):
                ratios[f"{ours} / {peer}"] = round(at[ours] / at[peer], 2)
    if at.get("embedops-torch") and at.get("embedops-torch-noevents"):  # what the event log costs the request path
        ratios["embedops-torch / embedops-torch-noevents"] = round(at["embedops-torch"] / at["embedops-torch-noevents"],
                                                                   3)
    for k, v in ratios.items():
        print(f"32 clients, sentences: {k} = {v}")
    return ratios


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=4.0, help="Load time per cell.")
    ap.add_argument("--rounds", type=int, default=2, help="Interleaved rounds per cell (the median is kept).")
    ap.add_argument("--warmup", type=float, default=1.5, help="Unreported load before each input set.")
    ap.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32, 128])
    ap.add_argument("--inputs", nargs="+", default=["sentences", "abstracts"], choices=["sentences", "abstracts"])
    ap.add_argument("--servers", nargs="+", default=list(KINDS), choices=KINDS)
    ap.add_argument("--server-args", nargs="*", default=[], help="Extra `embedops serve` flags (A/B runs).")
    ap.add_argument("--infinity-venv", type=Path, default=None, help="Venv holding infinity-emb.")
    ap.add_argument("--overload", action="store_true", help="Run the overload test instead (serve_stress.py).")
    ap.add_argument("--overload-seconds", type=float, default=60.0)
    ap.add_argument("--overload-queue", type=int, default=256, help="The server's --max-queue in the overload run.")
    ap.add_argument("--fuzz", type=int, default=0, metavar="N", help="Run schemathesis, N cases per operation.")
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--run-naive", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.run_naive:
        import uvicorn

        from serve_servers import naive_app

        uvicorn.run(naive_app(), host="127.0.0.1", port=args.run_naive, log_level="warning")
        return
    started = time.perf_counter()
    if args.overload or args.fuzz:
        import serve_stress

        if args.overload:
            serve_stress.overload(sentences(2000), args)
        if args.fuzz:
            serve_stress.fuzz(args.fuzz, args)
    else:
        matrix(args)
    print(f"total {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
