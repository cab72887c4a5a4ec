"""`create_app(project, settings)`: the FastAPI app, a thin face over `Project`.

Models load and warm on a thread after the server starts listening (GET /ready answers 503 until then); every model
or collection call runs on a worker thread (the event loop only parses, routes and answers), bounded by the request's
deadline.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

import anyio
from fastapi import FastAPI, Request

from embedops.models.worker import cancel_when
from embedops.serve.collections import CollectionRegistry
from embedops.serve.errors import APIError, install_handlers
from embedops.serve.metrics import Metrics
from embedops.serve.middleware import ServeMiddleware
from embedops.serve.models import ModelPool
from embedops.serve.settings import ServeSettings
from embedops.serve.watch import DisconnectWatch

log = logging.getLogger("embedops.serve")
T = TypeVar("T")
_THREADS = 64  # request threads that may wait on a model worker or a collection at once


@dataclass(eq=False)
class ServingState:
    """What the routes share: the project, settings, models, collections, metrics and readiness."""

    project: Any
    settings: ServeSettings
    pool: ModelPool
    collections: CollectionRegistry
    metrics: Metrics
    ready: bool = False
    failed: str | None = None
    on_fatal: Callable[[], None] | None = None  # the CLI stops the server when loading fails
    limiter: anyio.CapacityLimiter | None = None
    loader: threading.Thread | None = field(default=None, repr=False)
    events: Any = None  # the project's EventLog (None: off or unavailable)
    events_error: str | None = None
    watch: DisconnectWatch = field(default_factory=DisconnectWatch, repr=False)

    def load(self) -> None:
        """Load and warm the models, open the collections (blocking; runs on its own thread)."""
        if self.ready:  # loaded before the server started (a Ray Serve replica loads in its constructor)
            return
        started = time.perf_counter()
        try:
            self.pool.load(self.settings.models, self.settings.backend)
            self.collections.load(self.settings.collections)
            from embedops.serve.events import open_event_log

            open_event_log(self)
        except Exception as exc:  # noqa: BLE001 - reported by /ready and /health, and the CLI exits
            self.failed = f"{type(exc).__name__}: {exc}"
            log.error("start-up failed", exc_info=exc)
            if self.on_fatal is not None:
                self.on_fatal()
            return
        self.ready = True
        log.info("ready", extra={"models": [m.id for m in self.pool.models()], "collections": self.collections.names(),
                                 "startup_s": round(time.perf_counter() - started, 2)})

    def close(self) -> None:
        """Stop the workers and close every collection and the project (after in-flight requests finished)."""
        self.ready = False
        if self.loader is not None:
            self.loader.join(timeout=60)
        self.collections.close()
        self.pool.close()
        self.project.close()
        log.info("stopped")


def serving(request: Request) -> ServingState:
    """The app's state; 503 while models are still loading."""
    state: ServingState = request.app.state.serving
    if not state.ready:
        raise APIError(503, "the server is starting (models are loading)" if not state.failed else
                       "the server failed to start", code="not_ready", headers={"Retry-After": "2"})
    return state


async def run_blocking(request: Request, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run model or collection work on a thread, within the request's deadline (504 after it).

    If the client disconnects, or the deadline passes, while the work waits in a model worker's queue, its texts are
    dropped before the model runs them (`cancel_when`; the server's `DisconnectWatch` notices the disconnect within
    0.1 s and answers 499): a client that gave up costs no model time.
    """
    state: ServingState = request.app.state.serving
    if await request.is_disconnected():  # the client is gone: do not spend the model on it
        raise APIError(499, "the client closed the request", code="client_closed_request")
    remaining = request.state.deadline - time.monotonic()
    give_up = threading.Event()

    def call() -> T:
        with cancel_when(give_up):
            return fn(*args, **kwargs)

    try:
        with anyio.fail_after(max(remaining, 0.001)) as scope:
            key = state.watch.add(request, give_up, scope)
            try:
                # abandon_on_cancel: the thread finishes on its own; the client gets its answer now.
                return await anyio.to_thread.run_sync(call, abandon_on_cancel=True, limiter=state.limiter)
            finally:
                state.watch.remove(key)
    except TimeoutError:
        give_up.set()
        raise APIError(504, f"the request took longer than {state.settings.request_timeout:g} s",
                       code="request_timeout") from None
    # Only the watch cancels the scope before its deadline: the client is gone (and give_up is set).
    raise APIError(499, "the client closed the request", code="client_closed_request")


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    state: ServingState = app.state.serving
    state.limiter = anyio.CapacityLimiter(_THREADS)
    state.loader = threading.Thread(target=state.load, name="embedops-serve-load", daemon=True)
    state.loader.start()
    try:
        yield
    finally:
        # uvicorn calls this after it stopped accepting and in-flight requests finished (or the grace period ended).
        await anyio.to_thread.run_sync(state.close)


def create_app(project: Any, settings: ServeSettings | None = None) -> FastAPI:
    """The embedops HTTP API over `project`: OpenAI embeddings, models, collections, health and metrics."""
    from fastapi.middleware.cors import CORSMiddleware

    from embedops.serve import (
        routes_admin,
        routes_collections,
        routes_console,
        routes_embeddings,
        routes_explain,
        routes_feedback,
        routes_images,
        routes_monitor,
        routes_ops,
    )

    if settings is None:
        settings = ServeSettings.resolve(getattr(project.config, "serving", None))
    pool = ModelPool(project, settings)
    root = project.config.resolve(settings.collections_root)
    state = ServingState(project, settings, pool, CollectionRegistry(project, pool, root), Metrics(pool.workers))
    app = FastAPI(title="embedops", version=_version(), lifespan=_lifespan,
                  description="OpenAI-compatible embeddings and vector search over an embedops project.")
    app.state.serving = state
    install_handlers(app)
    app.include_router(routes_ops.router)
    app.include_router(routes_embeddings.router)
    app.include_router(routes_collections.router)
    app.include_router(routes_feedback.router)
    app.include_router(routes_images.router)  # image uploads and search by image
    for console_routes in (routes_explain, routes_monitor, routes_admin, routes_console):  # the web console's
        app.include_router(console_routes.router)
    app.add_middleware(ServeMiddleware, state=state)
    if settings.cors_origins:  # off by default; outermost, so preflights are answered without a key
        app.add_middleware(CORSMiddleware, allow_origins=settings.cors_origins, allow_methods=["*"],
                           allow_headers=["*"], expose_headers=["X-Request-ID", "Retry-After"])
    return app


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("embedops")
    except Exception:  # noqa: BLE001 - not installed (a source checkout)
        return "0"
