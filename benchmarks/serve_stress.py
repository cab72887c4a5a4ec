"""Overload and fuzzing runs of `benchmarks/serve.py` (benchmarks, not CI).

- overload: measure capacity (32 closed-loop clients), then offer 4x that rate open-loop for 60 s; admitted requests
  must keep a bounded p99 (the queue bound over the rate), the rest get 429 with Retry-After, the server's RSS
  (sampled every second) stays flat, and 8 clients are served normally afterwards. -> serve_overload.json
- fuzz: schemathesis against the real server's OpenAPI schema, N cases per operation; zero 5xx and every response
  matching the schema. -> serve_fuzz.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import sys
import time
from typing import Any

import httpx

from serve import RESULTS, cpu_info
from serve_load import bodies, closed_loop, open_loop
from serve_servers import SCRATCH, start


def overload(texts: list[str], args: argparse.Namespace) -> None:
    """4x capacity for `args.overload_seconds`; writes serve_overload.json."""
    queue = args.overload_queue
    server = start("embedops-torch", extra=["--max-queue", str(queue), *args.server_args])
    rss: list[float] = []
    try:
        url = server.url + server.path
        reqs = bodies(texts, server.model)
        asyncio.run(closed_loop(url, reqs, 8, 2.0))  # warm-up
        capacity = asyncio.run(closed_loop(url, reqs, 32, 5.0))
        before = asyncio.run(closed_loop(url, reqs, 8, 4.0))
        rate = round(4 * capacity["inputs_per_s"], 1)
        print(f"capacity {capacity['inputs_per_s']} inputs/s; offering {rate}/s for {args.overload_seconds} s",
              flush=True)
        idle_rss = server.rss_mb()
        during = asyncio.run(open_loop(url, reqs, rate, args.overload_seconds,
                                       sample=lambda: rss.append(round(server.rss_mb(), 1))))
        time.sleep(1.0)
        after = asyncio.run(closed_loop(url, reqs, 8, 4.0))
        ready = httpx.get(server.url + "/ready", timeout=5).status_code
    finally:
        server.stop()
    half = len(rss) // 2
    result = {
        "what": "open-loop overload at 4x the measured capacity, one STS-B sentence per request",
        "command": "benchmarks/serve.py " + " ".join(sys.argv[1:]), "machine": cpu_info(),
        "server": f"embedops serve --backend torch --max-queue {queue}",
        "capacity": capacity, "before": before, "overload": during, "after": after, "ready_after": ready,
        "rss_mb": {"idle_before": round(idle_rss, 1), "samples": rss, "min": min(rss, default=None),
                   "max": max(rss, default=None),
                   "growth_second_half": round(max(rss[half:]) - max(rss[:half]), 1) if half else None},
        "p99_bound_ms": round(queue / capacity["inputs_per_s"] * 1000, 1),
    }
    verdict = {
        "admitted_p99_within_2x_bound": (during["p99_ms"] or 0) <= 2 * result["p99_bound_ms"] + 1000,
        "refused_all_429_with_retry_after": set(during["errors"]) <= {"429"}
        and during["refused_with_retry_after"] == during["errors"].get("429", 0),
        "rss_flat_within_50mb": result["rss_mb"]["growth_second_half"] is not None
        and result["rss_mb"]["growth_second_half"] <= 50,
        "serves_normally_after": not after["errors"] and ready == 200
        and after["inputs_per_s"] >= 0.7 * before["inputs_per_s"],
    }
    result["verdict"] = verdict
    print(json.dumps({k: result[k] for k in ("capacity", "overload", "after", "p99_bound_ms", "verdict")}, indent=1))
    print(f"RSS MB min {result['rss_mb']['min']} max {result['rss_mb']['max']} "
          f"(growth in the second half {result['rss_mb']['growth_second_half']})")
    out = RESULTS / "serve_overload.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")


def _fuzz_test(operation: Any, examples: int, url: str, label: str, per_op: dict[str, int],
               statuses: dict[str, int], failures: list[str]) -> Any:
    """A hypothesis test calling one operation `examples` times and recording statuses and failed checks."""
    from hypothesis import HealthCheck, given, settings
    from schemathesis.checks import not_a_server_error
    from schemathesis.specs.openapi.checks import response_schema_conformance, status_code_conformance

    @given(case=operation.as_strategy())
    @settings(max_examples=examples, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    def run(case: Any) -> None:
        per_op[label] += 1
        response = case.call(base_url=url, timeout=60)
        key = f"{response.status_code // 100}xx"
        statuses[key] = statuses.get(key, 0) + 1
        try:
            case.validate_response(response, checks=[not_a_server_error, status_code_conformance,
                                                     response_schema_conformance])
        except Exception as exc:  # noqa: BLE001 - collected and reported together
            failures.append(f"{label}: {str(exc)[:300]}")

    return run


def fuzz(examples: int, args: argparse.Namespace) -> None:
    """schemathesis with `examples` cases per operation against a real server; writes serve_fuzz.json."""
    import schemathesis

    server = start("embedops-torch", extra=["--max-queue", "100000", *args.server_args])
    statuses: dict[str, int] = {}
    failures: list[str] = []
    per_op: dict[str, int] = {}
    started = time.perf_counter()
    try:
        with httpx.Client(base_url=server.url, timeout=60) as c:  # something to search, recommend and delete
            c.post("/v1/collections", json={"name": "sts", "index": {"kind": "flat"}}).raise_for_status()
            docs = [{"id": str(i), "text": f"sentence number {i} about a cat", "metadata": {"n": i}} for i in range(20)]
            c.post("/v1/collections/sts/documents", json={"documents": docs}).raise_for_status()
        schema = schemathesis.openapi.from_url(f"{server.url}/openapi.json")
        for result in schema.get_all_operations():
            operation = result.ok()
            label = f"{operation.method.upper()} {operation.path}"
            per_op[label] = 0

            run = _fuzz_test(operation, examples, server.url, label, per_op, statuses, failures)
            run()
            print(f"{label}: {per_op[label]} cases", flush=True)
    finally:
        server.stop()
        for folder in SCRATCH.glob("collections-*"):
            shutil.rmtree(folder, ignore_errors=True)
    result = {"what": "schemathesis against the real server (auth off), checks: not_a_server_error, "
                      "status_code_conformance, response_schema_conformance",
              "command": "benchmarks/serve.py " + " ".join(sys.argv[1:]), "max_examples_per_operation": examples,
              "cases": sum(per_op.values()), "operations": len(per_op), "per_operation": per_op,
              "statuses": statuses, "server_errors_5xx": statuses.get("5xx", 0), "failures": len(failures),
              "failure_samples": failures[:20], "seconds": round(time.perf_counter() - started, 1)}
    print(json.dumps({k: v for k, v in result.items() if k != "per_operation"}, indent=1))
    out = RESULTS / "serve_fuzz.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")
