"""POST /v1/embeddings and GET /v1/models, as OpenAI documents them (plus `input_type` and `truncate`)."""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import numpy as np
from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from fastapi.security import HTTPBearer

from embedops.serve.app import ServingState, run_blocking, serving
from embedops.serve.errors import APIError
from embedops.serve.events import record
from embedops.serve.schemas import (
    AliasStatus,
    EmbeddingRequest,
    EmbeddingResponse,
    ErrorResponse,
    ModelList,
    ModelObject,
)

try:
    import orjson
except ImportError:  # an optional speed-up (the `serve` extra installs it)
    orjson = None

# Documents the bearer scheme in the OpenAPI schema; the middleware enforces it (before the body is read).
bearer = HTTPBearer(auto_error=False, description="An API key: Authorization: Bearer <key>")
ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorResponse, "description": text}
    for status, text in ((401, "Missing or wrong API key"), (404, "Unknown model or collection"),
                         (409, "Already exists"), (413, "Payload or input count over the bound"),
                         (422, "Invalid request (the message names the field or input index)"),
                         (429, "Queue full: retry after Retry-After seconds"), (499, "Client closed the request"),
                         (503, "Starting"), (504, "Request timeout"))
}
router = APIRouter(prefix="/v1", tags=["embeddings"], dependencies=[Depends(bearer)], responses=ERRORS)


def _texts(worker: Any, inputs: list[Any]) -> list[str]:
    """Strings as they are; token-id arrays decoded with the model's own tokenizer."""
    if not inputs or isinstance(inputs[0], str):
        return inputs
    tokenizer = worker.tokenizer
    vocab = getattr(tokenizer, "vocab_size", None) or tokenizer.backend_tokenizer.get_vocab_size()
    texts = []
    for i, ids in enumerate(inputs):
        bad = next((t for t in ids if t >= vocab), None)
        if bad is not None:
            raise APIError(422, f"input[{i}] has token id {bad}, outside the model's vocabulary of {vocab}",
                           code="invalid_token", param=f"input[{i}]")
        texts.append(tokenizer.decode(ids, skip_special_tokens=True))
    return texts


def _encode(worker: Any, inputs: list[Any], kind: str | None, truncate: bool,
            max_pixels: int) -> tuple[np.ndarray, Any]:
    """Runs on a request thread: decode tokens, refuse over-long inputs if asked, encode through the worker."""
    if getattr(worker, "modality", "text") == "image":  # data:image/... inputs (routes_images.py)
        from embedops.serve.routes_images import encode_images

        return encode_images(worker, inputs, kind, truncate, max_pixels)
    from embedops.serve.routes_images import refuse_image_urls

    refuse_image_urls(worker, inputs)
    texts = _texts(worker, inputs)
    if not truncate:
        prepared = worker.encoder.prepare(texts, kind)  # tokenises only; the model is not touched
        cut = prepared.usage().truncated_indices
        if cut:
            i = cut[0]
            more = f" (and {len(cut) - 1} more)" if len(cut) > 1 else ""
            raise APIError(422, f"input[{i}] has {int(prepared.lengths[i])} tokens, over the model's maximum of "
                                f"{worker.max_tokens}{more}; shorten it or send truncate=true",
                           code="input_too_long", param=f"input[{i}]")
    return worker.encode_with_usage(texts, kind=kind)


def _format(vectors: np.ndarray, encoding: str) -> list[Any]:
    if encoding == "base64":  # little-endian float32 bytes, what the openai client decodes
        return [base64.b64encode(row.astype("<f4").tobytes()).decode("ascii") for row in vectors]
    if orjson is not None:  # orjson writes C-contiguous float32 rows itself
        return list(np.ascontiguousarray(vectors, dtype=np.float32))
    return vectors.tolist()


def dump_json(out: dict[str, Any]) -> bytes:
    """The response body: orjson writes numpy float32 rows directly (about 15x faster than tolist + json.dumps,
    and each number is float32's shortest round-trip form); the standard library when orjson is missing."""
    if orjson is not None:
        return orjson.dumps(out, option=orjson.OPT_SERIALIZE_NUMPY)
    return json.dumps(out, separators=(",", ":")).encode()


@router.post("/embeddings", response_model=EmbeddingResponse, summary="Create embeddings")
async def create_embeddings(body: EmbeddingRequest, request: Request,
                            state: ServingState = Depends(serving)) -> Response:
    """Embed the inputs with `model`; vectors are L2-normalised float32 (Matryoshka-cut by `dimensions`)."""
    started = time.perf_counter()
    served = state.pool.get(body.model)
    inputs: list[Any] = body.input  # the validator made every form a list
    limit = state.settings.max_inputs
    if len(inputs) > limit:
        raise APIError(413, f"{len(inputs)} inputs in one request; the bound is {limit}", code="too_many_inputs",
                       param="input")
    worker = served.worker
    if body.dimensions is not None and body.dimensions > worker.output_dimension:
        raise APIError(422, f"dimensions {body.dimensions} is more than the model's {worker.output_dimension}",
                       code="invalid_dimensions", param="dimensions")
    with state.pool.admit(served, len(inputs)):
        vectors, usage = await run_blocking(request, _encode, worker, inputs, body.input_type, body.truncate,
                                            state.project.config.images.max_pixels)
    if body.dimensions is not None and body.dimensions < vectors.shape[1]:
        vectors = vectors[:, : body.dimensions]
        vectors = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    state.metrics.observe_encode(served.id, "embeddings", usage.inputs, usage.tokens, usage.truncated)
    record(state, kind="embed", route="embeddings", model=served.id, model_version=served.fingerprint,
           latency_ms=(time.perf_counter() - started) * 1000, n_inputs=usage.inputs, tokens=usage.tokens,
           truncated=usage.truncated, user_id=body.user)
    out = {
        "object": "list",
        "data": [{"object": "embedding", "index": i, "embedding": e}
                 for i, e in enumerate(_format(vectors, body.encoding_format))],
        "model": served.id,
        "usage": {"prompt_tokens": usage.tokens, "total_tokens": usage.tokens},
        "truncated_inputs": list(usage.truncated_indices),
    }
    # Serialised here, not by FastAPI: validating thousands of floats against the response model is slow.
    return Response(dump_json(out), media_type="application/json")


def _model_object(served: Any, followed: list[Any]) -> ModelObject:
    worker = served.worker
    return ModelObject(id=served.id, created=served.created, dimension=worker.output_dimension,
                       max_tokens=worker.max_tokens, aliases=sorted(served.aliases - {served.id}),
                       registry_version=served.registry_ref,
                       registry_aliases=[AliasStatus(alias=f.alias, version=f.version, state=f.state, wanted=f.wanted,
                                                     error=f.error) for f in followed])


def _followed_by_model(state: ServingState) -> dict[int, list[Any]]:
    """Followed registry aliases, grouped by the model each routes to now (serve/reload.py)."""
    out: dict[int, list[Any]] = {}
    for f in state.pool.follower.states():
        served = state.pool.named(f.alias)
        if served is not None:
            out.setdefault(id(served), []).append(f)
    return out


@router.get("/models", response_model=ModelList, summary="List models")
async def list_models(state: ServingState = Depends(serving)) -> ModelList:
    """The served models (OpenAI list shape, with dimension, max tokens, aliases and the registry version each
    followed alias serves now)."""
    followed = _followed_by_model(state)
    return ModelList(data=[_model_object(m, followed.get(id(m), [])) for m in state.pool.models()])


@router.get("/models/{model:path}", response_model=ModelObject, summary="Retrieve a model")
async def get_model(model: str, state: ServingState = Depends(serving)) -> ModelObject:
    """One served model by id or alias."""
    served = state.pool.get(model)
    return _model_object(served, _followed_by_model(state).get(id(served), []))
