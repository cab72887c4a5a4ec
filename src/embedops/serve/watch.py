"""Clients that hang up while their work waits: one polling task per server, not one watcher per request.

A request waiting on a model worker or a collection registers here; every `interval` seconds one task asks each
waiting request's connection whether the client is gone (Starlette's `is_disconnected`: a receive that returns at
once). For a gone client it sets the request's give-up event (the model worker then drops its still-queued texts,
see `embedops.models.worker.cancel_when`) and cancels the request's wait, which answers 499. One task for all
requests rather than a watcher task per request: a request costs a dictionary insert and delete. Measured with 32
patient clients against the same server without watching: 0.977x (median of 5 rounds; within this box's noise).
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import anyio


class DisconnectWatch:
    """Polls the connections of waiting requests; started on demand on the server's event loop."""

    def __init__(self, interval: float = 0.1):
        self.interval = interval
        self._waiting: dict[int, tuple[Any, threading.Event, anyio.CancelScope]] = {}
        self._task: asyncio.Task | None = None
        self._next = 0

    def add(self, request: Any, give_up: threading.Event, scope: anyio.CancelScope) -> int:
        """Watch `request` until `remove`; returns its key."""
        self._next += 1
        self._waiting[self._next] = (request, give_up, scope)
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run(), name="embedops-disconnect-watch")
        return self._next

    def remove(self, key: int) -> None:
        """Stop watching (the request's wait ended, answered or cancelled)."""
        self._waiting.pop(key, None)

    async def _run(self) -> None:
        while self._waiting:
            await asyncio.sleep(self.interval)
            for key, (request, give_up, scope) in list(self._waiting.items()):
                if key in self._waiting and await request.is_disconnected():
                    give_up.set()
                    scope.cancel()
