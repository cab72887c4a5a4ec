"""What the event log costs the request path: throughput of 32 client threads with `EventLog.log` on vs off.

Each simulated request does a fixed piece of real work (a 384-d query against 2,000 document vectors, top-10) and
builds its `RequestEvent` (result ids, scores, query vector) either way; "on" adds `log.log(event)` into a SQLite
event log. Rounds alternate off/on so that load from other processes hits both alike; medians reported. Also
reports the writer's sustained rate (events committed per second) and drops.

    HF_HUB_OFFLINE=1 flock /tmp/embedops-heavy.lock .venv/bin/python benchmarks/events_log.py
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from embedops._io import atomic_write_json
from embedops.events import EventLog, RequestEvent

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"


def _run(clients: int, per_client: int, docs: np.ndarray, log: EventLog | None) -> float:
    """Requests per second of `clients` threads doing `per_client` searches each."""
    rng = np.random.default_rng(0)
    queries = rng.standard_normal((clients, per_client, docs.shape[1])).astype(np.float32)
    barrier = threading.Barrier(clients + 1)

    def client(c: int) -> None:
        barrier.wait()
        for i in range(per_client):
            q = queries[c, i]
            scores = docs @ q
            top = np.argpartition(-scores, 10)[:10]
            top = top[np.argsort(-scores[top])]
            event = RequestEvent(request_id=f"{c}-{i}", kind="search", model="minilm", model_version="v1",
                                 collection="docs", latency_ms=1.0, query="q", k=10,
                                 result_ids=[str(j) for j in top], scores=scores[top].tolist(), query_vector=q)
            if log is not None:
                log.log(event)

    threads = [threading.Thread(target=client, args=(c,)) for c in range(clients)]
    for t in threads:
        t.start()
    barrier.wait()
    start = time.perf_counter()
    for t in threads:
        t.join()
    return clients * per_client / (time.perf_counter() - start)


def main() -> None:
    """Run the rounds, print the table, write JSON."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clients", type=int, default=32)
    ap.add_argument("--per-client", type=int, default=200)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--out", type=Path, default=RESULTS / "events_log.json")
    args = ap.parse_args()
    docs = np.random.default_rng(1).standard_normal((2000, 384)).astype(np.float32)
    off, on = [], []
    with tempfile.TemporaryDirectory() as tmp, EventLog(Path(tmp) / "events.db", max_queue=100_000) as log:
        _run(args.clients, 20, docs, None)  # warm-up
        for _ in range(args.rounds):
            off.append(_run(args.clients, args.per_client, docs, None))
            on.append(_run(args.clients, args.per_client, docs, log))
        start, before = time.perf_counter(), log.written_total
        log.flush(timeout=None)
        drain_s = time.perf_counter() - start
        stats = log.stats()
        # Writer rate on its own: a burst queued at once, timed until committed.
        burst = 20_000
        event = RequestEvent("b", kind="search", result_ids=[str(i) for i in range(10)], scores=[0.5] * 10,
                             query_vector=docs[0])
        for _ in range(burst):
            log.log(event)
        start = time.perf_counter()
        log.flush(timeout=None)
        writer_rate = burst / (time.perf_counter() - start)
    ratio = statistics.median(on) / statistics.median(off)
    result = {
        "clients": args.clients, "requests_per_round": args.clients * args.per_client, "rounds": args.rounds,
        "rps_logging_off": off, "rps_logging_on": on, "median_rps_off": statistics.median(off),
        "median_rps_on": statistics.median(on), "throughput_ratio_on_vs_off": ratio,
        "written": stats["written_total"], "dropped": stats["dropped_total"], "failed": stats["failed_total"],
        "drain_after_rounds_s": drain_s, "pending_when_rounds_ended": stats["written_total"] - before,
        "writer_events_per_s_sqlite": writer_rate,
    }
    print(f"{'logging':<8} {'median req/s':>14}")
    print(f"{'off':<8} {result['median_rps_off']:>14,.0f}")
    print(f"{'on':<8} {result['median_rps_on']:>14,.0f}")
    print(f"ratio on/off {ratio:.3f}; written {stats['written_total']}, dropped {stats['dropped_total']}, "
          f"failed {stats['failed_total']}; SQLite writer {writer_rate:,.0f} events/s")
    atomic_write_json(args.out, result)


if __name__ == "__main__":
    main()
