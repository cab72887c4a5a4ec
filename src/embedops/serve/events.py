"""The server's side of the event log: open it at start-up, record requests and errors without ever slowing or
failing them (the log's queue is bounded; a full queue counts drops in /metrics)."""

from __future__ import annotations

import logging
from typing import Any

from embedops.errors import EmbedopsError
from embedops.serve.logs import request_id

log = logging.getLogger("embedops.serve")

# Routes whose requests (and failures) are logged: searches, experiment searches and embeddings.
_LOGGED = {"/v1/embeddings": "embed"}


def open_event_log(state: Any) -> None:
    """Open the project's event log for `state` (off when `serving.events` is empty); a broken database is logged and
    serving goes on without events."""
    try:
        state.events = state.project.event_log(required=False)
    except EmbedopsError as exc:
        state.events, state.events_error = None, str(exc)
        log.error("event log unavailable, serving without it: %s", exc)
        return
    if state.events is not None:
        from embedops.events import register_event_metrics

        register_event_metrics(state.events, state.metrics.registry)


def record(state: Any, **fields: Any) -> str | None:
    """Queue one request event (never blocks, never raises); returns the request id it was logged under."""
    events = getattr(state, "events", None)
    rid = request_id.get() or ""
    if events is None:
        return rid or None
    try:
        from embedops.events import RequestEvent

        events.log(RequestEvent(request_id=rid, **fields))
    except Exception:  # noqa: BLE001 - logging must never fail a request
        log.exception("could not queue an event")
    return rid


def record_error(state: Any, path: str, status: int, code: str) -> None:
    """A failed search or embeddings request, as an event with its error type."""
    kind = _LOGGED.get(path)
    if kind is None and path.startswith(("/v1/collections/", "/v1/experiments/")) and path.endswith("/search"):
        kind = "search"
    if kind is None or getattr(state, "events", None) is None:
        return
    collection = path.split("/")[3] if path.startswith("/v1/collections/") else None
    record(state, kind=kind, route=path, status=status, error=code, collection=collection)
