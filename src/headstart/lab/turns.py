"""Turns: the lab's race, several runs training at once on one machine, one epoch each in turn.

Each running job trains in a thread of its own and holds the turn while it computes; at the end of each
epoch it hands the turn to the next job in line (round robin) and waits for it to come back. So the
curves grow side by side, every run gets the whole machine while it computes (no two of them fight
over two cores), and the wait is left out of each run's own seconds (``train/clock.py``): a run's
counter shows its own compute, the same figure live and in the store. A job that is preparing (feature
extraction) or scoring keeps the turn until its next epoch ends or it finishes. ``pause()`` holds every
job at its next hand-over until ``resume()``.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable

from ..train.clock import waiting

__all__ = ["Turns"]


class Turns:
    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._line: deque[int] = deque()  # jobs waiting for a turn, in order; the holder is not in it
        self._holder: int | None = None
        self._paused = False

    @property
    def holder(self) -> int | None:
        with self._cond:
            return self._holder

    @property
    def paused(self) -> bool:
        with self._cond:
            return self._paused

    @property
    def waiting(self) -> int:
        """Jobs in line for a turn."""
        with self._cond:
            return len(self._line)

    def _wait_for(self, job: int, cancelled: Callable[[], bool]) -> None:
        with waiting():
            while self._holder != job:
                if self._holder is None and not self._paused and self._line and self._line[0] == job:
                    self._line.popleft()
                    self._holder = job
                    self._cond.notify_all()
                    break
                if cancelled():  # out of the line: the caller stops
                    if job in self._line:
                        self._line.remove(job)
                    self._cond.notify_all()
                    return
                self._cond.wait(timeout=0.2)

    def enter(self, job: int, cancelled: Callable[[], bool] = lambda: False) -> None:
        """Join the line; returns once it is ``job``'s turn (or it was cancelled while waiting)."""
        with self._cond:
            self._line.append(job)
            self._cond.notify_all()
            self._wait_for(job, cancelled)

    def hand_over(self, job: int, cancelled: Callable[[], bool] = lambda: False) -> None:
        """``job`` ends its turn (an epoch ended): the next in line computes, then ``job`` again in its place."""
        with self._cond:
            if self._holder != job:
                return
            if not self._line and not self._paused:
                return  # alone: carry on
            self._holder = None
            self._line.append(job)
            self._cond.notify_all()
            self._wait_for(job, cancelled)

    def leave(self, job: int) -> None:
        """``job`` is done (finished, failed or cancelled): the turn goes on without it."""
        with self._cond:
            if self._holder == job:
                self._holder = None
            if job in self._line:
                self._line.remove(job)
            self._cond.notify_all()

    def pause(self) -> None:
        with self._cond:
            self._paused = True
            self._cond.notify_all()

    def resume(self) -> None:
        with self._cond:
            self._paused = False
            self._cond.notify_all()
