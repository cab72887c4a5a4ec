"""One ASGI middleware in front of the app: request id, API key, body size, deadline, latency metrics, access log.

It is plain ASGI (not BaseHTTPMiddleware) so the request id context variable reaches the endpoint and its threads,
and so an unauthenticated or oversized request is answered before a byte of its body is read.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from typing import Any

from fastapi import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from embedops.serve.auth import KeyChecker, presented_key
from embedops.serve.errors import error_body
from embedops.serve.logs import request_id

log = logging.getLogger("embedops.serve.access")

# /console serves only the web console's static files; the data its pages fetch goes through /v1 with the key.
OPEN_PATHS = ("/health", "/ready", "/metrics", "/docs", "/openapi.json", "/redoc", "/console")
_SAFE_ID = re.compile(r"^[A-Za-z0-9._\-]{1,64}$")


class PayloadTooLarge(HTTPException):
    """A body over the size bound, found while streaming (no or false Content-Length)."""

    def __init__(self, limit: int):
        super().__init__(413, f"the request body is over {limit} bytes")


class ServeMiddleware:
    """Wraps every HTTP request; `state` is the app's ServingState."""

    def __init__(self, app: ASGIApp, state: Any):
        self.app = app
        self.state = state
        settings = state.settings
        self.keys = KeyChecker(settings.api_key_hashes) if settings.auth else None
        self.max_body = settings.max_body_bytes
        self.timeout = settings.request_timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        given = headers.get(b"x-request-id", b"").decode("latin-1")
        rid = given if _SAFE_ID.match(given) else uuid.uuid4().hex
        token = request_id.set(rid)
        started = time.perf_counter()
        state = scope.setdefault("state", {})
        state["deadline"] = time.monotonic() + self.timeout
        status = [500]

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
                message["headers"] = [*message.get("headers", []), (b"x-request-id", rid.encode())]
            await send(message)

        try:
            refusal = self._refuse(scope["path"], headers)
            if refusal is not None:
                state["error_code"] = refusal[1]
                await _reply(send_with_id, *refusal)
                return
            await self.app(scope, self._limited(receive), send_with_id)
        finally:
            self._record(scope, status[0], time.perf_counter() - started)
            request_id.reset(token)

    def _refuse(self, path: str, headers: dict[bytes, bytes]) -> tuple[int, str, str] | None:
        """(status, code, message) when the request is refused before its body is read."""
        if self.keys is not None and not path.startswith(OPEN_PATHS) and not self.keys.check(presented_key(headers)):
            # One message whether the key is missing or wrong: nothing to learn from the difference.
            return 401, "invalid_api_key", "a valid API key is required (Authorization: Bearer <key>)"
        length = headers.get(b"content-length")
        if length is not None:
            try:
                size = int(length)
            except ValueError:
                return 400, "invalid_content_length", "Content-Length is not a number"
            if size > self.max_body:
                return 413, "payload_too_large", f"the request body is over {self.max_body} bytes"
        return None

    def _limited(self, receive: Receive) -> Receive:
        seen = 0
        limit = self.max_body

        async def limited() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise PayloadTooLarge(limit)
            return message

        return limited

    def _record(self, scope: Scope, status: int, seconds: float) -> None:
        route = scope.get("route")
        template = getattr(route, "path", None) or "unmatched"
        method = scope.get("method", "")
        metrics = self.state.metrics
        metrics.latency.labels(method, template, str(status)).observe(seconds)
        if status >= 400:
            metrics.errors.labels(scope.get("state", {}).get("error_code") or f"http_{status}", str(status)).inc()
        level = logging.ERROR if status >= 500 else logging.INFO
        log.log(level, "request", extra={"method": method, "path": scope.get("path"), "route": template,
                                         "status": status, "duration_ms": round(seconds * 1000, 2),
                                         "client": (scope.get("client") or ("", 0))[0]})


async def _reply(send: Send, status: int, code: str, message: str) -> None:
    body = error_body(status, message, code)
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if status == 401:
        headers.append((b"www-authenticate", b"Bearer"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
