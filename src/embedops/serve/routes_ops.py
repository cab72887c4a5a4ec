"""Liveness, readiness and Prometheus metrics (no API key needed)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST

from embedops.serve.errors import error_body

router = APIRouter(tags=["operations"])


@router.get("/health", summary="Liveness")
async def health(request: Request) -> Response:
    """200 while the process serves (503 if start-up failed, so an orchestrator restarts it)."""
    state = request.app.state.serving
    if state.failed:
        return Response(error_body(503, "start-up failed", "startup_failed"), 503, media_type="application/json")
    return JSONResponse({"status": "ok"})


@router.get("/ready", summary="Readiness")
async def ready(request: Request) -> Response:
    """200 once every model is loaded and warmed and every collection is open; 503 before."""
    state = request.app.state.serving
    if not state.ready:
        message = "start-up failed" if state.failed else "models are loading"
        return Response(error_body(503, message, "not_ready"), 503, media_type="application/json",
                        headers={"Retry-After": "2"})
    return JSONResponse({"status": "ready", "models": [m.id for m in state.pool.models()],
                         "collections": state.collections.names()})


@router.get("/metrics", summary="Prometheus metrics")
async def metrics(request: Request) -> Response:
    """Latency per route, errors by type, per-model requests/inputs/tokens/truncations, queue depth, batches."""
    return Response(request.app.state.serving.metrics.render(), media_type=CONTENT_TYPE_LATEST)
