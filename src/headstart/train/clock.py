"""The compute time of the calling thread: wall-clock less the time it spent waiting its turn.

Every timing a run records (seconds per run, per epoch, per prediction) reads ``compute_time()``. On its
own it is ``time.perf_counter()``; a thread that waits for others inside ``waiting()`` (the lab's race,
where three runs take turns epoch by epoch on one machine) has that wait left out, so each run's seconds
are its own compute, the same figure whether it trained alone or beside others.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["compute_time", "waiting"]

_local = threading.local()


def compute_time() -> float:
    """``perf_counter()`` less every wait of this thread inside ``waiting()``."""
    return time.perf_counter() - getattr(_local, "waited", 0.0)


@contextmanager
def waiting() -> Iterator[None]:
    """A stretch of this thread's time that is not its compute (waiting for another run's turn to end)."""
    tic = time.perf_counter()
    try:
        yield
    finally:
        _local.waited = getattr(_local, "waited", 0.0) + time.perf_counter() - tic
