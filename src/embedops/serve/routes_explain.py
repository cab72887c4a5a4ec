"""POST /v1/collections/{name}/explain: why a document ranks where it does in a hybrid search.

It ranks the query both ways through `Project.search` (dense and keyword, each to the depth hybrid search fuses),
and gives every document its score and rank in each list and what each list adds to the fused score under the same
rule (`minmax` or `rrf`), so the parts sum to the score hybrid search returned. Not logged as a search: it explains
one, it is not one a user saw.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request

from embedops.serve.app import ServingState, run_blocking, serving
from embedops.serve.routes_embeddings import ERRORS, bearer
from embedops.serve.routes_feedback import query_vector
from embedops.serve.schemas_console import ExplainItem, ExplainRequest, ExplainResponse

router = APIRouter(prefix="/v1/collections", tags=["collections"], dependencies=[Depends(bearer)], responses=ERRORS)
RRF_K = 60  # as embedops.index.hybrid.rrf


def _parts(ranking: list[tuple[str, float]], fusion: str) -> dict[str, float]:
    """What each document of one list adds to the fused score (the rule of embedops.index.hybrid)."""
    if not ranking:
        return {}
    if fusion == "rrf":
        return {doc: 1.0 / (RRF_K + rank) for rank, (doc, _) in enumerate(ranking, start=1)}
    scores = [s for _, s in ranking]
    lo, hi = min(scores), max(scores)
    span = hi - lo
    return {doc: (s - lo) / span if span > 0 else 1.0 for doc, s in ranking}


def explain_rankings(dense: list[tuple[str, float]], keyword: list[tuple[str, float]], fusion: str,
                     ids: list[str] | None = None) -> list[ExplainItem]:
    """Per document: score, rank and fused-score part in each list; best fused first (ties by id, as fusion)."""
    d_parts, k_parts = _parts(dense, fusion), _parts(keyword, fusion)
    d_at = {doc: (rank, s) for rank, (doc, s) in enumerate(dense, start=1)}
    k_at = {doc: (rank, s) for rank, (doc, s) in enumerate(keyword, start=1)}
    wanted = ids if ids is not None else list(dict.fromkeys([d for d, _ in dense] + [d for d, _ in keyword]))
    items = []
    for doc in dict.fromkeys(wanted):
        dr, ds = d_at.get(doc, (None, None))
        kr, ks = k_at.get(doc, (None, None))
        dp, kp = d_parts.get(doc, 0.0), k_parts.get(doc, 0.0)
        items.append(ExplainItem(id=doc, dense_score=ds, dense_rank=dr, dense_part=dp, keyword_score=ks,
                                 keyword_rank=kr, keyword_part=kp, fused=dp + kp))
    return sorted(items, key=lambda it: (-it.fused, it.id))


@router.post("/{name}/explain", response_model=ExplainResponse, summary="Explain a hybrid ranking")
async def explain(name: str, body: ExplainRequest, request: Request,
                  state: ServingState = Depends(serving)) -> ExplainResponse:
    """Dense and keyword score, rank and contribution of each candidate (or of `ids`) for a query."""
    col = state.collections.get(name)
    fusion = body.fusion or state.project.config.index.fusion
    served = state.pool.get(state.collections.model_id(col))
    keyword_available = hasattr(col.store, "keyword_search")

    def rank() -> tuple[list[Any], list[Any]]:
        qv = query_vector(served.worker, body.query)
        dense = state.collections.search(name, body.query, body.candidates, body.filter, mode="dense", fusion=fusion,
                                         query_vector=qv)
        keyword = (state.collections.search(name, body.query, body.candidates, body.filter, mode="keyword",
                                            fusion=fusion) if keyword_available else [])
        return dense, keyword

    with state.pool.admit(served, 1):
        dense, keyword = await run_blocking(request, rank)
    items = explain_rankings([(h.id, float(h.score)) for h in dense], [(h.id, float(h.score)) for h in keyword],
                             fusion, body.ids)
    return ExplainResponse(collection=name, fusion=fusion, candidates=body.candidates,
                           keyword_available=keyword_available, data=items)
