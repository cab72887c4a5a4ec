"""Feedback on served searches, and searches served by a running experiment (A/B or interleaving)."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
from fastapi import APIRouter, Depends, Request

from embedops.errors import EmbedopsError
from embedops.serve.app import ServingState, run_blocking, serving
from embedops.serve.errors import APIError
from embedops.serve.events import record
from embedops.serve.logs import request_id
from embedops.serve.routes_embeddings import ERRORS, bearer
from embedops.serve.schemas import (
    ExperimentSearchRequest,
    ExperimentSearchResponse,
    FeedbackAccepted,
    FeedbackRequest,
)

router = APIRouter(prefix="/v1", tags=["feedback and experiments"], dependencies=[Depends(bearer)],
                   responses=ERRORS)


def _known(state: ServingState, rid: str) -> bool:
    try:
        return state.events.known_request(rid)
    except EmbedopsError as exc:
        raise APIError(503, f"the event log cannot be read: {exc.message}", code="events_unavailable") from None


@router.post("/feedback", response_model=FeedbackAccepted, summary="Feedback on a search result")
async def feedback(body: FeedbackRequest, request: Request, state: ServingState = Depends(serving)) -> FeedbackAccepted:
    """A click (with dwell time) or a relevance judgement on one result of a served search, tied to its request id."""
    if getattr(state, "events", None) is None:
        raise APIError(503, "the event log is off or unavailable (serving.events)", code="events_unavailable")
    if not await run_blocking(request, _known, state, body.request_id):
        raise APIError(404, f"no served search has request id {body.request_id!r}", code="unknown_request",
                       param="request_id")
    from embedops.events import FeedbackEvent

    accepted = state.events.log(FeedbackEvent(body.request_id, body.kind, body.doc_id, rank=body.rank,
                                              dwell_ms=body.dwell_ms, user_id=body.user, session_id=body.session))
    return FeedbackAccepted(request_id=body.request_id, accepted=accepted)


def _arm_search(state: ServingState, experiment: Any, side: str, query: str, k: int) -> list[Any]:
    name = experiment.arm(side).collection
    return state.collections.search(name, query, k, None, mode="dense", fusion=state.project.config.index.fusion)


@router.post("/experiments/{name}/search", response_model=ExperimentSearchResponse, summary="Search in an experiment")
async def experiment_search(name: str, body: ExperimentSearchRequest, request: Request,
                            state: ServingState = Depends(serving)) -> ExperimentSearchResponse:
    """Answer with the user's sticky arm (A/B) or a team-draft interleaving of both arms; logged for the report."""
    started = time.perf_counter()
    project = state.project
    try:
        experiment = project.experiments.get(name)
    except EmbedopsError as exc:
        raise APIError(404, exc.message, code="experiment_not_found", param="name") from None
    for side in ("champion", "challenger"):
        state.collections.path(experiment.arm(side).collection)  # 404 naming a missing arm collection
    rid = request_id.get() or ""

    def present():
        return project.experiment_present(name, body.user, rid, body.query,
                                          lambda side, q, k: _arm_search(state, experiment, side, q, k))

    arm, hits, teams = await run_blocking(request, present)
    record(state, kind="search", route="experiment", model=arm, model_version=f"experiment:{name}:{arm}",
           collection=None if arm == "interleaved" else experiment.arm(arm).collection,
           latency_ms=(time.perf_counter() - started) * 1000, query=body.query, k=experiment.k, mode="dense",
           result_ids=[h.id for h in hits], scores=[float(h.score) for h in hits], user_id=body.user,
           session_id=body.session, experiment=name, arm=arm, teams=teams or [])
    return ExperimentSearchResponse(data=[h.as_dict() for h in hits], collection=name, model=arm, mode="dense",
                                    request_id=rid, experiment=name, arm=arm, teams=teams)


@router.get("/experiments/{name}", summary="Experiment report")
async def experiment_report(name: str, request: Request, state: ServingState = Depends(serving)) -> dict[str, Any]:
    """The current decision: winner or none, effect, confidence interval, p-value, events still needed."""
    try:
        report = await run_blocking(request, state.project.experiment_report, name)
    except EmbedopsError as exc:
        raise APIError(404, exc.message, code="experiment_not_found", param="name") from None
    return report.as_dict()


def query_vector(worker: Any, query: str) -> np.ndarray:
    """The query embedded once by the collection's model worker (searched with, and logged for drift)."""
    return worker.encode([query], kind="query")[0]
