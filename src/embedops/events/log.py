"""`EventLog`: events appended off the request path by one writer thread, read back by time window and version.

`log()` only appends to a bounded in-memory queue under a lock: it never blocks on the database and never raises.
When the queue is full the event is counted in `dropped_total`; when the database fails (locked, corrupt, server
down) the batch is counted in `failed_total` and the reason is logged once per outage, so a broken event store costs
the serving path nothing.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import sqlalchemy as sa

from embedops.events.store import (
    ALERTS,
    AUDIT,
    FEEDBACK,
    REQUESTS,
    TABLES,
    EventLogError,
    describe_error,
    open_database,
)
from embedops.events.types import AlertEvent, AuditEvent, Event, FeedbackEvent, RequestEvent

logger = logging.getLogger("embedops.events")

_TABLE_OF = {RequestEvent: REQUESTS, FeedbackEvent: FEEDBACK, AlertEvent: ALERTS, AuditEvent: AUDIT}


def _seconds(span: timedelta | float) -> float:
    return span.total_seconds() if isinstance(span, timedelta) else float(span)


def _epoch(t: datetime | float | None) -> float | None:
    return t.timestamp() if isinstance(t, datetime) else (None if t is None else float(t))


class EventLog:
    """The event log of a deployment: `log()` from any thread, reads and retention from any thread.

    `url`: a SQLite file path (the default store) or a SQLAlchemy URL such as `postgresql+psycopg://user@host/db`.
    `max_queue`: events held in memory before new ones are dropped. `retention`: events older than this are pruned
    by the writer thread every `prune_interval_s` (None keeps everything).
    """

    def __init__(self, url: str | Path, *, max_queue: int = 10_000, batch_size: int = 512,
                 retention: timedelta | float | None = None, prune_interval_s: float = 3600.0,
                 busy_timeout_s: float = 5.0):
        if max_queue < 1 or batch_size < 1:
            raise EventLogError(f"max_queue and batch_size must be >= 1 (got {max_queue}, {batch_size})")
        self.engine, self.name = open_database(url, busy_timeout_s=busy_timeout_s)
        self.max_queue = max_queue
        self.batch_size = batch_size
        self.retention_s = None if retention is None else _seconds(retention)
        self.prune_interval_s = prune_interval_s
        self._cond = threading.Condition()
        self._queue: collections.deque[Event] = collections.deque()
        self._in_flight: list[Event] = []
        self._written = 0
        self._dropped = 0
        self._failed = 0
        self._last_error: str | None = None
        self._closed = False
        self._next_prune = 0.0 if self.retention_s is not None else float("inf")
        self._writer = threading.Thread(target=self._run, name=f"embedops-events-{Path(self.name).name}",
                                        daemon=True)
        self._writer.start()

    # -- writing ---------------------------------------------------------------------------------------------------

    def log(self, event: Event) -> bool:
        """Queue an event for the writer; False (and counted as dropped) when the queue is full or the log closed."""
        with self._cond:
            if self._closed or len(self._queue) >= self.max_queue:
                self._dropped += 1
                return False
            self._queue.append(event)
            self._cond.notify()
        return True

    def flush(self, timeout: float | None = 30.0) -> bool:
        """Wait until every queued event is written (or failed); False if `timeout` seconds pass first."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while self._queue or self._in_flight:
                if not self._writer.is_alive():
                    return False
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return False
                self._cond.wait(left)
        return True

    def close(self, timeout: float | None = 30.0) -> None:
        """Drain the queue, stop the writer thread and release the database."""
        self.flush(timeout)
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._writer.join(timeout)
        self.engine.dispose()

    def __enter__(self) -> EventLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._closed:
                    wait = self._next_prune - time.time()
                    if wait <= 0:
                        break
                    self._cond.wait(min(wait, 3600.0))
                if not self._queue and self._closed:
                    return
                n = min(len(self._queue), self.batch_size)
                self._in_flight = [self._queue.popleft() for _ in range(n)]
                batch = self._in_flight
            if batch:
                self._write(batch)
            if time.time() >= self._next_prune:
                self._scheduled_prune()
            with self._cond:
                self._in_flight = []
                self._cond.notify_all()

    def _write(self, batch: list[Event]) -> None:
        groups: dict[sa.Table, list[dict[str, Any]]] = {}
        try:
            for event in batch:
                groups.setdefault(_TABLE_OF[type(event)], []).append(event.to_row())
            with self.engine.begin() as conn:  # one transaction per batch: all of it lands or none
                for table, rows in groups.items():
                    conn.execute(table.insert(), rows)
        except Exception as exc:  # a broken store must never reach the callers of log()
            reason = describe_error(exc)
            with self._cond:
                self._failed += len(batch)
                first = self._last_error is None
                self._last_error = reason
            if first:
                logger.error("event log %s: cannot write %d events: %s; events are counted as failed until it "
                             "recovers", self.name, len(batch), reason)
            return
        with self._cond:
            self._written += len(batch)
            recovered, self._last_error = self._last_error, None
        if recovered:
            logger.warning("event log %s: writing again after: %s", self.name, recovered)

    def _scheduled_prune(self) -> None:
        self._next_prune = time.time() + self.prune_interval_s
        try:
            removed = self.prune(self.retention_s or 0.0)
            if any(removed.values()):
                logger.info("event log %s: retention removed %s", self.name, removed)
        except EventLogError as exc:
            logger.error("%s", exc)

    # -- counters --------------------------------------------------------------------------------------------------

    @property
    def written_total(self) -> int:
        """Events committed to the database."""
        return self._written

    @property
    def dropped_total(self) -> int:
        """Events refused because the queue was full (or the log closed)."""
        return self._dropped

    @property
    def failed_total(self) -> int:
        """Events lost because the database refused the batch (locked, corrupt, unreachable)."""
        return self._failed

    @property
    def queue_depth(self) -> int:
        """Events waiting in memory, the batch being written included."""
        with self._cond:
            return len(self._queue) + len(self._in_flight)

    @property
    def last_error(self) -> str | None:
        """Why the latest batch failed; None once a batch is written again."""
        return self._last_error

    def stats(self) -> dict[str, Any]:
        """All counters at once (for /metrics and health checks)."""
        with self._cond:
            return {"written_total": self._written, "dropped_total": self._dropped, "failed_total": self._failed,
                    "queue_depth": len(self._queue) + len(self._in_flight), "in_flight": len(self._in_flight),
                    "max_queue": self.max_queue,
                    "last_error": self._last_error}

    # -- reading ---------------------------------------------------------------------------------------------------

    def _select(self, stmt: sa.Select) -> list[Any]:
        try:
            with self.engine.connect() as conn:
                return list(conn.execute(stmt).mappings())
        except sa.exc.SQLAlchemyError as exc:
            raise EventLogError(f"cannot read the event database: {describe_error(exc)}", where=self.name) from exc

    @staticmethod
    def _window(stmt: sa.Select, table: sa.Table, start: datetime | float | None,
                end: datetime | float | None) -> sa.Select:
        if (s := _epoch(start)) is not None:
            stmt = stmt.where(table.c.time >= s)
        if (e := _epoch(end)) is not None:
            stmt = stmt.where(table.c.time < e)
        return stmt

    def requests(self, start: datetime | float | None = None, end: datetime | float | None = None, *,
                 model_version: str | None = None, kind: str | None = None, collection: str | None = None,
                 limit: int | None = None, experiment: str | None = None) -> list[RequestEvent]:
        """Request events with start <= time < end (epoch seconds or datetimes), oldest first."""
        stmt = self._window(sa.select(REQUESTS), REQUESTS, start, end)
        for column, value in (("model_version", model_version), ("kind", kind), ("collection", collection),
                              ("experiment", experiment)):
            if value is not None:
                stmt = stmt.where(REQUESTS.c[column] == value)
        stmt = stmt.order_by(REQUESTS.c.time, REQUESTS.c.id).limit(limit)
        return [RequestEvent.from_row(r) for r in self._select(stmt)]

    def query_vectors(self, start: datetime | float | None = None, end: datetime | float | None = None, *,
                      model_version: str | None = None, collection: str | None = None) -> np.ndarray:
        """The stored query embeddings of search events in the window, as a float32 (n, dim) array."""
        stmt = self._window(sa.select(REQUESTS.c.query_vector), REQUESTS, start, end)
        stmt = stmt.where(REQUESTS.c.kind == "search", REQUESTS.c.query_vector.is_not(None))
        if model_version is not None:
            stmt = stmt.where(REQUESTS.c.model_version == model_version)
        if collection is not None:
            stmt = stmt.where(REQUESTS.c.collection == collection)
        rows = self._select(stmt.order_by(REQUESTS.c.time, REQUESTS.c.id))
        if not rows:
            return np.zeros((0, 0), dtype=np.float32)
        blobs = [bytes(r["query_vector"]) for r in rows]
        dim = len(blobs[0]) // 2
        blobs = [b for b in blobs if len(b) == 2 * dim]  # a model change mid-window would mix dimensions
        return np.frombuffer(b"".join(blobs), dtype=np.float16).reshape(len(blobs), dim).astype(np.float32)

    def model_versions(self, start: datetime | float | None = None,
                       end: datetime | float | None = None) -> list[str]:
        """The model versions that served requests in the window."""
        stmt = self._window(sa.select(REQUESTS.c.model_version).distinct(), REQUESTS, start, end)
        return sorted(r["model_version"] or "" for r in self._select(stmt))

    def time_range(self) -> tuple[float, float] | None:
        """(first, last) request time in the log, or None when it holds no requests."""
        row = self._select(sa.select(sa.func.min(REQUESTS.c.time).label("a"), sa.func.max(REQUESTS.c.time).label("b")))
        return None if row[0]["a"] is None else (float(row[0]["a"]), float(row[0]["b"]))

    def feedback(self, start: datetime | float | None = None, end: datetime | float | None = None, *,
                 request_id: str | None = None) -> list[FeedbackEvent]:
        """Feedback events in the window (by feedback time), oldest first."""
        stmt = self._window(sa.select(FEEDBACK), FEEDBACK, start, end)
        if request_id is not None:
            stmt = stmt.where(FEEDBACK.c.request_id == request_id)
        return [FeedbackEvent.from_row(r) for r in self._select(stmt.order_by(FEEDBACK.c.time, FEEDBACK.c.id))]

    def feedback_for(self, request_id: str) -> list[FeedbackEvent]:
        """All feedback given on one request."""
        return self.feedback(request_id=request_id)

    def searches_with_feedback(self, start: datetime | float | None = None, end: datetime | float | None = None, *,
                               model_version: str | None = None, experiment: str | None = None
                               ) -> list[tuple[RequestEvent, list[FeedbackEvent]]]:
        """Search requests in the window (by request time), each with its feedback (possibly none), oldest first."""
        searches = self.requests(start, end, model_version=model_version, kind="search", experiment=experiment)
        if not searches:
            return []
        stmt = sa.select(FEEDBACK).join(REQUESTS, REQUESTS.c.request_id == FEEDBACK.c.request_id)
        stmt = self._window(stmt, REQUESTS, start, end).where(REQUESTS.c.kind == "search")
        if model_version is not None:
            stmt = stmt.where(REQUESTS.c.model_version == model_version)
        if experiment is not None:
            stmt = stmt.where(REQUESTS.c.experiment == experiment)
        by_request: dict[str, list[FeedbackEvent]] = {}
        for row in self._select(stmt.order_by(FEEDBACK.c.time, FEEDBACK.c.id)):
            by_request.setdefault(row["request_id"], []).append(FeedbackEvent.from_row(row))
        return [(s, by_request.get(s.request_id, [])) for s in searches]

    def known_request(self, request_id: str) -> bool:
        """Whether a request with this id was logged (still queued counts): feedback for others is refused."""
        with self._cond:
            pending = [*self._queue, *self._in_flight]
        if any(isinstance(e, RequestEvent) and e.request_id == request_id for e in pending):
            return True
        stmt = sa.select(REQUESTS.c.id).where(REQUESTS.c.request_id == request_id).limit(1)
        return bool(self._select(stmt))

    def alerts(self, start: datetime | float | None = None, end: datetime | float | None = None, *,
               kind: str | None = None) -> list[AlertEvent]:
        """Alert events in the window, oldest first."""
        stmt = self._window(sa.select(ALERTS), ALERTS, start, end)
        if kind is not None:
            stmt = stmt.where(ALERTS.c.kind == kind)
        return [AlertEvent.from_row(r) for r in self._select(stmt.order_by(ALERTS.c.time, ALERTS.c.id))]

    def audit(self, start: datetime | float | None = None, end: datetime | float | None = None, *,
              action: str | None = None, limit: int | None = None) -> list[AuditEvent]:
        """Administrative actions (promote, rollback) in the window, newest first (at most `limit`)."""
        stmt = self._window(sa.select(AUDIT), AUDIT, start, end)
        if action is not None:
            stmt = stmt.where(AUDIT.c.action == action)
        stmt = stmt.order_by(AUDIT.c.time.desc(), AUDIT.c.id.desc()).limit(limit)
        return [AuditEvent.from_row(r) for r in self._select(stmt)]

    def count(self, table: str = "requests") -> int:
        """Rows in one table ('requests', 'feedback' or 'alerts')."""
        t = _table(table)
        return int(self._select(sa.select(sa.func.count().label("n")).select_from(t))[0]["n"])

    # -- retention and export --------------------------------------------------------------------------------------

    def prune(self, older_than: timedelta | float | None = None, *, before: datetime | float | None = None
              ) -> dict[str, int]:
        """Delete events older than `older_than` (a timedelta or seconds) or before an absolute time; rows removed."""
        if (older_than is None) == (before is None):
            raise EventLogError("prune needs exactly one of older_than= and before=")
        cutoff = time.time() - _seconds(older_than) if older_than is not None else _epoch(before)
        try:
            with self.engine.begin() as conn:
                return {name: conn.execute(sa.delete(t).where(t.c.time < cutoff)).rowcount
                        for name, t in TABLES.items()}
        except sa.exc.SQLAlchemyError as exc:
            raise EventLogError(f"cannot prune the event database: {describe_error(exc)}", where=self.name) from exc

    def export_parquet(self, path: str | Path, *, table: str = "requests", start: datetime | float | None = None,
                       end: datetime | float | None = None) -> int:
        """Write one table's events in the window to a Parquet file (atomically); rows written."""
        from embedops.events.export import write_parquet

        t = _table(table)
        stmt = self._window(sa.select(t), t, start, end).order_by(t.c.time, t.c.id)
        try:
            with self.engine.connect() as conn:
                return write_parquet(path, table, conn.execute(stmt).mappings())
        except sa.exc.SQLAlchemyError as exc:
            raise EventLogError(f"cannot read the event database: {describe_error(exc)}", where=self.name) from exc


def _table(name: str) -> sa.Table:
    if name not in TABLES:
        raise EventLogError(f"unknown event table {name!r}; use one of {', '.join(TABLES)}")
    return TABLES[name]
