"""Images over HTTP: `data:image/...;base64` inputs to /v1/embeddings, search by image, raw image uploads.

    POST /v1/embeddings                        {"model": "efficientnet-lite0", "input": ["data:image/png;base64,..."]}
    POST /v1/images/embeddings?model=M         the image file itself as the body
    POST /v1/collections/{name}/search         {"image": "data:image/jpeg;base64,...", "k": 5}
    POST /v1/collections/{name}/search/image   the image file itself as the body; ?k=5&filter={...}
    POST /v1/collections/{name}/images         {"images": [{"id": "cat-1", "image": "data:image/png;base64,..."}]}

Size limits: the body is bounded by `serving.max_body_bytes` (413 before it is read, or while it streams); each
image by `images.max_pixels`, checked from its header before it is decoded (422). Every image is decoded and
checked on the request's thread, so a bad one is a 422 naming its request index (`input[3]`, `images[3]`), before
anything is queued for the model (and, for an upsert, before anything is written). A text model given an image, or an
image-only model given text, is a 422 naming the index; so is an upsert of images into a text collection.
"""

from __future__ import annotations

import json
import time
from typing import Any

import numpy as np
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

from embedops.data.images import decode_data_url, is_data_url, load_rgb
from embedops.errors import InputError
from embedops.serve.app import ServingState, run_blocking, serving
from embedops.serve.errors import APIError
from embedops.serve.events import record
from embedops.serve.routes_embeddings import ERRORS, bearer, dump_json
from embedops.serve.schemas import EmbeddingResponse, SearchResponse, WriteResult

router = APIRouter(prefix="/v1", tags=["images"], dependencies=[Depends(bearer)], responses=ERRORS)
# A raw upload is documented as binary (what OpenAPI tools send); any image type is accepted, the bytes are sniffed.
_BINARY_BODY = {"requestBody": {"required": True, "content": {
    "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}}}


def _max_pixels(state: ServingState) -> int:
    images = getattr(state.project.config, "images", None)
    return int(getattr(images, "max_pixels", 64_000_000))


def decode_image(value: Any, where: str, max_pixels: int) -> Any:
    """A data URL or raw bytes, decoded and checked into an RGB image; a 422 naming `where` otherwise."""
    try:
        data = decode_data_url(value, where) if isinstance(value, str) else value
        return load_rgb(data, max_pixels=max_pixels, where=where)
    except InputError as exc:
        raise APIError(422, str(exc), code="invalid_image", param=where) from None


def image_inputs(worker: Any, inputs: list[Any], max_pixels: int) -> list[Any]:
    """The inputs of an embeddings request for an image model: data URLs decoded, texts kept for a CLIP model."""
    reads_text = bool(getattr(worker, "reads_text", False))
    out: list[Any] = []
    for i, value in enumerate(inputs):
        where = f"input[{i}]"
        if isinstance(value, str) and is_data_url(value):
            out.append(decode_image(value, where, max_pixels))
        elif isinstance(value, str) and reads_text:
            out.append(value)
        else:
            what = "text" if isinstance(value, str) else "a token-id array"
            raise APIError(422, f"{where} is {what}, but the model {worker.name!r} embeds images: send images as "
                                "data:image/<type>;base64,<data> URLs", code="invalid_input", param=where)
    return out


def refuse_image_urls(worker: Any, inputs: list[Any]) -> None:
    """A text model given a data URL would embed the base64 text: refuse it, naming the index."""
    for i, value in enumerate(inputs):
        if isinstance(value, str) and is_data_url(value):
            raise APIError(422, f"input[{i}] is an image (a data URL), but the model {worker.name!r} embeds text; "
                                "use an image model (GET /v1/models)", code="invalid_input", param=f"input[{i}]")


def encode_images(worker: Any, inputs: list[Any], kind: str | None, truncate: bool, max_pixels: int
                  ) -> tuple[np.ndarray, Any]:
    """Runs on a request thread: decode and check the images, refuse over-long texts if asked, encode."""
    items = image_inputs(worker, inputs, max_pixels)
    if not truncate:
        texts = [(i, t) for i, t in enumerate(items) if isinstance(t, str)]
        if texts:
            counts, _ = worker.encoder.tokenize([t for _, t in texts])
            for (i, _), n in zip(texts, counts, strict=True):
                if n > worker.max_tokens:
                    raise APIError(422, f"input[{i}] has {int(n)} tokens, over the model's maximum of "
                                        f"{worker.max_tokens}; shorten it or send truncate=true",
                                   code="input_too_long", param=f"input[{i}]")
    return worker.encode_with_usage(items, kind=kind)


def _image_model(state: ServingState, model: str | None) -> Any:
    served = state.pool.get(model)
    if getattr(served.worker, "modality", "text") != "image":
        raise APIError(422, f"the model {served.id!r} embeds text, not images", code="invalid_input", param="model")
    return served


async def _body_image(request: Request, state: ServingState) -> Any:
    data = await request.body()  # bounded by the middleware (413 over serving.max_body_bytes)
    if not data:
        raise APIError(422, "the body is empty: send the image file as the request body", code="invalid_image",
                       param="body")
    return await run_blocking(request, decode_image, data, "body", _max_pixels(state))


@router.post("/images/embeddings", response_model=EmbeddingResponse, summary="Embed an uploaded image",
             openapi_extra=_BINARY_BODY)
async def embed_upload(request: Request, model: str | None = Query(None, description="An image model id or alias "
                                                                                   "(default: the default model)."),
                       state: ServingState = Depends(serving)) -> Response:
    """Embed the image sent as the request body (its bytes; JPEG, PNG, WebP, GIF, BMP or TIFF)."""
    started = time.perf_counter()
    served = _image_model(state, model)
    image = await _body_image(request, state)
    with state.pool.admit(served, 1):
        vectors, usage = await run_blocking(request, served.worker.encode_with_usage, [image])
    state.metrics.observe_encode(served.id, "embeddings", usage.inputs, usage.tokens, usage.truncated)
    record(state, kind="embed", route="images/embeddings", model=served.id, model_version=served.fingerprint,
           latency_ms=(time.perf_counter() - started) * 1000, n_inputs=1)
    out = {"object": "list", "data": [{"object": "embedding", "index": 0, "embedding": vectors[0].tolist()}],
           "model": served.id, "usage": {"prompt_tokens": 0, "total_tokens": 0}, "truncated_inputs": []}
    return Response(dump_json(out), media_type="application/json")


def _search(state: ServingState, name: str, col: Any, served: Any, image: Any, k: int,
            filter: dict[str, Any] | None) -> tuple[np.ndarray, list[Any]]:
    vector = served.worker.encode([image], kind="query")
    hits = col.store.search(np.asarray(vector, dtype=np.float32), k, filter)[0]
    col.store.attach_content(hits)
    return vector[0], hits


async def search_image(request: Request, state: ServingState, name: str, image_value: Any, k: int,
                       filter: dict[str, Any] | None, user: str | None = None,
                       session: str | None = None) -> SearchResponse:
    """Search collection `name` by an image (a data URL, or the uploaded bytes) with its own image model."""
    started = time.perf_counter()
    col = state.collections.get(name)
    model = state.collections.model_id(col)
    served = state.pool.get(model)
    if getattr(served.worker, "modality", "text") != "image":
        raise APIError(422, f"the collection {name!r} holds text vectors ({model}); it cannot be searched by image",
                       code="invalid_request", param="image")
    where = "image" if isinstance(image_value, str) else "body"
    image = await run_blocking(request, decode_image, image_value, where, _max_pixels(state))
    with state.pool.admit(served, 1):
        qv, hits = await run_blocking(request, _search, state, name, col, served, image, k, filter)
    state.metrics.observe_encode(served.id, "search", 1, 0, 0)
    rid = record(state, kind="search", route="search/image", model=model, model_version=served.fingerprint,
                 collection=name, latency_ms=(time.perf_counter() - started) * 1000, k=k, mode="image",
                 result_ids=[h.id for h in hits], scores=[float(h.score) for h in hits], query_vector=qv,
                 user_id=user, session_id=session)
    return SearchResponse(data=[h.as_dict() for h in hits], collection=name, model=model, mode="image",
                          request_id=rid)


@router.post("/collections/{name}/search/image", response_model=SearchResponse, summary="Search by an uploaded image",
             tags=["collections"], openapi_extra=_BINARY_BODY)
async def search_upload(name: str, request: Request, k: int = Query(10, ge=1, le=1000),
                        filter: str | None = Query(None, description="A JSON metadata filter, e.g. "
                                                                     '{"label": "cat"}.'),
                        state: ServingState = Depends(serving)) -> SearchResponse:
    """The collection's items nearest to the image sent as the request body (image collections only)."""
    parsed = None
    if filter:
        try:
            parsed = json.loads(filter)
        except json.JSONDecodeError as exc:
            raise APIError(422, f"filter is not valid JSON: {exc.msg}", code="invalid_request",
                           param="filter") from None
        if not isinstance(parsed, dict):
            raise APIError(422, "filter must be a JSON object", code="invalid_request", param="filter")
    data = await request.body()
    if not data:
        raise APIError(422, "the body is empty: send the image file as the request body", code="invalid_image",
                       param="body")
    return await search_image(request, state, name, data, k, parsed)


class ImageIn(BaseModel):
    """One image to upsert into an image collection (same id replaces)."""

    model_config = ConfigDict(extra="forbid")  # a misspelt field is an error, as in every other body

    id: str = Field(min_length=1, max_length=512)
    image: str = Field(min_length=1, description="The image as a data:image/<type>;base64,<data> URL.")
    metadata: dict[str, Any] = Field(default_factory=dict, description='Kept with the image, e.g. {"label": "cat"} '
                                                                       "(search filters read it).")


class ImagesUpsert(BaseModel):
    """POST /v1/collections/{name}/images."""

    model_config = ConfigDict(extra="forbid")

    images: list[ImageIn] = Field(min_length=1)
    refresh: bool = Field(False, description="Make their ids keyword-searchable before answering (default: the "
                                             "background refresh does it shortly after).")


def _decode_all(images: list[ImageIn], max_pixels: int) -> list[dict[str, Any]]:
    """Every image decoded and checked (a 422 naming `images[i]`), as the entries `Project.upsert_images` takes."""
    return [{"id": it.id, "image": decode_image(it.image, f"images[{i}]", max_pixels), "metadata": it.metadata}
            for i, it in enumerate(images)]


@router.post("/collections/{name}/images", response_model=WriteResult, summary="Upsert images", tags=["collections"])
async def upsert_images(name: str, body: ImagesUpsert, request: Request,
                        state: ServingState = Depends(serving)) -> WriteResult:
    """Embed and upsert images sent as data URLs into an image collection (same id replaces); all or nothing."""
    from embedops.project_images import collection_modality

    col = state.collections.get(name)
    if len(body.images) > state.settings.max_inputs:
        raise APIError(413, f"{len(body.images)} images in one request; the bound is {state.settings.max_inputs}",
                       code="too_many_inputs", param="images")
    model = state.collections.model_id(col)
    if collection_modality(col) != "image":  # from the collection's record: no model is asked
        raise APIError(422, f"the collection {name!r} holds text vectors ({model}); it takes no images: upsert "
                            f"texts with POST /v1/collections/{name}/documents", code="invalid_request",
                       param="images")
    served = state.pool.get(model)
    entries = await run_blocking(request, _decode_all, body.images, _max_pixels(state))
    with state.pool.admit(served, len(entries)):
        # Through the Project, like every collection write; the collection's encoder is the served model's worker.
        n = await run_blocking(request, state.project.upsert_images, entries, state.collections.path(name),
                               refresh=body.refresh)
    state.metrics.observe_encode(served.id, "images", n, 0, 0)
    return WriteResult(collection=name, upserted=n, documents=len(col))
