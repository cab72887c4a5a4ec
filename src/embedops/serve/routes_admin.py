"""The model registry over HTTP: versions with lineage and metrics, promote and rollback (each written to the event
log as an audit event), and the audit trail. Promote and rollback call `Project.promote` / `Project.rollback`, the
same library API as `embedops models promote|rollback`.

A registry alias the server answers for follows the move: the new version loads and warms in the background while
the old one keeps answering, then the alias switches (serve/reload.py); GET /v1/models shows the version it serves.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, TypeVar

import anyio
from fastapi import APIRouter, Depends, Query, Request

from embedops.errors import EmbedopsError, InputError, ModelError
from embedops.serve.app import ServingState, run_blocking, serving
from embedops.serve.errors import APIError
from embedops.serve.logs import request_id
from embedops.serve.routes_embeddings import ERRORS, bearer
from embedops.serve.schemas_console import (
    AliasOut,
    AuditList,
    AuditOut,
    PromoteRequest,
    RegistryAction,
    RegistryOut,
    RollbackRequest,
    VersionOut,
)

T = TypeVar("T")
log = logging.getLogger("embedops.serve.audit")
router = APIRouter(prefix="/v1", tags=["registry"], dependencies=[Depends(bearer)], responses=ERRORS)
_LINEAGE = ("kind", "created_at", "registered_at", "parent", "metrics", "gate")


def _no_paths(value: Any) -> Any:
    """Manifest values without server paths (the API never shows where files live)."""
    if isinstance(value, dict):
        return {k: _no_paths(v) for k, v in value.items() if k not in ("location", "source", "path")}
    if isinstance(value, list):
        return [_no_paths(v) for v in value]
    if isinstance(value, str) and value.startswith(("/", "~")):
        return "(a local folder)"
    return value


def _evaluation(manifest: dict[str, Any]) -> dict[str, Any] | None:
    ev = manifest.get("evaluation")
    if not isinstance(ev, dict) or "before" not in ev:
        return None
    key = ev.get("key_metric") or "ndcg@10"
    out = {"key_metric": key, "before": ev["before"].get(key), "after": (ev.get("after") or {}).get(key),
           "queries": ev.get("queries"), "dataset": ev.get("dataset")}
    test = (ev.get("comparison") or {}).get(key) or {}
    out.update({k: test.get(k) for k in ("diff", "p_value", "ci_low", "ci_high") if k in test})
    return out


def _version(v: Any, aliases: list[str]) -> VersionOut:
    m = v.manifest
    base = m.get("base_model") if isinstance(m.get("base_model"), dict) else None
    data = m.get("data") if isinstance(m.get("data"), dict) else None
    fields = {k: m.get(k) for k in _LINEAGE if m.get(k) is not None}
    return VersionOut(ref=v.ref, name=v.name, version=v.version, aliases=aliases, evaluation=_evaluation(m),
                      base_model=_no_paths(base), data=_no_paths(data),
                      forced_promotions=m.get("forced_promotions") or [], **_no_paths(fields))


def _registry_error(exc: EmbedopsError) -> APIError:
    from embedops.registry import GateRefusedError, RegistryDamagedError

    if isinstance(exc, GateRefusedError):
        return APIError(409, exc.message, code="gate_refused", param="force")
    if isinstance(exc, RegistryDamagedError):
        return APIError(503, exc.message, code="registry_damaged")
    if isinstance(exc, InputError):
        return APIError(422, exc.message, code="invalid_request", param="alias")
    return APIError(409, exc.message, code="registry_conflict")


@router.get("/registry", response_model=RegistryOut, summary="Model registry")
async def registry(request: Request, state: ServingState = Depends(serving)) -> RegistryOut:
    """Every registered version (oldest first) with lineage, evaluation and gate, and every alias with its history."""
    def read() -> RegistryOut:
        reg = state.project.registry
        aliases = reg.aliases()
        by_ref: dict[str, list[str]] = {}
        for alias, info in aliases.items():
            by_ref.setdefault(info.get("version"), []).append(alias)
        return RegistryOut(versions=[_version(v, sorted(by_ref.get(v.ref, []))) for v in reg.versions()],
                           aliases=[AliasOut(alias=a, version=i.get("version"), history=i.get("history", []),
                                             log=i.get("log", [])) for a, i in sorted(aliases.items())])

    try:
        return await run_blocking(request, read)
    except EmbedopsError as exc:
        raise _registry_error(exc) from None


async def _run_to_end(request: Request, fn: Callable[[], T]) -> T:
    """Run a registry write on a thread without the request deadline: an alias move is never abandoned half-way,
    so the answer always says what happened."""
    state: ServingState = request.app.state.serving
    return await anyio.to_thread.run_sync(fn, limiter=state.limiter)


def _audit(request: Request, state: ServingState, action: str, alias: str, version: str | None,
           previous: str | None, outcome: str, details: dict[str, Any]) -> bool:
    """Queue the audit event and write the server's own log line (the event log may be off); True if queued."""
    from embedops.events import AuditEvent

    actor = f"http:{request.client.host}" if request.client else "http"
    rid = request_id.get() or None
    log.warning("registry %s", action, extra={"action": action, "alias": alias, "version": version,
                                               "previous": previous, "outcome": outcome, "actor": actor})
    events = getattr(state, "events", None)
    if events is None:
        return False
    return events.log(AuditEvent(action=action, target=alias, version=version, previous=previous, outcome=outcome,
                                 actor=actor, request_id=rid, details={k: v for k, v in details.items()
                                                                       if v is not None}))


@router.post("/registry/promote", response_model=RegistryAction, summary="Promote a version")
async def promote(body: PromoteRequest, request: Request, state: ServingState = Depends(serving)) -> RegistryAction:
    """Point `alias` at a version after its quality gate (`Project.promote`); audited in the event log."""
    project = state.project

    def run() -> tuple[str | None, Any]:
        from embedops.registry import RegistryDamagedError

        reg = project.registry
        try:
            ref = reg.ref_of(body.version)
        except RegistryDamagedError:
            raise
        except ModelError as exc:
            raise APIError(404, exc.message, code="version_not_found", param="version") from None
        # Read just before the move: with promotions of one alias racing, the registry's alias log (written under
        # its lock) is the exact order; each audit event records what its own request saw and did.
        previous = reg.aliases().get(body.alias, {}).get("version")
        try:
            return previous, project.promote(ref, body.alias, force=body.force)
        except EmbedopsError as exc:
            _audit(request, state, "promote", body.alias, ref, previous, "refused",
                   {"reason": body.reason, "force": body.force, "error": exc.message})
            raise

    try:
        previous, version = await _run_to_end(request, run)
    except EmbedopsError as exc:
        raise _registry_error(exc) from None
    state.pool.follower.trigger()  # the served alias follows now, not at the next poll
    gate = version.manifest.get("gate")
    audited = _audit(request, state, "promote", body.alias, version.ref, previous, "done",
                     {"reason": body.reason, "force": body.force or None,
                      "gate": gate.get("summary") if isinstance(gate, dict) else None})
    return RegistryAction(action="promote", alias=body.alias, version=version.ref, previous=previous,
                          gate=gate if isinstance(gate, dict) else None, audited=audited)


@router.post("/registry/rollback", response_model=RegistryAction, summary="Roll an alias back")
async def rollback(body: RollbackRequest, request: Request, state: ServingState = Depends(serving)) -> RegistryAction:
    """Point `alias` back at the version that held it before (`Project.rollback`); audited in the event log."""
    project = state.project

    def run() -> tuple[str | None, Any]:
        info = project.registry.aliases().get(body.alias)
        if info is None:
            raise APIError(404, f"no alias {body.alias!r} to roll back", code="alias_not_found", param="alias")
        previous = info.get("version")
        try:
            return previous, project.rollback(body.alias)
        except EmbedopsError as exc:
            _audit(request, state, "rollback", body.alias, None, previous, "refused",
                   {"reason": body.reason, "error": exc.message})
            raise

    try:
        previous, version = await _run_to_end(request, run)
    except EmbedopsError as exc:
        raise _registry_error(exc) from None
    state.pool.follower.trigger()
    audited = _audit(request, state, "rollback", body.alias, version.ref, previous, "done", {"reason": body.reason})
    return RegistryAction(action="rollback", alias=body.alias, version=version.ref, previous=previous,
                          audited=audited)


@router.get("/audit", response_model=AuditList, summary="Audit trail")
async def audit(request: Request, state: ServingState = Depends(serving),
                limit: int = Query(50, ge=1, le=1000), action: str | None = Query(None, max_length=32)) -> AuditList:
    """Administrative actions (promote, rollback), done or refused, newest first."""
    events = getattr(state, "events", None)
    if events is None:
        raise APIError(503, "the event log is off or unavailable (serving.events)", code="events_unavailable")

    def read() -> list[AuditOut]:
        events.flush(5)  # an action just taken is in the list
        return [AuditOut(action=a.action, target=a.target, version=a.version, previous=a.previous,
                         outcome=a.outcome, actor=a.actor, request_id=a.request_id, details=a.details, time=a.time)
                for a in events.audit(action=action, limit=limit)]

    try:
        return AuditList(data=await run_blocking(request, read))
    except EmbedopsError as exc:
        raise APIError(503, f"the event log cannot be read: {exc.message}", code="events_unavailable") from None
