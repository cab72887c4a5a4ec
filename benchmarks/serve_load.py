"""The load generator of `benchmarks/serve.py`: asyncio + aiohttp in one process, request bodies encoded up front.

aiohttp over httpx because on a 2-core box the client shares the cores with the server: httpx's per-request Python
cost (about 3x aiohttp's here) would be taken from whichever server is measured. Bodies are pre-serialised and
responses are read as bytes (one per cell is parsed and checked), so the client spends little per request.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from typing import Any

import aiohttp
import numpy as np


def bodies(texts: list[str], model: str, per_request: int = 1) -> list[bytes]:
    """One OpenAI embeddings body per request, cycling through `texts`."""
    out = []
    for i in range(0, len(texts) - per_request + 1, per_request):
        out.append(json.dumps({"model": model, "input": texts[i:i + per_request],
                               "encoding_format": "float"}).encode())
    return out


def summary(latencies: list[float], inputs: int, elapsed: float, errors: dict[str, int]) -> dict[str, Any]:
    """inputs/s and latency percentiles (ms) of the successful requests, errors by status."""
    lat = np.asarray(latencies) * 1000
    pct = (lambda q: round(float(np.percentile(lat, q)), 1)) if len(lat) else (lambda q: None)
    return {"requests": len(latencies), "inputs": inputs, "seconds": round(elapsed, 2),
            "inputs_per_s": round(inputs / elapsed, 1) if elapsed > 0 else 0.0,
            "p50_ms": pct(50), "p95_ms": pct(95), "p99_ms": pct(99), "errors": errors}


def _check(payload: bytes, dimension: int, n: int) -> str | None:
    """None when the response holds `n` vectors of `dimension` finite floats of unit length."""
    try:
        data = json.loads(payload)["data"]
        vec = np.asarray([d["embedding"] for d in data], dtype=np.float32)
    except (ValueError, KeyError, TypeError) as exc:
        return f"unreadable response: {exc}"
    if vec.shape != (n, dimension) or not np.allclose(np.linalg.norm(vec, axis=1), 1, atol=1e-3):
        return f"bad vectors: shape {vec.shape}"
    return None


async def closed_loop(url: str, reqs: list[bytes], concurrency: int, seconds: float, per_request: int = 1,
                      dimension: int = 384) -> dict[str, Any]:
    """`concurrency` clients, each sending its next request as soon as the last one is answered, for `seconds`."""
    latencies: list[float] = []
    errors: dict[str, int] = {}
    done = 0
    checked: list[str | None] = []
    stop_at = time.perf_counter() + seconds
    connector = aiohttp.TCPConnector(limit=concurrency, force_close=False)
    timeout = aiohttp.ClientTimeout(total=120)
    headers = {"Content-Type": "application/json"}
    async with aiohttp.ClientSession(connector=connector, timeout=timeout, headers=headers) as session:
        async def client(worker: int) -> None:
            nonlocal done
            i = worker
            while time.perf_counter() < stop_at:
                body = reqs[i % len(reqs)]
                i += concurrency
                t0 = time.perf_counter()
                try:
                    async with session.post(url, data=body) as r:
                        payload = await r.read()
                        status = r.status
                except (TimeoutError, aiohttp.ClientError) as exc:
                    errors[type(exc).__name__] = errors.get(type(exc).__name__, 0) + 1
                    continue
                if status != 200:
                    errors[str(status)] = errors.get(str(status), 0) + 1
                    continue
                latencies.append(time.perf_counter() - t0)
                done += per_request
                if not checked:
                    checked.append(_check(payload, dimension, per_request))

        began = time.perf_counter()
        await asyncio.gather(*(client(w) for w in range(concurrency)))
        elapsed = time.perf_counter() - began
    out = summary(latencies, done, elapsed, errors)
    out["concurrency"] = concurrency
    if checked and checked[0]:
        out["errors"]["bad_response"] = 1
        out["bad_response"] = checked[0]
    return out


async def open_loop(url: str, reqs: list[bytes], rate: float, seconds: float,
                    sample: Callable[[], None] | None = None) -> dict[str, Any]:
    """Requests at a fixed `rate` per second for `seconds` whatever the answers (the overload test).

    Every second `sample()` runs (the caller records the server's memory). 429s are counted with their Retry-After.
    """
    latencies: list[float] = []
    errors: dict[str, int] = {}
    retry_after: list[int] = []
    refused_latency: list[float] = []
    connector = aiohttp.TCPConnector(limit=0)
    timeout = aiohttp.ClientTimeout(total=120)
    headers = {"Content-Type": "application/json"}
    tasks: set[asyncio.Task] = set()
    async with aiohttp.ClientSession(connector=connector, timeout=timeout, headers=headers) as session:
        async def one(body: bytes) -> None:
            t0 = time.perf_counter()
            try:
                async with session.post(url, data=body) as r:
                    await r.read()
                    status, ra = r.status, r.headers.get("Retry-After")
            except (TimeoutError, aiohttp.ClientError) as exc:
                errors[type(exc).__name__] = errors.get(type(exc).__name__, 0) + 1
                return
            if status == 200:
                latencies.append(time.perf_counter() - t0)
            else:
                errors[str(status)] = errors.get(str(status), 0) + 1
                if status == 429:
                    refused_latency.append(time.perf_counter() - t0)
                    retry_after.append(int(ra) if ra and ra.isdigit() else -1)

        began = time.perf_counter()
        next_sample = began
        n = int(rate * seconds)
        for i in range(n):
            due = began + i / rate
            now = time.perf_counter()
            if now >= next_sample and sample is not None:
                sample()
                next_sample += 1.0
            if due > now:
                await asyncio.sleep(due - now)
            task = asyncio.create_task(one(reqs[i % len(reqs)]))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        sent_s = time.perf_counter() - began
        while tasks:
            if sample is not None and time.perf_counter() >= next_sample:
                sample()
                next_sample += 1.0
            await asyncio.wait(tasks, timeout=0.5)
        elapsed = time.perf_counter() - began
    out = summary(latencies, len(latencies), elapsed, errors)
    out.update({"offered_per_s": rate, "sent": n, "sending_s": round(sent_s, 2),
                "retry_after_s": sorted(set(retry_after)),
                "refused_with_retry_after": sum(1 for r in retry_after if r > 0),
                "refused_p99_ms": (round(float(np.percentile(np.asarray(refused_latency) * 1000, 99)), 1)
                                   if refused_latency else None)})
    return out
