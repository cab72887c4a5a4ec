"""The events the log holds: one request (search or embeddings), one piece of feedback, one monitoring alert, one
administrative action (audit).

Plain slotted dataclasses rather than pydantic models: the server builds one per request on the hot path, and the
HTTP layer already validated the fields.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

RequestKind = Literal["search", "embed"]
FeedbackKind = Literal["click", "relevant", "irrelevant"]
FEEDBACK_KINDS: tuple[str, ...] = ("click", "relevant", "irrelevant")


@dataclass(slots=True)
class RequestEvent:
    """One served request: who, which model version, how long, what came back (search) and what went wrong."""

    request_id: str
    kind: RequestKind = "search"
    model: str = ""
    model_version: str = ""  # a registry version or the encoder fingerprint: what drift and quality are grouped by
    collection: str | None = None
    route: str = ""
    latency_ms: float = 0.0
    n_inputs: int = 1
    tokens: int = 0
    truncated: int = 0  # inputs cut at the model's max tokens
    status: int = 200
    error: str | None = None  # error type ("invalid_request_error", "InputError" ...); None when it succeeded
    user_id: str | None = None
    session_id: str | None = None
    # search only
    query: str | None = None
    k: int | None = None
    mode: str | None = None
    result_ids: list[str] = field(default_factory=list)
    scores: list[float] = field(default_factory=list)
    # The query embedding, stored as float16 (768 bytes at 384-d): drift needs one vector per search, and
    # re-encoding a window later would need the exact model that served it.
    query_vector: np.ndarray | None = field(default=None, repr=False, compare=False)
    time: float = field(default_factory=time.time)  # seconds since the epoch, UTC
    # experiments: which test served this search, which arm, and (interleaving) the team of each rank
    experiment: str | None = None
    arm: str | None = None
    teams: list[str] = field(default_factory=list)

    def to_row(self) -> dict[str, Any]:
        """The database row of this event (vector as float16 bytes)."""
        vec = None if self.query_vector is None else np.asarray(self.query_vector, dtype=np.float16).tobytes()
        return {
            "request_id": self.request_id, "kind": self.kind, "time": float(self.time), "model": self.model,
            "model_version": self.model_version, "collection": self.collection, "route": self.route,
            "latency_ms": float(self.latency_ms), "n_inputs": int(self.n_inputs), "tokens": int(self.tokens),
            "truncated": int(self.truncated), "status": int(self.status), "error": self.error,
            "user_id": self.user_id, "session_id": self.session_id, "query": self.query, "k": self.k,
            "mode": self.mode, "result_ids": _dump_list(self.result_ids), "scores": _dump_list(self.scores),
            "query_vector": vec, "experiment": self.experiment, "arm": self.arm, "teams": _dump_list(self.teams),
        }

    @classmethod
    def from_row(cls, row: Any) -> RequestEvent:
        """Rebuild an event from a database row mapping."""
        vec = row["query_vector"]
        return cls(
            request_id=row["request_id"], kind=row["kind"], time=row["time"], model=row["model"] or "",
            model_version=row["model_version"] or "", collection=row["collection"], route=row["route"] or "",
            latency_ms=row["latency_ms"], n_inputs=row["n_inputs"], tokens=row["tokens"], truncated=row["truncated"],
            status=row["status"], error=row["error"], user_id=row["user_id"], session_id=row["session_id"],
            query=row["query"], k=row["k"], mode=row["mode"], result_ids=_load_list(row["result_ids"]),
            scores=[float(s) for s in _load_list(row["scores"])],
            query_vector=None if vec is None else np.frombuffer(bytes(vec), dtype=np.float16).astype(np.float32),
            experiment=_get(row, "experiment"), arm=_get(row, "arm"), teams=_load_list(_get(row, "teams")),
        )


@dataclass(slots=True)
class FeedbackEvent:
    """A user's signal about one result of a served search: a click (with dwell time) or a relevance judgement."""

    request_id: str
    kind: FeedbackKind
    doc_id: str
    rank: int | None = None  # 1-based position in the result list the user saw
    dwell_ms: float | None = None
    user_id: str | None = None
    session_id: str | None = None
    time: float = field(default_factory=time.time)

    def __post_init__(self) -> None:
        if self.kind not in FEEDBACK_KINDS:
            from embedops.errors import InputError

            raise InputError(f"unknown feedback kind {self.kind!r}; use one of {', '.join(FEEDBACK_KINDS)}",
                             where="feedback.kind")

    def to_row(self) -> dict[str, Any]:
        """The database row of this event."""
        return {"request_id": self.request_id, "kind": self.kind, "doc_id": self.doc_id, "rank": self.rank,
                "dwell_ms": self.dwell_ms, "user_id": self.user_id, "session_id": self.session_id,
                "time": float(self.time)}

    @classmethod
    def from_row(cls, row: Any) -> FeedbackEvent:
        """Rebuild an event from a database row mapping."""
        return cls(request_id=row["request_id"], kind=row["kind"], doc_id=row["doc_id"], rank=row["rank"],
                   dwell_ms=row["dwell_ms"], user_id=row["user_id"], session_id=row["session_id"], time=row["time"])


@dataclass(slots=True)
class AlertEvent:
    """A monitoring alert (a drifted window, a quality signal past its limit) with the numbers behind it."""

    kind: str  # "drift", ...
    message: str
    model_version: str = ""
    window_start: float | None = None
    window_end: float | None = None
    details: dict[str, Any] = field(default_factory=dict)
    time: float = field(default_factory=time.time)

    def to_row(self) -> dict[str, Any]:
        """The database row of this event (details as JSON)."""
        return {"kind": self.kind, "message": self.message, "model_version": self.model_version,
                "window_start": self.window_start, "window_end": self.window_end,
                "details": json.dumps(self.details, default=_json_default), "time": float(self.time)}

    @classmethod
    def from_row(cls, row: Any) -> AlertEvent:
        """Rebuild an event from a database row mapping."""
        return cls(kind=row["kind"], message=row["message"], model_version=row["model_version"] or "",
                   window_start=row["window_start"], window_end=row["window_end"],
                   details=json.loads(row["details"] or "{}"), time=row["time"])


@dataclass(slots=True)
class AuditEvent:
    """An administrative action (promote, rollback ...): who asked, on what, from which version to which, outcome."""

    action: str  # "promote", "rollback", ...
    target: str  # what was acted on: an alias such as "champion"
    version: str | None = None  # the version it points at afterwards (or was asked to point at, if refused)
    previous: str | None = None  # the version it pointed at before
    outcome: str = "done"  # "done" or "refused"
    actor: str = ""  # who asked: the client address of an HTTP call, "cli", ...
    request_id: str | None = None
    details: dict[str, Any] = field(default_factory=dict)  # reason given, force, gate summary, refusal message
    time: float = field(default_factory=time.time)

    def to_row(self) -> dict[str, Any]:
        """The database row of this event (details as JSON)."""
        return {"action": self.action, "target": self.target, "version": self.version, "previous": self.previous,
                "outcome": self.outcome, "actor": self.actor, "request_id": self.request_id,
                "details": json.dumps(self.details, default=_json_default), "time": float(self.time)}

    @classmethod
    def from_row(cls, row: Any) -> AuditEvent:
        """Rebuild an event from a database row mapping."""
        return cls(action=row["action"], target=row["target"], version=row["version"], previous=row["previous"],
                   outcome=row["outcome"], actor=row["actor"] or "", request_id=row["request_id"],
                   details=json.loads(row["details"] or "{}"), time=row["time"])


Event = RequestEvent | FeedbackEvent | AlertEvent | AuditEvent


def _get(row: Any, key: str) -> Any:
    """A column that older exports may lack."""
    try:
        return row[key]
    except (KeyError, IndexError):
        return None


def _dump_list(values: list[Any]) -> str:
    return json.dumps([v if isinstance(v, str) else float(v) for v in values]) if values else "[]"


def _load_list(text: str | None) -> list[Any]:
    return json.loads(text) if text else []


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)
