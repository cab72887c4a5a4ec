"""Collections: create, list, info, upsert and delete documents, search (text or vector), recommend."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
from fastapi import APIRouter, Depends, Request

from embedops.serve.app import ServingState, run_blocking, serving
from embedops.serve.errors import APIError
from embedops.serve.events import record
from embedops.serve.routes_embeddings import ERRORS, bearer
from embedops.serve.routes_feedback import query_vector
from embedops.serve.schemas import (
    CollectionCreate,
    CollectionInfo,
    CollectionList,
    DocumentsDelete,
    DocumentsUpsert,
    RecommendRequest,
    SearchRequest,
    SearchResponse,
    WriteResult,
)

router = APIRouter(prefix="/v1/collections", tags=["collections"], dependencies=[Depends(bearer)],
                   responses=ERRORS)
_INDEX_KEYS = ("kind", "vectors", "index", "index_kind", "metric", "deleted", "hnsw_m", "ef_search", "nprobe",
               "generation")


def _info(state: ServingState, name: str, col: Any) -> CollectionInfo:
    """What a client may see: counts, model id, index facts (never a server path)."""
    raw = col.info()
    index = {k: v for k, v in raw.items() if k in _INDEX_KEYS or (k.startswith("index") and not
                                                                   isinstance(v, dict | list))}
    index = {k: v for k, v in index.items() if not (isinstance(v, str) and "/" in v)}
    return CollectionInfo(name=name, documents=len(col), model=state.collections.model_id(col),
                          dimension=col.model.get("dimension"), index=index)


@router.get("", response_model=CollectionList, summary="List collections")
async def list_collections(request: Request, state: ServingState = Depends(serving)) -> CollectionList:
    """Every served collection."""
    def infos() -> list[CollectionInfo]:
        return [_info(state, n, state.collections.get(n)) for n in state.collections.names()]

    return CollectionList(data=await run_blocking(request, infos))


@router.post("", response_model=CollectionInfo, status_code=201, summary="Create a collection")
async def create_collection(body: CollectionCreate, request: Request,
                            state: ServingState = Depends(serving)) -> CollectionInfo:
    """A new empty collection under the server's root, for a served model and an index spec."""
    spec = body.index.model_dump(exclude_none=True)
    col = await run_blocking(request, state.collections.create, body.name, body.model, spec)
    return _info(state, body.name, col)


@router.get("/{name}", response_model=CollectionInfo, summary="Collection info")
async def collection_info(name: str, request: Request, state: ServingState = Depends(serving)) -> CollectionInfo:
    """Size, model and index of one collection."""
    col = state.collections.get(name)
    return await run_blocking(request, _info, state, name, col)


@router.post("/{name}/documents", response_model=WriteResult, summary="Upsert documents")
async def upsert_documents(name: str, body: DocumentsUpsert, request: Request,
                           state: ServingState = Depends(serving)) -> WriteResult:
    """Embed and upsert documents (same id replaces); keyword search sees them after the background refresh."""
    col = state.collections.get(name)
    if len(body.documents) > state.settings.max_inputs:
        raise APIError(413, f"{len(body.documents)} documents in one request; the bound is "
                            f"{state.settings.max_inputs}", code="too_many_inputs", param="documents")
    docs = [d.model_dump() for d in body.documents]
    served = state.pool.get(state.collections.model_id(col))
    with state.pool.admit(served, len(docs)):
        n = await run_blocking(request, col.add, docs, refresh=body.refresh)
    state.metrics.observe_encode(served.id, "documents", n, 0, 0)
    return WriteResult(collection=name, upserted=n, documents=len(col))


@router.delete("/{name}/documents", response_model=WriteResult, summary="Delete documents")
async def delete_documents(name: str, body: DocumentsDelete, request: Request,
                           state: ServingState = Depends(serving)) -> WriteResult:
    """Delete documents by id (unknown ids are skipped; `deleted` counts those that existed)."""
    col = state.collections.get(name)
    n = await run_blocking(request, col.delete, body.ids)
    return WriteResult(collection=name, deleted=n, documents=len(col))


def _vector_search(col: Any, vector: list[float], k: int, filter: dict[str, Any] | None) -> list[Any]:
    dim = col.model.get("dimension")
    if dim is not None and len(vector) != dim:
        raise APIError(422, f"vector has {len(vector)} dimensions; the collection's model has {dim}",
                       code="invalid_vector", param="vector")
    query = np.asarray([vector], dtype=np.float32)
    if not np.isfinite(query).all():
        raise APIError(422, "vector has a value that is not a finite number", code="invalid_vector", param="vector")
    hits = col.store.search(query, k, filter)[0]
    col.store.attach_content(hits)
    return hits


@router.post("/{name}/search", response_model=SearchResponse, summary="Search")
async def search(name: str, body: SearchRequest, request: Request,
                 state: ServingState = Depends(serving)) -> SearchResponse:
    """Search by text (dense, keyword or hybrid) or by a vector (dense), with an optional metadata filter."""
    if body.image is not None:  # search by image (routes_images.py)
        from embedops.serve.routes_images import search_image

        if body.query is not None or body.vector is not None or body.mode not in (None, "dense"):
            raise APIError(422, "an image query is searched alone: send image without query, vector or mode",
                           code="invalid_request", param="image")
        return await search_image(request, state, name, body.image, body.k, body.filter, body.user, body.session)
    started = time.perf_counter()
    qv = None
    col = state.collections.get(name)
    index_cfg = state.project.config.index
    mode = body.mode or index_cfg.search_mode
    if (body.query is None) == (body.vector is None):
        raise APIError(422, "send exactly one of query (text), vector or image", code="invalid_request",
                       param="query")
    model = state.collections.model_id(col)
    if body.vector is not None:
        if body.mode not in (None, "dense"):
            raise APIError(422, f"a vector query searches dense only, not {body.mode}", code="invalid_request",
                           param="mode")
        hits = await run_blocking(request, _vector_search, col, body.vector, body.k, body.filter)
        mode = "dense"
    else:
        fusion = body.fusion or index_cfg.fusion
        if mode == "keyword":
            hits = await run_blocking(request, state.collections.search, name, body.query, body.k, body.filter,
                                      mode=mode, fusion=fusion)
        else:
            served = state.pool.get(model)

            def embed_and_search():
                qv = query_vector(served.worker, body.query)  # embedded once: searched with and logged for drift
                return qv, state.collections.search(name, body.query, body.k, body.filter, mode=mode, fusion=fusion,
                                                    query_vector=qv)

            with state.pool.admit(served, 1):
                qv, hits = await run_blocking(request, embed_and_search)
            state.metrics.observe_encode(served.id, "search", 1, 0, 0)
    served_model = state.pool.get(model) if mode != "keyword" and body.vector is None else None
    rid = record(state, kind="search", route="search", model=model,
                 model_version=served_model.fingerprint if served_model is not None else model, collection=name,
                 latency_ms=(time.perf_counter() - started) * 1000, query=body.query, k=body.k, mode=mode,
                 result_ids=[h.id for h in hits], scores=[float(h.score) for h in hits],
                 query_vector=qv, user_id=body.user, session_id=body.session)
    return SearchResponse(data=[h.as_dict() for h in hits], collection=name, model=model, mode=mode,
                          request_id=rid)


@router.post("/{name}/recommend", response_model=SearchResponse, summary="Recommend")
async def recommend(name: str, body: RecommendRequest, request: Request,
                    state: ServingState = Depends(serving)) -> SearchResponse:
    """More like the positive ids, less like the negative ones (the examples themselves are never returned)."""
    col = state.collections.get(name)
    hits = await run_blocking(request, state.collections.recommend, name, body.positive, body.negative, body.k,
                              body.filter)
    return SearchResponse(data=[h.as_dict() for h in hits], collection=name, model=state.collections.model_id(col),
                          mode="recommend")
