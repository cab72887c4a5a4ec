"""The served models: one `ModelWorker` per vector space, routed by the request's `model` (ids and aliases).

Two names for the same weights (`all-MiniLM-L6-v2` and a registry alias `champion` pointing at a copy of it) share one
worker: the worker is keyed by the encoder's fingerprint, so the cores run one model, not two competing ones.

A registry alias the server answers for follows promote and rollback (`reload.AliasFollower`): the new version loads
and warms on a background thread, the alias switches under the pool's lock, and a worker nothing names any more (not
the default, no configured name or alias, no open collection's vector space) is closed once its requests drained.
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
# A replaced model is closed after this long with nothing admitted, queued or running: a request that picked it just
# before the switch has been admitted by then (the embeddings route picks and admits without awaiting in between).
_DRAIN_QUIET_S = 0.5


@dataclass(eq=False)
class ServedModel:
    """A model the server answers for: its id, worker, aliases and admitted-but-unfinished texts."""

    id: str
    worker: ModelWorker
    created: int
    aliases: set[str] = field(default_factory=set)
    pending: int = 0  # texts admitted and not yet returned; touched on the event loop only
    registry_ref: str | None = None  # the registry version its weights came from (`minilm@v2`), if any
    retired: bool = False  # replaced and unnamed: closed once its in-flight work drained

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
        self._named: set[str] = set()  # lower-cased names clients use: configured, or registry names resolved since
        self._pinned: set[str] = set()  # fingerprints of open collections' vector spaces: never retired
        self._default_name: str | None = None
        self._retiring: set[ServedModel] = set()  # retired, still draining
        self.backend = settings.backend
        self.default: ServedModel | None = None
        from embedops.serve.reload import AliasFollower

        self.follower = AliasFollower(self)

    # -- loading (on a worker thread at start-up, never on the event loop) ---------------------------------------
    def load(self, names: list[str], backend: str | None = None) -> None:
        """Load (or alias) each configured model name and warm it; the first is the default."""
        self.backend = backend or self.settings.backend
        for name in names or [self.project.config.model.name]:
            encoder = self.project.load_encoder(name, backend=self.backend)
            served = self._serve(name, encoder)
            with self._lock:
                self._named.add(name.lower())
                if self.default is None:
                    self.default, self._default_name = served, name.lower()
            self.follower.follow(name, getattr(getattr(encoder, "source", None), "registry_ref", None))
        try:
            self.follower.sync()  # before ready: GET /v1/models reports the aliases from the first request on
        except Exception:  # noqa: BLE001 - serving what was loaded matters more; the thread tries again
            log.exception("reading the registry's aliases failed")
        self.follower.start()

    def encoder_for_spec(self, spec: dict[str, Any]) -> ModelWorker:
        """A collection's loader: the served worker for its recorded vector space, loading it if none serves it."""
        with self._lock:
            served = self._by_fingerprint.get(spec.get("fingerprint") or "")
            if served is not None:
                self._pinned.add(served.fingerprint)
        if served is None:
            encoder = self.project.encoder_from_spec(spec)
            served = self._serve(str(spec.get("name") or "model"), encoder)
            self.pin(served)
        return served.worker

    def pin(self, served: ServedModel) -> None:
        """Keep `served` for good: a collection embedded with it queries with it, whatever aliases move."""
        with self._lock:
            self._pinned.add(served.fingerprint)
            if served.retired and not served.worker.closed and served.fingerprint not in self._by_fingerprint:
                # Picked just before a promotion retired it: it comes back rather than leave a collection orphaned.
                served.retired = False
                self._retiring.discard(served)
                self._rename(served, served.id)
                self._by_fingerprint[served.fingerprint] = served

    def _serve(self, name: str, encoder: Any) -> ServedModel:
        fingerprint = encoder.fingerprint
        with self._lock:
            served = self._by_fingerprint.get(fingerprint)
            if served is None:
                # `default` names the bundled model; its own name is the clearer id.
                model_id = encoder.name if name.lower() in _DEFAULT_ALIASES else name
                model_id = model_id if model_id not in self._models else f"{model_id}@{fingerprint[:8]}"
                served = self._new_served(model_id, encoder)
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
            self.warm(served)
        return served

    def _new_served(self, model_id: str, encoder: Any) -> ServedModel:
        """A model with its own (started, not yet warm) worker; not routed to until it is installed."""
        worker = ModelWorker(encoder, max_batch_size=self.settings.max_batch_size,
                             max_batch_tokens=self.settings.max_batch_tokens,
                             max_wait_ms=self.settings.max_wait_ms, name=f"embedops-worker[{model_id}]")
        ref = getattr(getattr(encoder, "source", None), "registry_ref", None)
        return ServedModel(model_id, worker, int(time.time()), registry_ref=ref)

    def warm(self, served: ServedModel) -> None:
        """Run the model once: the first call pays for thread pools and caches (an image model warms on an image)."""
        started = time.perf_counter()
        encoder = served.worker.encoder
        served.worker.encode(warmup_inputs(encoder))
        log.info("model ready", extra={"model": served.id, "backend": getattr(encoder, "backend", None),
                                       "dimension": encoder.output_dimension,
                                       "warmup_s": round(time.perf_counter() - started, 3)})

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
                    self._named.add(name.lower())
                    served.aliases.add(name)
                    break
            else:
                return None
        self.follower.follow(name, getattr(found, "registry_ref", None))
        return served

    # -- following registry aliases (reload.AliasFollower calls these on its own thread) ---------------------------
    def switch(self, alias: str, encoder: Any) -> ServedModel:
        """Point `alias` at `encoder`'s vector space: a new worker is warmed before any request reaches it, then the
        alias moves under the lock; the model it left is retired (closed once drained) if nothing names it."""
        key = alias.lower()
        with self._lock:
            served = self._by_fingerprint.get(encoder.fingerprint)
        fresh = None
        if served is None:
            fresh = self._new_served(alias, encoder)
            try:
                self.warm(fresh)
            except BaseException:
                fresh.worker.close()
                raise
        with self._lock:
            if fresh is not None:
                # A collection may have loaded the same vector space meanwhile: one worker per space.
                served = self._by_fingerprint.get(encoder.fingerprint)
                if served is None:
                    served = fresh
                    self._install(served, self._aliases.get(key), key)
            old = self._aliases.get(key)
            self._aliases[key] = served
            served.aliases.add(alias)
            if served.registry_ref:
                served.aliases.add(served.registry_ref)
                self._aliases.setdefault(served.registry_ref.lower(), served)
            if self._default_name == key:
                self.default = served
            retired = None
            if old is not None and old is not served:
                old.aliases.discard(alias)
                if old.id.lower() == key:  # the id follows the name; the old model keeps its version's name
                    self._rename(old, old.registry_ref or f"{old.id}@{old.fingerprint[:8]}")
                retired = self._retire_if_unused(old)
        if fresh is not None and served is not fresh:
            fresh.worker.close()
        if retired is not None:
            threading.Thread(target=self._drain_and_close, args=(retired,), name=f"embedops-retire[{retired.id}]",
                             daemon=True).start()
        return served

    def _install(self, served: ServedModel, old: ServedModel | None, key: str) -> None:
        """Register a warmed model (under the lock): its id is the alias when the alias was the old model's id,
        else its registry version."""
        if old is not None and old.id.lower() == key:
            self._rename(old, old.registry_ref or f"{old.id}@{old.fingerprint[:8]}")
            model_id = served.id
        else:
            model_id = served.registry_ref or served.id
        if model_id in self._models:
            model_id = f"{model_id}@{served.fingerprint[:8]}"
        served.id = model_id
        served.aliases.add(model_id)
        self._models[model_id] = served
        self._by_fingerprint[served.fingerprint] = served
        self._aliases.setdefault(model_id.lower(), served)

    def _rename(self, served: ServedModel, model_id: str) -> None:
        if model_id in self._models and self._models[model_id] is not served:
            model_id = f"{model_id}@{served.fingerprint[:8]}"
        self._models = {(model_id if m is served else k): m for k, m in self._models.items()}  # keeps load order
        self._models.setdefault(model_id, served)
        served.aliases.discard(served.id)
        served.id = model_id
        served.aliases.add(model_id)
        self._aliases.setdefault(model_id.lower(), served)

    def _retire_if_unused(self, served: ServedModel) -> ServedModel | None:
        """Take `served` out of routing (under the lock) when it is not the default, no configured or followed name
        reaches it and no open collection queries with it."""
        if served is self.default or served.fingerprint in self._pinned:
            return None
        if any(self._aliases.get(name) is served for name in self._named):
            return None
        self._models = {k: m for k, m in self._models.items() if m is not served}
        if self._by_fingerprint.get(served.fingerprint) is served:
            del self._by_fingerprint[served.fingerprint]
        for name in [n for n, m in self._aliases.items() if m is served]:
            del self._aliases[name]
        served.retired = True
        self._retiring.add(served)
        return served

    def _drain_and_close(self, served: ServedModel) -> None:
        """Close a retired model's worker once nothing has been admitted to or run on it for a moment."""
        deadline = time.monotonic() + self.settings.request_timeout + 10
        quiet_since: float | None = None
        while time.monotonic() < deadline:
            m = served.worker.metrics()
            now = time.monotonic()
            if served.pending or m["in_flight_requests"] or m["queue_depth"]:
                quiet_since = None
            elif quiet_since is None:
                quiet_since = now
            elif now - quiet_since >= _DRAIN_QUIET_S:
                break
            time.sleep(0.05)
        with self._lock:
            if not served.retired:  # pinned again by a collection meanwhile
                return
            self._retiring.discard(served)
        served.worker.close()
        forget = getattr(self.project, "forget_encoder", None)
        if forget is not None:  # loaded at start-up, the project cached it: nothing holds its weights after this
            forget(served.worker.encoder)
        log.info("model closed", extra={"model": served.id, "version": served.registry_ref,
                                        "reason": "replaced and no longer named"})

    def named(self, alias: str) -> ServedModel | None:
        """The model an alias routes to now (None if none)."""
        with self._lock:
            return self._aliases.get(alias.lower())

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
        if served.retired and served.worker.closed:
            # Only a request that picked the model before a promotion and waited past the drain gets here.
            raise APIError(503, f"the model {served.id!r} was replaced by a newer version; retry",
                           code="model_replaced", headers={"Retry-After": "1"})
        if served.pending and served.pending + texts > bound:
            raise APIError(429, f"the model {served.id!r} has {served.pending} inputs queued (bound {bound}); "
                                "retry later", code="queue_full",
                           headers={"Retry-After": str(self.retry_after(served))})
        wait_bound = self.settings.max_queue_wait_s
        wait = served.worker.estimated_wait() if served.pending and wait_bound is not None else None
        if wait is not None and wait > wait_bound:
            raise APIError(429, f"the model {served.id!r} has about {wait:.1f} s of work queued ahead, over the wait "
                                f"bound of {wait_bound:g} s; retry later", code="queue_full",
                           headers={"Retry-After": str(max(1, min(60, math.ceil(wait))))})
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
        """Stop following aliases and stop every worker (callers still waiting get an error)."""
        self.follower.stop()
        with self._lock:
            draining = list(self._retiring)
        for served in self.models() + draining:
            served.worker.close()
