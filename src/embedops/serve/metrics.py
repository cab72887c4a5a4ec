"""Prometheus metrics, on a registry of the app's own (two apps in one process never share counters)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
_SIZE_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048)


class _WorkerCollector(Collector):
    """Reads each model worker's own counters at scrape time (queue depth, batches, texts, busy time)."""

    def __init__(self, workers: Callable[[], dict[str, Any]]):
        self._workers = workers
        self._lock = threading.Lock()  # scrapes may run side by side
        self._seen: dict[str, int] = {}  # batches already counted, per model
        self._counts: dict[str, list[int]] = {}  # per model: batches per size bucket (+Inf last), cumulative
        self._sums: dict[str, int] = {}

    def _batch_sizes(self, name: str, worker: Any) -> tuple[list[tuple[str, int]], int]:
        """Fold the batches run since the last scrape into the model's cumulative histogram.

        The worker keeps the sizes of its last 1024 batches: exact while scrapes come at least every 1024 batches,
        the newest 1024 otherwise."""
        run = worker.batches_run
        recent = worker.batch_sizes  # read after the count: a batch finishing in between shifts by one, not more
        with self._lock:
            counts = self._counts.setdefault(name, [0] * (len(_SIZE_BUCKETS) + 1))
            new = max(0, min(run - self._seen.get(name, 0), len(recent)))
            self._seen[name] = run
            for size in recent[len(recent) - new:]:
                counts[next((i for i, b in enumerate(_SIZE_BUCKETS) if size <= b), len(_SIZE_BUCKETS))] += 1
                self._sums[name] = self._sums.get(name, 0) + size
            cumulative, total = [], 0
            for bound, n in zip([*map(str, _SIZE_BUCKETS), "+Inf"], counts, strict=True):
                total += n
                cumulative.append((bound, total))
            return cumulative, self._sums.get(name, 0)

    def collect(self) -> Iterable[Any]:
        depth = GaugeMetricFamily("embedops_queue_depth", "Texts waiting for a batch, per model", labels=["model"])
        flight = GaugeMetricFamily("embedops_in_flight_requests", "Requests inside the model worker",
                                   labels=["model"])
        batches = CounterMetricFamily("embedops_batches", "Batches the model ran", labels=["model"])
        texts = CounterMetricFamily("embedops_batched_texts", "Texts run in batches (rate over batches = "
                                    "mean batch size)", labels=["model"])
        largest = GaugeMetricFamily("embedops_recent_max_batch_size", "Largest of the last 1024 batches",
                                    labels=["model"])
        busy = CounterMetricFamily("embedops_model_busy_seconds", "Seconds the model spent running batches",
                                   labels=["model"])
        sizes = HistogramMetricFamily("embedops_batch_size", "Texts per model batch", labels=["model"])
        dropped = CounterMetricFamily("embedops_cancelled_inputs", "Queued texts dropped before the model because "
                                      "their client disconnected or their deadline passed", labels=["model"])
        for name, worker in self._workers().items():
            m = worker.metrics()
            depth.add_metric([name], m["queue_depth"])
            flight.add_metric([name], m["in_flight_requests"])
            batches.add_metric([name], m["batches"])
            texts.add_metric([name], m["texts"])
            largest.add_metric([name], m["max_batch_size_seen"])
            busy.add_metric([name], m["busy_seconds"])
            buckets, total = self._batch_sizes(name, worker)
            sizes.add_metric([name], buckets, total)
            dropped.add_metric([name], m.get("cancelled_texts", 0))
        yield from (depth, flight, batches, texts, largest, busy, sizes, dropped)


class Metrics:
    """The server's metrics: per-route latency, errors by type, and per-model requests, inputs, tokens, truncations."""

    def __init__(self, workers: Callable[[], dict[str, Any]]):
        self.registry = CollectorRegistry()
        r = self.registry
        self.latency = Histogram("embedops_request_duration_seconds", "Request latency by route",
                                 ["method", "route", "status"], buckets=_LATENCY_BUCKETS, registry=r)
        self.errors = Counter("embedops_errors", "Error responses by type", ["type", "status"], registry=r)
        self.model_requests = Counter("embedops_model_requests", "Requests per model", ["model", "endpoint"],
                                      registry=r)
        self.inputs = Counter("embedops_inputs", "Inputs embedded per model", ["model"], registry=r)
        self.tokens = Counter("embedops_tokens", "Tokens run per model", ["model"], registry=r)
        self.truncations = Counter("embedops_truncated_inputs", "Inputs cut at the model's max tokens", ["model"],
                                   registry=r)
        self.request_inputs = Histogram("embedops_request_inputs", "Inputs per embeddings request", ["model"],
                                        buckets=_SIZE_BUCKETS, registry=r)
        self.rejected = Counter("embedops_queue_rejections", "Requests refused because the queue was full",
                                ["model"], registry=r)
        r.register(_WorkerCollector(workers))

    def observe_encode(self, model: str, endpoint: str, inputs: int, tokens: int, truncated: int) -> None:
        """Count one model call's inputs, tokens and truncations."""
        self.model_requests.labels(model, endpoint).inc()
        self.inputs.labels(model).inc(inputs)
        self.tokens.labels(model).inc(tokens)
        if truncated:
            self.truncations.labels(model).inc(truncated)
        if endpoint == "embeddings":
            self.request_inputs.labels(model).observe(inputs)

    def render(self) -> bytes:
        """The text exposition format."""
        return generate_latest(self.registry)
