"""Fan-out of live events to every browser watching: published from the training thread, read in the server's
event loop (one queue per connection), with a short history so a page opened mid-run catches up."""

from __future__ import annotations

import asyncio
import itertools
import threading
from collections import deque
from typing import Any

__all__ = ["EventHub"]


class EventHub:
    def __init__(self, history: int = 20000) -> None:
        self._lock = threading.Lock()
        self._subscribers: set[tuple[asyncio.AbstractEventLoop, asyncio.Queue]] = set()
        self._history: deque[dict[str, Any]] = deque(maxlen=history)
        self._ids = itertools.count(1)

    def publish(self, event: dict[str, Any]) -> dict[str, Any]:
        """Send ``event`` (a JSON-able dict with a ``type``) to every subscriber; safe from any thread."""
        with self._lock:
            event = {**event, "id": next(self._ids)}
            self._history.append(event)
            subscribers = list(self._subscribers)
        for loop, queue in subscribers:
            try:
                loop.call_soon_threadsafe(queue.put_nowait, event)
            except RuntimeError:  # that connection's loop has closed
                self.unsubscribe((loop, queue))
        return event

    def subscribe(self, after: int = 0) -> tuple[tuple[asyncio.AbstractEventLoop, asyncio.Queue], list[dict]]:
        """A queue for the calling event loop, and the kept events newer than ``after``."""
        handle = (asyncio.get_running_loop(), asyncio.Queue())
        with self._lock:
            self._subscribers.add(handle)
            missed = [e for e in self._history if e["id"] > after]
        return handle, missed

    def unsubscribe(self, handle: tuple[asyncio.AbstractEventLoop, asyncio.Queue]) -> None:
        with self._lock:
            self._subscribers.discard(handle)

    @property
    def watchers(self) -> int:
        with self._lock:
            return len(self._subscribers)
