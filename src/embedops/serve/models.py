"""The served models: one `ModelWorker` per vector space, routed by the request's `model` (ids and aliases).

Two names for the same weights (`all-MiniLM-L6-v2` and a registry alias `champion` pointing at a copy of it) share one
worker: the worker is keyed by the encoder's fingerprint, so the cores run one model, not two competing ones.
"""

from __future__ import annotations

import logging
import math
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from embedops.models import ModelWorker, warmup_inputs
from embedops.serve.errors import APIError
from embedops.serve.settings import ServeSettings

log = logging.getLogger("embedops.serve")

_DEFAULT_ALIASES = ("default", "all-minilm-l6-v2", "sentence-transformers/all-minilm-l6-v2")
# Only plain registry names are resolved (never a path): `champion`, `tuned@v2`.
_REGISTRY_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_\-.]{0,63}(@v?\d+)?$")


@dataclass(eq=False)
class ServedModel:
    """A model the server answers for: its id, worker, aliases and admitted-but-unfinished texts."""

    id: str
    worker: ModelWorker
    created: int
    aliases: set[str] = field(default_factory=set)
    pending: int = 0  # texts admitted and not yet returned; touched on the event loop only

    @property
    def fingerprint(self) -> str:
        """The worker's vector space."""
        return self.worker.fingerprint


class ModelPool:
    """Loads, warms, routes and bounds the queue of the served models."""

    def __init__(self, project: Any, settings: ServeSettings):
        self.project = project
        self.settings = settings
        self._lock = threading.Lock()
        self._models: dict[str, ServedModel] = {}  # id -> model
        self._by_fingerprint: dict[str, ServedModel] = {}
        self._aliases: dict[str, ServedModel] = {}  # lower-cased alias -> model
        self.default: ServedModel | None = None

    # -- loading (on a worker thread at start-up, never on the event loop) ---------------------------------------
    def load(self, names: list[str], backend: str | None = None) -> None:
        """Load (or alias) each configured model name and warm it; the first is the default."""
        for name in names or [self.project.config.model.name]:
            encoder = self.project.load_encoder(name, backend=backend or self.settings.backend)
            served = self._serve(name, encoder)
            if self.default is None:
                self.default = served

    def encoder_for_spec(self, spec: dict[str, Any]) -> ModelWorker:
        """A collection's loader: the served worker for its recorded vector space, loading it if none serves it."""
        with self._lock:
            served = self._by_fingerprint.get(spec.get("fingerprint") or "")
        if served is None:
            encoder = self.project.encoder_from_spec(spec)
            served = self._serve(str(spec.get("name") or "model"), encoder)
        return served.worker

    def _serve(self, name: str, encoder: Any) -> ServedModel:
        fingerprint = encoder.fingerprint
        with self._lock:
            served = self._by_fingerprint.get(fingerprint)
            if served is None:
                # `default` names the bundled model; its own name is the clearer id.
                model_id = encoder.name if name.lower() in _DEFAULT_ALIASES else name
                model_id = model_id if model_id not in self._models else f"{model_id}@{fingerprint[:8]}"
                worker = ModelWorker(encoder, max_batch_size=self.settings.max_batch_size,
                                     max_batch_tokens=self.settings.max_batch_tokens,
                                     max_wait_ms=self.settings.max_wait_ms, name=f"embedops-worker[{model_id}]")
                served = ServedModel(model_id, worker, int(time.time()))
                self._models[model_id] = served
                self._by_fingerprint[fingerprint] = served
                fresh = True
            else:
                fresh = False
            names = {name, encoder.name, served.id}
            source = getattr(encoder, "source", None)
            if getattr(source, "registry_ref", None):
                names.add(source.registry_ref)
            if encoder.name.lower() in _DEFAULT_ALIASES:
                names.update(_DEFAULT_ALIASES)
            for alias in names:
                served.aliases.add(alias)
                self._aliases.setdefault(alias.lower(), served)
        if fresh:
            started = time.perf_counter()
            # The first call pays for thread pools and caches (an image model warms on a small image).
            served.worker.encode(warmup_inputs(encoder))
            log.info("model ready", extra={"model": served.id, "backend": getattr(encoder, "backend", None),
                                           "dimension": encoder.output_dimension,
                                           "warmup_s": round(time.perf_counter() - started, 3)})
        return served

    # -- routing -------------------------------------------------------------------------------------------------
    def get(self, name: str | None) -> ServedModel:
        """The served model called `name` (id, alias, or a registry name resolving to a served model); 404 if none."""
        if name is None:
            if self.default is None:
                raise APIError(503, "no model is loaded yet", code="not_ready")
            return self.default
        with self._lock:
            served = self._models.get(name) or self._aliases.get(name.lower())
        if served is not None:
            return served
        served = self._from_registry(name)
        if served is None:
            raise APIError(404, f"the model {name!r} does not exist on this server (see GET /v1/models)",
                           code="model_not_found", param="model")
        return served

    def _from_registry(self, name: str) -> ServedModel | None:
        """A registry alias/version (moved since start-up, or never named) that points at a served model folder."""
        if not _REGISTRY_NAME.match(name):
            return None
        try:
            found = self.project.resolver()(name)
        except Exception:  # noqa: BLE001 - an unknown or malformed registry name is simply not a served model
            return None
        path = getattr(found, "path", found)
        if path is None:
            return None
        with self._lock:
            for served in self._models.values():
                source = getattr(served.worker.encoder, "source", None)
                if source is not None and getattr(source, "path", None) == path:
                    self._aliases.setdefault(name.lower(), served)
                    served.aliases.add(name)
                    return served
        return None

    def models(self) -> list[ServedModel]:
        """Served models, in load order."""
        with self._lock:
            return list(self._models.values())

    def workers(self) -> dict[str, ModelWorker]:
        """Worker per model id (for metrics)."""
        with self._lock:
            return {m.id: m.worker for m in self._models.values()}

    # -- admission -----------------------------------------------------------------------------------------------
    @contextmanager
    def admit(self, served: ServedModel, texts: int) -> Iterator[None]:
        """Count `texts` against the model's queue bound, or refuse with 429 and a Retry-After estimate.

        A request is admitted when the queue is empty whatever its size (max_inputs bounds it), so a large request
        is never refused forever.
        """
        bound = self.settings.max_queue
        if served.pending and served.pending + texts > bound:
            raise APIError(429, f"the model {served.id!r} has {served.pending} inputs queued (bound {bound}); "
                                "retry later", code="queue_full",
                           headers={"Retry-After": str(self.retry_after(served))})
        served.pending += texts
        try:
            yield
        finally:
            served.pending -= texts

    def retry_after(self, served: ServedModel) -> int:
        """Seconds until the queue has likely drained, from the worker's measured rate (1 s at least)."""
        m = served.worker.metrics()
        rate = m["texts"] / m["busy_seconds"] if m["busy_seconds"] > 0 else 100.0
        return max(1, min(60, math.ceil(served.pending / max(rate, 1e-6))))

    def close(self) -> None:
        """Stop every worker (callers still waiting get an error)."""
        for served in self.models():
            served.worker.close()
