"""A model worker: one thread owns a loaded model; callers on any thread get vectors plus their own usage.

The shape follows infinity's batch handler (a queue in front of one model thread, batches popped by length), written
for threads rather than asyncio:

- pre, on the caller's thread: check the inputs (a bad one is that caller's InputError only), add the prompt,
  tokenise (both backends tokenise with state that never changes, so this runs in parallel);
- core, on the worker thread: gather waiting requests (up to `max_wait_ms` for more while a batch is not full), sort
  their texts by length across callers, cut batches under `max_batch_size` and the padded-token budget
  `max_batch_tokens`, run the backend, and resolve each caller's future when its last row is in;
- post, back on the caller's thread: Matryoshka truncation, normalisation, output precision, and the caller's usage.

The intra-op pool is sized once when the worker starts; with one worker thread per model, requests never run the
model side by side, so nothing oversubscribes the cores.

A caller may give up (a server's client disconnected, or its deadline passed): inside `cancel_when(event)`, texts
still queued when `event` is set are dropped before the model runs them, and the caller gets `RequestCancelled`.
"""

from __future__ import annotations

import collections
import logging
import queue
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import Future
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

import numpy as np

from embedops.errors import EmbedopsError, InputError, ModelError
from embedops.models.base import BaseEncoder, Prepared, physical_cores, plan_batches
from embedops.models.calibration import RANGED
from embedops.protocols import InputKind, OutputPrecision, Usage

log = logging.getLogger(__name__)

# The calling thread's "give up" flag: set by a server when the client is gone or the deadline passed.
_CANCEL: ContextVar[threading.Event | None] = ContextVar("embedops_worker_cancel", default=None)


class RequestCancelled(ModelError):
    """The caller gave up (its client disconnected or its deadline passed) before the model ran its texts."""


@contextmanager
def cancel_when(event: threading.Event) -> Iterator[threading.Event]:
    """On this thread, worker calls made inside the block drop their still-queued texts once `event` is set."""
    token = _CANCEL.set(event)
    try:
        yield event
    finally:
        _CANCEL.reset(token)


@dataclass(eq=False)
class _Request:
    """One caller's texts on their way through the worker."""

    prepared: Prepared
    future: Future
    raw: np.ndarray
    cursor: int = 0  # texts handed to a batch so far
    done: int = 0  # rows filled in
    failed: bool = False
    cancel: threading.Event | None = None
    tokens_left: int = 0  # tokens of its texts the model has not run yet (counted in the worker's backlog)

    @property
    def size(self) -> int:
        return len(self.prepared.texts)

    @property
    def cancelled(self) -> bool:
        """Whether the caller gave up (read without a lock: an Event is thread-safe)."""
        return self.cancel is not None and self.cancel.is_set()


class _Closed(Exception):
    """Raised inside the worker thread when close() was called between two batches."""


class ModelWorker:
    """Owns one encoder on one thread, merges concurrent callers' texts into batches; satisfies `Encoder`."""

    def __init__(self, encoder: BaseEncoder, *, max_batch_tokens: int = 16384, max_batch_size: int = 64,
                 max_wait_ms: float = 2.0, threads: int | None = None, name: str | None = None,
                 batch_overhead_tokens: int | None = None):
        if max_batch_size < 1 or max_batch_tokens < 1 or max_wait_ms < 0:
            raise InputError("max_batch_size and max_batch_tokens must be >= 1 and max_wait_ms >= 0")
        self.encoder = encoder
        self.max_batch_tokens = int(max_batch_tokens)
        self.max_batch_size = int(max_batch_size)
        self.max_wait_ms = float(max_wait_ms)
        self.threads = threads or physical_cores()
        # Cutting batches by padded tokens + calls: short texts are not padded to a long one when a call of their
        # own is cheaper (on a CPU, padding 8 mixed sentences to the longest costs more than a second call).
        self.batch_overhead_tokens = (batch_overhead_tokens if batch_overhead_tokens is not None
                                      else getattr(encoder, "batch_overhead_tokens", None))
        self._window = self.max_batch_size * 4  # texts sorted together per round: fuller batches, bounded latency
        self._queue: queue.SimpleQueue[_Request | None] = queue.SimpleQueue()
        self._lock = threading.Lock()  # closed flag, queueing and metrics
        self._closed = False
        self._requests = 0
        self._in_flight = 0
        self._waiting_texts = 0
        self._backlog_tokens = 0  # tokens queued or in the running round, not yet run: what a newcomer waits for
        self._tokens_run = 0
        self._texts = 0
        self._batches = 0
        self._busy = 0.0
        self._cancelled = 0  # requests dropped because their caller gave up
        self._cancelled_texts = 0  # their texts the model never ran
        self._sizes: collections.deque[int] = collections.deque(maxlen=1024)
        self._expect = 1  # requests resolved by the last round: how many callers are likely to come back at once
        self._thread = threading.Thread(target=self._serve, name=name or f"embedops-worker[{encoder.name}]",
                                        daemon=True)
        self._thread.start()

    @classmethod
    def load(cls, model: Any = None, *, backend: str = "torch", resolver: Any = None, **options: Any) -> ModelWorker:
        """Load a model (see `load_encoder`) and start a worker for it; worker options are split off by name."""
        from embedops.models import load_encoder

        keys = ("max_batch_tokens", "max_batch_size", "max_wait_ms", "threads", "name", "batch_overhead_tokens")
        mine = {k: options.pop(k) for k in keys if k in options}
        if backend == "onnx" and "threads" in mine:
            options["threads"] = mine["threads"]
        return cls(load_encoder(model, backend=backend, resolver=resolver, **options), **mine)

    # -- the Encoder protocol, delegated -------------------------------------------------------------------------
    name = property(lambda self: self.encoder.name, doc="Model name.")
    dimension = property(lambda self: self.encoder.dimension, doc="Model output dimension.")
    max_tokens = property(lambda self: self.encoder.max_tokens, doc="Truncation length in tokens.")
    modality = property(lambda self: self.encoder.modality, doc="'text' or 'image'.")

    @property
    def output_dimension(self) -> int:
        """Dimension of returned vectors (after Matryoshka truncation, if set)."""
        return self.encoder.output_dimension

    @property
    def fingerprint(self) -> str:
        """The encoder's content fingerprint (a worker does not change the vector space)."""
        return self.encoder.fingerprint

    def spec(self) -> dict[str, Any]:
        """The encoder's spec."""
        return self.encoder.spec()

    def __getattr__(self, attr: str) -> Any:
        # Everything else an encoder offers (tokenizer, prompts, stats, truncated_count ...) reads through.
        if attr == "encoder":
            raise AttributeError(attr)
        return getattr(self.encoder, attr)

    def encode(self, inputs: Sequence[Any], *, batch_size: int = 32, normalize: bool = True,
               kind: InputKind | None = None, show_progress: bool = False,
               precision: OutputPrecision = "float32", max_batch_tokens: int | None = None) -> np.ndarray:
        """Embed `inputs` through the worker; rows follow the input order (batch_size: the worker's own batching)."""
        return self.encode_with_usage(inputs, batch_size=batch_size, normalize=normalize, kind=kind,
                                      show_progress=show_progress, precision=precision)[0]

    def encode_with_usage(self, inputs: Sequence[Any], *, batch_size: int = 32, normalize: bool = True,
                          kind: InputKind | None = None, show_progress: bool = False,
                          precision: OutputPrecision = "float32",
                          max_batch_tokens: int | None = None) -> tuple[np.ndarray, Usage]:
        """`encode` plus this call's own usage (its inputs, tokens and truncated inputs, whoever shared its batches)."""
        enc = self.encoder
        if threading.current_thread() is self._thread:  # called from the model thread itself: queueing would deadlock
            return enc.encode_with_usage(inputs, batch_size=batch_size, normalize=normalize, kind=kind,
                                         precision=precision)
        started = time.perf_counter()
        if precision in RANGED and not normalize:
            raise InputError(f"{precision} output is calibrated on normalised vectors; pass normalize=True")
        prep = enc.prepare(inputs, kind)  # InputError for this caller only, before anything is queued
        if not prep.texts:
            return enc.finish(np.zeros((0, enc.dimension), dtype=np.float32), normalize, precision), Usage()
        if precision in RANGED:
            enc.output_ranges()  # calibrate once, here, rather than on the model thread while others wait
        cancel = _CANCEL.get()
        if cancel is not None and cancel.is_set():
            raise RequestCancelled("the caller gave up before its texts were queued")
        request = _Request(prep, Future(), np.empty((len(prep.texts), enc.dimension), dtype=np.float32),
                           cancel=cancel, tokens_left=int(prep.clipped.sum()))
        with self._lock:
            if self._closed:
                raise ModelError(f"the model worker for {enc.name!r} is closed")
            self._requests += 1
            self._in_flight += 1
            self._waiting_texts += request.size
            self._backlog_tokens += request.tokens_left
            self._queue.put(request)
        try:
            raw = request.future.result()
        finally:
            with self._lock:
                self._in_flight -= 1
        vectors = enc.finish(raw, normalize, precision)
        usage = prep.usage(time.perf_counter() - started)
        enc.record_usage(usage)
        return vectors, usage

    # -- metrics -------------------------------------------------------------------------------------------------
    @property
    def queue_depth(self) -> int:
        """Texts submitted and not yet handed to a batch."""
        with self._lock:
            return self._waiting_texts

    def estimated_wait(self) -> float | None:
        """Seconds the model needs for the tokens queued or running now, at its measured tokens per busy second
        (None before its first batch): how long a request arriving now would wait before its own texts run."""
        with self._lock:
            if self._busy <= 0 or self._tokens_run <= 0:
                return None
            return self._backlog_tokens * self._busy / self._tokens_run

    @property
    def batches_run(self) -> int:
        """Batches the model has run."""
        with self._lock:
            return self._batches

    @property
    def batch_sizes(self) -> list[int]:
        """Sizes of the most recent batches (up to 1024), oldest first."""
        with self._lock:
            return list(self._sizes)

    def metrics(self) -> dict[str, Any]:
        """Queue depth, requests, texts, batches and batch sizes, busy time: for a metrics endpoint."""
        with self._lock:
            sizes = list(self._sizes)
            return {"queue_depth": self._waiting_texts, "in_flight_requests": self._in_flight,
                    "requests": self._requests, "texts": self._texts, "batches": self._batches,
                    "mean_batch_size": round(self._texts / self._batches, 2) if self._batches else 0.0,
                    "max_batch_size_seen": max(sizes, default=0), "recent_batch_sizes": sizes[-32:],
                    "busy_seconds": round(self._busy, 3), "backlog_tokens": self._backlog_tokens,
                    "tokens_run": self._tokens_run, "cancelled_requests": self._cancelled,
                    "cancelled_texts": self._cancelled_texts, "closed": self._closed}

    # -- lifecycle -----------------------------------------------------------------------------------------------
    @property
    def closed(self) -> bool:
        """Whether close() was called (or the worker thread stopped)."""
        with self._lock:
            return self._closed

    def close(self, timeout: float | None = 30.0) -> None:
        """Stop the worker thread: the running batch finishes, every caller still waiting gets a ModelError."""
        with self._lock:
            if not self._closed:
                self._closed = True
                self._queue.put(None)
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout)

    def __enter__(self) -> ModelWorker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return (f"ModelWorker({self.encoder.name!r}, backend={getattr(self.encoder, 'backend', '?')}, "
                f"max_batch_size={self.max_batch_size}, closed={self.closed})")

    # -- the model thread ----------------------------------------------------------------------------------------
    def _serve(self) -> None:
        pending: collections.deque[_Request] = collections.deque()
        reason = "the model worker was closed before this request ran"
        try:
            self.encoder.set_intra_op_threads(self.threads)
            while True:
                if not pending:
                    first = self._queue.get()
                    if first is None:
                        break
                    pending.append(first)
                if not self._gather(pending):
                    break
                self._run_window(pending)
                # A partly scheduled request keeps its place at the front; fully scheduled ones are done.
                pending = collections.deque(r for r in pending if r.cursor < r.size)
        except _Closed:
            pass
        except BaseException as exc:  # a bug in the worker must not leave callers waiting forever
            log.exception("model worker for %s stopped", self.encoder.name)
            reason = f"the model worker stopped: {exc}"
        finally:
            with self._lock:
                self._closed = True
                while True:  # nothing can be queued after this: submit checks `_closed` under the same lock
                    try:
                        req = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if req is not None:
                        pending.append(req)
            for req in pending:
                self._fail(req, ModelError(reason))

    def _gather(self, pending: collections.deque[_Request]) -> bool:
        """Take waiting requests, and wait up to max_wait_ms for more while a batch is not full; False on close.

        The wait ends early once as many requests wait as the last round resolved: callers that just got their
        vectors usually come straight back, so a closed loop of N callers runs batches of N with no idle wait.
        """
        deadline = time.monotonic() + self.max_wait_ms / 1000
        while sum(r.size - r.cursor for r in pending) < self.max_batch_size:
            try:
                req = self._queue.get_nowait()
            except queue.Empty:
                remaining = deadline - time.monotonic()
                if len(pending) >= self._expect or remaining <= 0:
                    return True
                try:
                    req = self._queue.get(timeout=remaining)
                except queue.Empty:
                    return True
            if req is None:
                return False
            pending.append(req)
        return True

    def _take_window(self, pending: collections.deque[_Request]) -> list[tuple[_Request, int]]:
        """Texts for this round: first a share for every waiting caller (so a huge request cannot starve small
        ones), then more in arrival order, up to the window size. Callers who gave up are dropped first."""
        for r in pending:
            if r.cancelled and not r.failed:
                self._drop(r)
        window: list[tuple[_Request, int]] = []
        for share in (self.max_batch_size, self._window):
            for r in pending:
                take = min(r.size - r.cursor, share, self._window - len(window))
                if take > 0:
                    window.extend((r, i) for i in range(r.cursor, r.cursor + take))
                    r.cursor += take
        with self._lock:
            self._waiting_texts -= len(window)
        return window

    def _run_window(self, pending: collections.deque[_Request]) -> None:
        window = self._take_window(pending)
        # Decays by one per round, so a round that caught only part of the callers does not halve the next batch.
        self._expect = max(1, len({id(r) for r, _ in window}), self._expect - 1)
        lengths = np.fromiter((r.prepared.clipped[i] for r, i in window), dtype=np.int64, count=len(window))
        for batch in plan_batches(lengths, self.max_batch_size, self.max_batch_tokens, self.batch_overhead_tokens):
            if self._closed:  # read without the lock: a stale False only runs one more batch
                raise _Closed
            for j in batch.indices:  # a caller may give up while earlier batches of this round run
                r = window[j][0]
                if r.cancelled and not r.failed:
                    self._drop(r)
            kept = [j for j in batch.indices if not window[j][0].failed]
            if not kept:
                continue
            members = [window[j] for j in kept]
            texts = [r.prepared.texts[i] for r, i in members]
            items = members[0][0].prepared.items
            items = None if items is None else [r.prepared.items[i] for r, i in members]
            started = time.perf_counter()
            try:
                vectors = self.encoder.run_batch(texts, np.arange(len(texts)), items)
            except Exception as exc:  # noqa: BLE001 - the error belongs to the callers in this batch only
                for r in {id(r): r for r, _ in members}.values():
                    self._fail(r, exc)
                continue
            for j in kept:
                window[j][0].tokens_left -= int(lengths[j])
            ran = int(lengths[kept].sum())
            with self._lock:
                self._batches += 1
                self._texts += len(texts)
                self._tokens_run += ran
                self._backlog_tokens -= ran
                self._busy += time.perf_counter() - started
                self._sizes.append(len(texts))
            self.encoder.record_usage(batches=1)
            for (r, i), row in zip(members, vectors, strict=True):
                r.raw[i] = row
                r.done += 1
                if r.done == r.size and not r.future.done():
                    r.future.set_result(r.raw)

    def _drop(self, r: _Request) -> None:
        """Fail a request whose caller gave up; its texts not yet run are never run."""
        with self._lock:
            self._cancelled += 1
            self._cancelled_texts += r.size - r.done
        self._fail(r, RequestCancelled(f"the caller gave up; {r.size - r.done} of its {r.size} texts were not run"))

    def _fail(self, r: _Request, exc: BaseException) -> None:
        """Fail one caller's request (its other texts are skipped); a foreign exception is wrapped per caller."""
        if not isinstance(exc, EmbedopsError):
            wrapped = ModelError(f"encoding failed in the model worker: {type(exc).__name__}: {exc}")
            wrapped.__cause__ = exc
            exc = wrapped
        r.failed = True
        with self._lock:
            self._waiting_texts -= r.size - r.cursor
            self._backlog_tokens -= r.tokens_left
        r.tokens_left = 0
        r.cursor = r.size
        if not r.future.done():
            r.future.set_exception(exc)
