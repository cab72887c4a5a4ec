"""Every error is JSON `{"error": {"message", "type", "param", "code"}}`, the shape OpenAI clients parse."""

from __future__ import annotations

import json
import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from embedops.errors import ConfigError, EmbedopsError, InputError, ModelError

log = logging.getLogger("embedops.serve")

_TYPES = {400: "invalid_request_error", 401: "authentication_error", 404: "not_found_error",
          405: "invalid_request_error", 409: "conflict_error", 413: "invalid_request_error",
          422: "invalid_request_error", 429: "rate_limit_error", 499: "client_closed_request",
          503: "service_unavailable", 504: "timeout_error"}


class APIError(Exception):
    """An error with its HTTP status, OpenAI error type and code, and the offending field (param)."""

    def __init__(self, status: int, message: str, *, code: str, param: str | None = None,
                 type: str | None = None, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.param = param
        self.type = type or _TYPES.get(status, "server_error")
        self.headers = headers or {}


def error_body(status: int, message: str, code: str, param: str | None = None, type: str | None = None) -> bytes:
    """The JSON error body."""
    return json.dumps({"error": {"message": message, "type": type or _TYPES.get(status, "server_error"),
                                 "param": param, "code": code}}).encode()


def error_response(exc: APIError) -> Response:
    """An APIError as a JSON response."""
    return Response(error_body(exc.status, exc.message, exc.code, exc.param, exc.type), status_code=exc.status,
                    media_type="application/json", headers=exc.headers)


def from_library(exc: EmbedopsError) -> APIError:
    """Map the library's errors: bad input is the client's (422), everything else the server's."""
    if isinstance(exc, InputError):
        return APIError(422, str(exc), code="invalid_input", param=exc.where)
    if isinstance(exc, ConfigError):
        return APIError(400, str(exc), code="invalid_configuration", param=exc.where)
    from embedops.models.worker import RequestCancelled

    if isinstance(exc, RequestCancelled):  # the client left or the deadline passed: its texts were not run
        return APIError(499, "the client closed the request", code="client_closed_request")
    if isinstance(exc, ModelError):
        return APIError(503, "the model is not available", code="model_unavailable")
    from embedops.index.remote import StoreUnavailableError

    if isinstance(exc, StoreUnavailableError):  # Milvus / a Qdrant server down: retry later, not a server bug
        return APIError(503, "the vector store is not available", code="store_unavailable")
    return APIError(500, "internal error", code="internal_error", type="server_error")


def _loc(loc: tuple[Any, ...]) -> str:
    """('body', 'input', 3) -> 'input[3]'; ('query', 'k') -> 'k'."""
    parts = [p for p in loc if p not in ("body", "query", "path", "header")]
    out = ""
    for p in parts:
        if isinstance(p, int):
            out += f"[{p}]"
        elif not str(p).startswith(("function-", "list[", "str", "int", "float", "union[", "json-or-python")):
            out += ("." if out else "") + str(p)
    return out or "body"


def _respond(request: Request, exc: APIError) -> Response:
    request.state.error_code = exc.code  # the middleware counts errors by this code
    state = getattr(request.app.state, "serving", None)
    if state is not None:  # failed searches and embeddings go to the event log with their error type
        from embedops.serve.events import record_error

        record_error(state, request.url.path, exc.status, exc.code)
    return error_response(exc)


def install_handlers(app: FastAPI) -> None:
    """Register the handlers that give every error the same JSON shape."""

    @app.exception_handler(APIError)
    async def _api(request: Request, exc: APIError) -> Response:
        return _respond(request, exc)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> Response:
        errors = exc.errors()
        first = errors[0] if errors else {"loc": ("body",), "msg": "invalid request"}
        param = _loc(tuple(first.get("loc", ())))
        msg = str(first.get("msg", "invalid value")).removeprefix("Value error, ")
        more = f" (and {len(errors) - 1} more problems)" if len(errors) > 1 else ""
        text = msg if msg.startswith(param) else f"{param}: {msg}"
        return _respond(request, APIError(422, text + more, code="invalid_request", param=param))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        code = {404: "not_found", 405: "method_not_allowed", 413: "payload_too_large"}.get(exc.status_code,
                                                                                          "http_error")
        return _respond(request, APIError(exc.status_code, str(exc.detail), code=code))

    @app.exception_handler(EmbedopsError)
    async def _library(request: Request, exc: EmbedopsError) -> Response:
        api = from_library(exc)
        if api.status >= 500:
            log.error("request failed: %s", exc, exc_info=exc)
        return _respond(request, api)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        log.error("unhandled error", exc_info=exc)
        return _respond(request, APIError(500, "internal error", code="internal_error", type="server_error"))
