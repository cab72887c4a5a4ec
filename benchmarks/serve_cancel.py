"""Clients that give up: what the server spends on requests nobody waits for any more (benchmark, not CI).

Baseline: the same `embedops serve` at an earlier commit (default 6c37bc2, before queued work of disconnected clients
was dropped), run from a `git worktree` in the same run; then this checkout. Each server gets, in turn:

- impatient: requests of 8 STS-B sentences arriving open-loop at `--rate` per second (default 1.5x the capacity
  measured on the baseline first), each client hanging up after `--client-timeout` seconds (aiohttp closes the
  connection): an offered load above capacity. Reported:
  requests answered in time per second, inputs answered per second, timeouts, the texts the model ran (from /metrics),
  the share of model work spent on requests whose client had already gone, and the texts dropped before the model.
- patient: 32 clients, one sentence per request, no timeouts: the cost of watching for disconnects (inputs/s).

Rounds alternate baseline / current `--rounds` times; medians are reported.
    HF_HUB_OFFLINE=1 flock /tmp/embedops-heavy.lock .venv/bin/python benchmarks/serve_cancel.py
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import httpx
from prometheus_client.parser import text_string_to_metric_families

sys.path.insert(0, str(Path(__file__).resolve().parent))

from serve import RESULTS, cpu_info, sentences  # noqa: E402
from serve_load import bodies, closed_loop  # noqa: E402
from serve_servers import ROOT, SCRATCH, start  # noqa: E402


def model_counters(url: str) -> dict[str, float]:
    """Texts the model ran and texts it dropped, summed over models."""
    out = {"texts": 0.0, "dropped": 0.0}
    for family in text_string_to_metric_families(httpx.get(f"{url}/metrics", timeout=10).text):
        for sample in family.samples:
            if sample.name == "embedops_batched_texts_total":
                out["texts"] += sample.value
            elif sample.name == "embedops_cancelled_inputs_total":
                out["dropped"] += sample.value
    return out


async def impatient(url: str, reqs: list[bytes], rate: float, seconds: float, timeout: float,
                    per_request: int) -> dict[str, Any]:
    """Requests arriving at `rate` per second (open loop, whatever the answers), each client hanging up after
    `timeout` seconds: an offered load above capacity, as when a service upstream retries or users leave."""
    answered = timed_out = other = refused = 0
    latencies: list[float] = []
    tasks: set[asyncio.Task] = set()
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector, headers={"Content-Type": "application/json"}) as session:
        async def one(body: bytes) -> None:
            nonlocal answered, timed_out, other, refused
            t0 = time.perf_counter()
            try:
                async with session.post(url, data=body, timeout=aiohttp.ClientTimeout(total=timeout)) as r:
                    await r.read()
                    status = r.status
            except TimeoutError:
                timed_out += 1
                return
            except aiohttp.ClientError:
                other += 1
                return
            if status == 200:
                answered += 1
                latencies.append(time.perf_counter() - t0)
            elif status == 429:  # refused at once by the queue bound: the client can go elsewhere or retry
                refused += 1
            else:
                other += 1

        began = time.perf_counter()
        for i in range(int(rate * seconds)):
            due = began + i / rate
            now = time.perf_counter()
            if due > now:
                await asyncio.sleep(due - now)
            task = asyncio.create_task(one(reqs[i % len(reqs)]))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        if tasks:
            await asyncio.gather(*tasks)
        elapsed = time.perf_counter() - began
    lat = sorted(latencies)
    sent = answered + timed_out + other + refused
    return {"seconds": round(elapsed, 2), "offered_per_s": rate, "sent": sent, "answered": answered,
            "timed_out": timed_out, "refused_429": refused, "other_errors": other,
            "answered_share": round(answered / sent, 3) if sent else None,
            "answered_per_s": round(answered / seconds, 2),
            "inputs_answered_per_s": round(answered * per_request / seconds, 1),
            "p50_ms": round(lat[len(lat) // 2] * 1000, 1) if lat else None,
            "p99_ms": round(lat[int(len(lat) * 0.99)] * 1000, 1) if lat else None}


def one_round(label: str, env_extra: dict[str, str], texts: list[str], args: argparse.Namespace,
              max_queue: int = 4096, extra: tuple[str, ...] = ()) -> dict[str, Any]:
    """Start the server, run both loads, stop it."""
    server = start("embedops-torch", extra=["--max-queue", str(max_queue), *extra, *args.server_args],
                   env_extra=env_extra)
    try:
        url = server.url + server.path
        asyncio.run(closed_loop(url, bodies(texts, server.model), 8, 2.0))  # warm-up
        time.sleep(1.0)
        if args.patient_only:
            patient = asyncio.run(closed_loop(url, bodies(texts, server.model), 32, args.patient_seconds))
            print(f"{label:9s} patient 32 clients: {patient['inputs_per_s']} inputs/s", flush=True)
            return {"patient": patient}
        before = model_counters(server.url)
        load = asyncio.run(impatient(url, bodies(texts, server.model, args.per_request), args.rate,
                                     args.seconds, args.client_timeout, args.per_request))
        time.sleep(args.client_timeout + 3.0)  # let abandoned work drain (or be dropped) before reading counters
        after = model_counters(server.url)
        ran = after["texts"] - before["texts"]
        useful = load["answered"] * args.per_request
        load.update({"model_texts_run": int(ran), "texts_dropped_before_model": int(after["dropped"]
                                                                                  - before["dropped"]),
                     "wasted_share": round(max(ran - useful, 0) / ran, 3) if ran else None})
        patient = asyncio.run(closed_loop(url, bodies(texts, server.model), 32, args.patient_seconds))
    finally:
        server.stop()
    print(f"{label:9s} impatient: {load['answered_per_s']:6.2f} answered req/s, {load['timed_out']} timed out, "
          f"{load['refused_429']} refused (429), "
          f"model ran {load['model_texts_run']} texts, wasted {load['wasted_share']}, dropped "
          f"{load['texts_dropped_before_model']} | patient 32 clients: {patient['inputs_per_s']} inputs/s", flush=True)
    return {"impatient": load, "patient": patient}


def capacity(env_extra: dict[str, str], texts: list[str], args: argparse.Namespace) -> float:
    """Requests/s (of `--per-request` inputs) the server answers with 32 patient closed-loop clients."""
    server = start("embedops-torch", extra=["--max-queue", "4096", *args.server_args], env_extra=env_extra)
    try:
        url = server.url + server.path
        reqs = bodies(texts, server.model, args.per_request)
        asyncio.run(closed_loop(url, reqs, 8, 2.0, per_request=args.per_request))
        got = asyncio.run(closed_loop(url, reqs, 32, 8.0, per_request=args.per_request))
    finally:
        server.stop()
    return got["requests"] / got["seconds"]


def worktree(rev: str) -> Path:
    """A checkout of `rev` beside the scratch folder (created once)."""
    path = SCRATCH / f"baseline-{rev}"
    if not (path / "src" / "embedops").is_dir():
        SCRATCH.mkdir(parents=True, exist_ok=True)
        subprocess.run(["git", "worktree", "add", "--detach", "-f", str(path), rev], cwd=ROOT, check=True)
    return path


def med(rows: list[dict], part: str, key: str) -> float | None:
    vals = [r[part][key] for r in rows if r[part][key] is not None]
    return round(statistics.median(vals), 3) if vals else None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--baseline-rev", default="6c37bc2")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--rate", type=float, default=0.0,
                    help="requests/s offered; default 1.5x the capacity measured on the baseline before round 1")
    ap.add_argument("--per-request", type=int, default=8)
    ap.add_argument("--client-timeout", type=float, default=1.5)
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--patient-seconds", type=float, default=8.0)
    ap.add_argument("--server-args", nargs="*", default=[])
    ap.add_argument("--bounded-queue", type=int, default=0,
                    help="also run the current server with this --max-queue (default: 3/4 of the texts the model "
                         "runs within the client timeout)")
    ap.add_argument("--wait-bound", type=float, default=0.0,
                    help="also run the current server with --max-queue-wait (default: 3/4 of the client timeout)")
    ap.add_argument("--patient-only", action="store_true", help="only the cost of watching for disconnects")
    args = ap.parse_args()
    texts = sentences(2000)
    base = worktree(args.baseline_rev)
    rows: dict[str, list[dict]] = {"baseline": [], "current": []}
    if not args.rate and not args.patient_only:
        measured = capacity({"PYTHONPATH": str(base / "src")}, texts, args)
        args.rate = round(1.5 * measured, 1)
        if not args.bounded_queue:  # about 3/4 of what the model runs within the clients' timeout
            args.bounded_queue = int(0.75 * args.client_timeout * measured * args.per_request)
        if not args.wait_bound:
            args.wait_bound = round(0.75 * args.client_timeout, 2)
        print(f"offering {args.rate} requests/s of {args.per_request} inputs; bounded queue {args.bounded_queue}",
              flush=True)
    if args.bounded_queue and not args.patient_only:
        rows[f"current, max-queue {args.bounded_queue}"] = []
    if args.wait_bound and not args.patient_only:
        rows[f"current, max-queue-wait {args.wait_bound:g}"] = []
    for _ in range(args.rounds):
        rows["baseline"].append(one_round("baseline", {"PYTHONPATH": str(base / "src")}, texts, args))
        rows["current"].append(one_round("current", {}, texts, args))
        if args.bounded_queue and not args.patient_only:
            rows[f"current, max-queue {args.bounded_queue}"].append(
                one_round("bounded", {}, texts, args, max_queue=args.bounded_queue))
        if args.wait_bound and not args.patient_only:
            rows[f"current, max-queue-wait {args.wait_bound:g}"].append(
                one_round("wait", {}, texts, args, extra=("--max-queue-wait", str(args.wait_bound))))
    if args.patient_only:
        table = {label: {"patient_inputs_per_s": med(runs, "patient", "inputs_per_s"),
                         "patient_p50_ms": med(runs, "patient", "p50_ms")} for label, runs in rows.items()}
        ratio = round(table["current"]["patient_inputs_per_s"] / table["baseline"]["patient_inputs_per_s"], 3)
        print(f"patient 32 clients, median of {args.rounds}: {table}; current/baseline {ratio}")
        out = RESULTS / "serve_cancel_patient.json"
        out.write_text(json.dumps({"what": "cost of watching for disconnects: 32 closed-loop clients, one sentence "
                                   "per request, no timeouts", "command": " ".join(sys.argv),
                                   "baseline": f"embedops serve at {args.baseline_rev} (git worktree)",
                                   "machine": cpu_info(), "args": vars(args), "median": table,
                                   "ratio": ratio, "runs": rows}, indent=2) + "\n")
        print(f"wrote {out}")
        return
    table = {}
    for label, runs in rows.items():
        table[label] = {k: med(runs, "impatient", k) for k in
                        ("answered_per_s", "answered_share", "inputs_answered_per_s", "timed_out", "refused_429",
                         "model_texts_run",
                         "texts_dropped_before_model", "wasted_share", "p50_ms", "p99_ms")}
        table[label]["patient_inputs_per_s"] = med(runs, "patient", "inputs_per_s")
    ratios = {"answered_per_s": round(table["current"]["answered_per_s"] / table["baseline"]["answered_per_s"], 2)
              if table["baseline"]["answered_per_s"] else None,
              "patient_inputs_per_s": round(table["current"]["patient_inputs_per_s"]
                                            / table["baseline"]["patient_inputs_per_s"], 3)}
    print(f"\n{'':28s}{'answered/s':>11s}{'timed out':>10s}{'model texts':>12s}{'wasted':>8s}{'dropped':>9s}"
          f"{'p50 ms':>8s}{'patient in/s':>13s}")
    for label in rows:
        t = table[label]
        print(f"{label[:28]:28s}{t['answered_per_s']:>11}{t['timed_out']:>10}{t['model_texts_run']:>12}"
              f"{t['wasted_share']!s:>8}{t['texts_dropped_before_model']:>9}{t['p50_ms']!s:>8}"
              f"{t['patient_inputs_per_s']:>13}")
    print(f"ratios current/baseline: {ratios}")
    out = RESULTS / "serve_cancel.json"
    out.write_text(json.dumps({"what": __doc__.split("\n\n")[0], "command": " ".join(sys.argv),
                               "baseline": f"embedops serve at {args.baseline_rev} (git worktree)",
                               "machine": cpu_info(), "args": vars(args), "median": table, "ratios": ratios,
                               "runs": rows}, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
