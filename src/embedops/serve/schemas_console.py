"""Bodies of the routes the web console needs beyond the core API: monitor report, experiment list, registry
actions, audit trail and search explanations (every other client may call them too)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")  # a misspelt field is an error, as in every request body


class MonitorResponse(BaseModel):
    """GET /v1/monitor: the report of `Project.monitor` (what `embedops monitor --json` writes), plus the alert
    thresholds the project states and the alerts logged in the span."""

    object: Literal["monitor_report"] = "monitor_report"
    start: float
    end: float
    window_s: float
    created: float
    versions: list[str] = Field(description="Model versions seen in the span.")
    windows: list[dict[str, Any]] = Field(description="Oldest first: {quality, drift, n_vectors} per version and "
                                                      "window; drift carries its own thresholds.")
    references: dict[str, dict[str, Any]] = Field(default_factory=dict)
    alerts: list[dict[str, Any]] = Field(default_factory=list, description="Alerts this call raised (alert=true).")
    logged_alerts: list[dict[str, Any]] = Field(default_factory=list, description="Alerts in the event log for "
                                                                                  "the span, newest first.")
    thresholds: dict[str, float] = Field(default_factory=dict, description="Limits from the project's success "
                                                                           "criteria: p50/p95/p99_latency_ms.")


class ExperimentOut(BaseModel):
    """One experiment: its definition and, when the event log can be read, its current report."""

    name: str
    status: str
    mode: str
    metric: str
    k: int
    split: float
    alpha: float
    champion: dict[str, str]
    challenger: dict[str, str]
    stopping: dict[str, Any]
    started_at: str
    stopped_at: str | None = None
    report: dict[str, Any] | None = Field(None, description="As GET /v1/experiments/{name} answers: winner, "
                                                            "effect, ci, p_value, events, note.")
    error: str | None = Field(None, description="Why there is no report (event log off or unreadable).")


class ExperimentList(BaseModel):
    """GET /v1/experiments: running ones first, then stopped, oldest start first."""

    object: Literal["list"] = "list"
    data: list[ExperimentOut]


class VersionOut(BaseModel):
    """One registered model version: lineage, evaluation, quality gate, aliases (no server paths)."""

    ref: str
    name: str
    version: int
    kind: str | None = None
    aliases: list[str] = Field(default_factory=list)
    created_at: str | None = None
    registered_at: str | None = None
    parent: str | None = None
    base_model: dict[str, Any] | None = None
    data: dict[str, Any] | None = None
    evaluation: dict[str, Any] | None = Field(None, description="key metric before/after, with its paired test")
    metrics: dict[str, Any] | None = None
    gate: dict[str, Any] | None = None
    forced_promotions: list[dict[str, Any]] = Field(default_factory=list)


class AliasOut(BaseModel):
    """An alias, the version it points at, the versions that held it and its change log."""

    alias: str
    version: str | None
    history: list[str] = Field(default_factory=list)
    log: list[dict[str, Any]] = Field(default_factory=list)


class RegistryOut(BaseModel):
    """GET /v1/registry."""

    object: Literal["registry"] = "registry"
    versions: list[VersionOut]
    aliases: list[AliasOut]


class PromoteRequest(_Body):
    """POST /v1/registry/promote: point an alias at a version (after its quality gate, as `embedops models
    promote`)."""

    version: str = Field(min_length=1, max_length=200, description="name@vN, a name (its latest) or an alias.")
    alias: str = Field("champion", min_length=1, max_length=100)
    force: bool = Field(False, description="Promote although the recorded quality gate failed (recorded).")
    reason: str | None = Field(None, max_length=1000, description="Why, for the audit trail.")


class RollbackRequest(_Body):
    """POST /v1/registry/rollback: point an alias back at the version that held it before."""

    alias: str = Field("champion", min_length=1, max_length=100)
    reason: str | None = Field(None, max_length=1000, description="Why, for the audit trail.")


class RegistryAction(BaseModel):
    """What a promote or rollback did, and whether the audit event was queued."""

    object: Literal["registry_action"] = "registry_action"
    action: Literal["promote", "rollback"]
    alias: str
    version: str
    previous: str | None = None
    gate: dict[str, Any] | None = None
    audited: bool = Field(description="False when the event log is off or unavailable (the server log has it).")


class AuditOut(BaseModel):
    """One audited action."""

    action: str
    target: str
    version: str | None = None
    previous: str | None = None
    outcome: str
    actor: str
    request_id: str | None = None
    details: dict[str, Any] = Field(default_factory=dict)
    time: float


class AuditList(BaseModel):
    """GET /v1/audit: newest first."""

    object: Literal["list"] = "list"
    data: list[AuditOut]


class ExplainRequest(_Body):
    """POST /v1/collections/{name}/explain: the dense and keyword scores behind a hybrid ranking."""

    query: str = Field(min_length=1)
    ids: list[str] | None = Field(None, min_length=1, max_length=1000, description="Only these documents (default: "
                                                                                   "every candidate).")
    fusion: Literal["minmax", "rrf"] | None = None
    filter: dict[str, Any] | None = None
    candidates: int = Field(100, ge=1, le=1000, description="Depth of each list, as hybrid search uses (100).")


class ExplainItem(BaseModel):
    """One document: its place in each list and what each contributes to the fused score (None: not in the list)."""

    id: str
    dense_score: float | None = None
    dense_rank: int | None = None
    dense_part: float = 0.0
    keyword_score: float | None = None
    keyword_rank: int | None = None
    keyword_part: float = 0.0
    fused: float


class ExplainResponse(BaseModel):
    """Every candidate (or the ids asked for), best fused first."""

    object: Literal["explain"] = "explain"
    collection: str
    fusion: str
    candidates: int
    keyword_available: bool
    data: list[ExplainItem]
