"""How long the rest of a race will take, from the runs it has finished (the race's progress bar shows it).

A race's runs differ in cost by orders of magnitude (a probe in seconds, a full fine-tune in minutes,
the pair stage of ``contrastive`` on long texts in hours), so the rest of a race is not its average run
times the runs left. Each entry is timed on its own runs: at a budget it has run at, the mean of those
runs; at another budget, its nearest one scaled by the labelled examples per class (training time grows
about linearly with them). Runs are budget-major (every entry meets the small budgets first), so every
entry has a time after the first budget's first seed; until then the figure is a lower bound, and says so.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["RaceClock", "format_duration"]


class RaceClock:
    """Seconds per run, per entry and labelled examples per class; what the runs left will take."""

    def __init__(self, records: Iterable[Mapping[str, Any]] = ()) -> None:
        self._seen: dict[str, dict[float, list[float]]] = defaultdict(lambda: defaultdict(list))
        for record in records:
            self.observe_record(record)

    def observe_record(self, record: Mapping[str, Any]) -> None:
        """A finished run's record (the store's): its entry, labels per class, and seconds to fit and predict."""
        if record.get("per_class") is not None and record.get("seconds") is not None:
            self.observe(record["strategy"], record["per_class"],
                         record["seconds"] + (record.get("predict_seconds") or 0.0))

    def observe(self, entry: str, per_class: float, seconds: float) -> None:
        if math.isfinite(seconds) and seconds >= 0:
            self._seen[entry][float(per_class)].append(float(seconds))

    def expect(self, entry: str, per_class: float) -> float | None:
        """Seconds a run of ``entry`` at ``per_class`` labels per class is expected to take (None: never timed)."""
        seen = self._seen.get(entry)
        if not seen:
            return None
        if float(per_class) in seen:
            times = seen[float(per_class)]
            return sum(times) / len(times)
        # the nearest budget timed (on a log scale: 8 is nearer 4 than 32), scaled by the examples
        nearest = min(seen, key=lambda p: abs(math.log1p(p) - math.log1p(per_class)))
        mean = sum(seen[nearest]) / len(seen[nearest])
        return mean * per_class / nearest if nearest > 0 and per_class > 0 else mean

    def remaining(self, runs: Iterable[tuple[str, float]]) -> tuple[float, bool]:
        """(seconds the ``(entry, per_class)`` runs will take, whether every one of them could be timed)."""
        total, complete = 0.0, True
        for entry, per_class in runs:
            seconds = self.expect(entry, per_class)
            if seconds is None:
                complete = False
            else:
                total += seconds
        return total, complete

    def left(self, runs: Iterable[tuple[str, float]]) -> str:
        """``"about 1 h 20 min left"``, ``"at least 3 min left"`` (entries not timed yet), or ``""`` (none timed)."""
        runs = list(runs)
        if not runs:
            return ""
        seconds, complete = self.remaining(runs)
        if not complete and seconds == 0:
            return ""
        return f"{'about' if complete else 'at least'} {format_duration(seconds)} left"


def format_duration(seconds: float) -> str:
    """``42 s``, ``7 min``, ``1 h 20 min``, ``2 d 3 h``: two units at most, rounded to the smaller one."""
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    minutes = round(seconds / 60)
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    days, hours = divmod(round(seconds / 3600), 24)
    return f"{days} d {hours} h" if hours else f"{days} d"
