"""A running server follows its registry aliases: after promote or rollback, `champion` answers with the new version.

`AliasFollower` keeps, for each registry name the server answers for, the version it serves. A background thread
notices a move (the promote/rollback routes wake it at once; a change made by another process, e.g. `embedops models
promote`, is seen by a `stat` of the registry's aliases file every `interval` seconds, read only when it changed),
loads and warms the new version on that thread, and then `ModelPool.switch` moves the alias under the pool's lock.
Until then, requests keep getting the old version. A version that fails to load is logged and reported in
GET /v1/models, and the alias keeps serving what it served: it is never dropped.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from embedops.serve.models import ModelPool

log = logging.getLogger("embedops.serve")
_PATH = re.compile(r"(?<![\w.])(?:/|~/)[^\s'\"]+")  # a server path inside an error message


@dataclass
class AliasState:
    """One followed name: the version served, and the version the registry names when that one is not served yet."""

    alias: str
    version: str  # the registry version the server answers with now
    wanted: str | None = None  # the version the registry names, while it loads or after it failed
    error: str | None = None  # why `wanted` could not be served
    is_alias: bool = False  # the registry holds it as an alias (a plain `name@vN` never moves)

    @property
    def state(self) -> str:
        """`current`, `loading` or `failed`."""
        if self.wanted is None:
            return "current"
        return "failed" if self.error else "loading"


def _public(message: str) -> str:
    """An error message without server paths (the API never shows where files live)."""
    return _PATH.sub("(a local folder)", message)


class AliasFollower:
    """Watches the registry's aliases and moves the pool's aliases to the versions they name (off the event loop)."""

    def __init__(self, pool: ModelPool, interval: float = 1.0):
        self.pool = pool
        self.interval = interval
        self._lock = threading.Lock()
        self._followed: dict[str, AliasState] = {}  # name as the registry writes it -> state
        self._wake = threading.Event()
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None
        self._stamp: tuple[int, int, int] | None = None  # (mtime_ns, size, inode) of aliases.json at the last read
        self._registry: Any = None

    # -- what to follow --------------------------------------------------------------------------------------------
    def follow(self, name: str, version: str | None) -> None:
        """Follow `name`, served now with the registry version `version` (no-op for a model not from the registry).

        No file is read here (it may run on the event loop): the thread's next look decides whether `name` is an
        alias."""
        if not version:
            return
        with self._lock:
            if name not in self._followed:
                self._followed[name] = AliasState(name, version)
                self._stamp = None
        self._wake.set()

    def states(self) -> list[AliasState]:
        """Copies of the followed aliases' states."""
        with self._lock:
            return [replace(s) for s in self._followed.values() if s.is_alias]

    # -- the thread ------------------------------------------------------------------------------------------------
    def start(self) -> None:
        """Start the watching thread (once)."""
        with self._lock:
            if self._thread is not None or self._stopped.is_set():
                return
            self._thread = threading.Thread(target=self._run, name="embedops-alias-follower", daemon=True)
            self._thread.start()

    def trigger(self) -> None:
        """Look at the registry now (after an in-process promote or rollback)."""
        with self._lock:
            self._stamp = None
        self._wake.set()

    def stop(self, timeout: float = 30.0) -> None:
        """Stop watching; a load in progress finishes first (its model is then closed with the pool)."""
        self._stopped.set()
        self._wake.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    def _run(self) -> None:
        while not self._stopped.is_set():
            self._wake.wait(self.interval)
            self._wake.clear()
            if self._stopped.is_set():
                break
            try:
                self.sync()
            except Exception:  # noqa: BLE001 - the thread must outlive one bad look; the next one retries
                log.exception("following registry aliases failed")

    def sync(self) -> None:
        """Move every followed alias whose registry version changed (blocking: loads and warms models)."""
        with self._lock:
            followed = list(self._followed.values())
            last = self._stamp
        if not followed:
            return
        if self._registry is None:
            self._registry = self.pool.project.registry
        stamp = self._aliases_stamp(self._registry.root / "aliases.json")
        if stamp is not None and stamp == last:
            return  # unchanged since the last read: one stat, no read
        from embedops.registry import RegistryDamagedError

        try:
            aliases = self._registry.aliases()
        except RegistryDamagedError as exc:
            log.error("registry aliases unreadable; serving the versions loaded", extra={"error": exc.message})
            return  # retried on the next change of the file
        with self._lock:
            self._stamp = stamp
        for state in followed:
            if self._stopped.is_set():
                return
            wanted = (aliases.get(state.alias) or {}).get("version")
            with self._lock:
                state.is_alias = wanted is not None
                if wanted is None or wanted == state.version:
                    state.wanted = state.error = None  # removed from the registry: keep serving what it served
                    continue
                if wanted == state.wanted and state.error:
                    continue  # failed already: a version's files never change, so retry only when the alias moves
                state.wanted, state.error = wanted, None
            self._move(state, wanted)

    @staticmethod
    def _aliases_stamp(path: Path) -> tuple[int, int, int] | None:
        try:
            st = path.stat()
        except OSError:
            return None
        return (st.st_mtime_ns, st.st_size, st.st_ino)

    def _move(self, state: AliasState, wanted: str) -> None:
        """Load and warm `wanted`, then switch the alias to it; on failure keep serving the old version."""
        from embedops.errors import EmbedopsError

        started = time.perf_counter()
        log.info("alias moved in the registry; loading", extra={"alias": state.alias, "version": wanted,
                                                                "serving": state.version})
        try:
            # Not cached in the project: the pool owns it, and it is freed when the alias moves on.
            encoder = self.pool.project.load_encoder(wanted, backend=self.pool.backend, cache=False)
            served = self.pool.switch(state.alias, encoder)
        except Exception as exc:  # noqa: BLE001 - any load failure (corrupt files, bad config) keeps the old one
            message = exc.message if isinstance(exc, EmbedopsError) else f"{type(exc).__name__}: {exc}"
            with self._lock:
                state.error = _public(message) or type(exc).__name__
            log.error("alias not moved: the new version failed to load; still serving the previous one",
                      exc_info=exc, extra={"alias": state.alias, "version": wanted, "serving": state.version})
            return
        with self._lock:
            previous, state.version, state.wanted, state.error = state.version, wanted, None, None
        log.info("alias switched", extra={"alias": state.alias, "version": wanted, "previous": previous,
                                          "model": served.id, "switch_s": round(time.perf_counter() - started, 2)})
