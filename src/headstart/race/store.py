"""The race's results: an SQLite database written one finished run at a time.

Each run is one committed row, keyed by everything that determines its result, so a killed race
(even SIGKILL) loses at most the run in progress, re-running the same command skips finished runs,
and changing the grid only adds the missing ones. WAL mode keeps readers (the report, a dashboard)
working while a race writes.
"""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path
from typing import Any

from ..errors import HeadstartError

__all__ = ["RESULTS_FORMAT", "ResultStore"]

#: Bumped whenever what a stored run means changes (scoring, budgets, a default not in the run key):
#: 2 = budgets count validation labels; runs scored on selection and test parts.
RESULTS_FORMAT = 2

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    key TEXT PRIMARY KEY,
    strategy TEXT NOT NULL,
    budget INTEGER,            -- labelled examples per class; NULL means the whole pool
    seed INTEGER NOT NULL,
    finished REAL NOT NULL,    -- unix time the row was committed
    record TEXT NOT NULL       -- JSON: metrics, curves, notes
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


class ResultStore:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(SCHEMA)
        self._db.commit()
        self._check_format()

    def _check_format(self) -> None:
        found = self.get_meta("format")
        if found == RESULTS_FORMAT:
            return
        if found is None and self._db.execute("SELECT COUNT(*) FROM runs").fetchone()[0] == 0:
            self.set_meta("format", RESULTS_FORMAT)
            return
        self.close()
        raise HeadstartError(
            f"{self.path} holds results in format {found or 1}, written by an older headstart; this one writes format "
            f"{RESULTS_FORMAT} (budgets count validation labels, winners are chosen on selection data), so the runs "
            "cannot be mixed. Use another --out folder, or move the old one away to re-run there.")
    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> ResultStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def done_keys(self) -> set[str]:
        return {row[0] for row in self._db.execute("SELECT key FROM runs")}

    def add(self, key: str, strategy: str, budget: int | None, seed: int, record: dict[str, Any]) -> None:
        with self._db:  # one transaction per run: committed, or not there at all
            self._db.execute("INSERT OR REPLACE INTO runs VALUES (?, ?, ?, ?, ?, ?)",
                             (key, strategy, budget, seed, time.time(), json.dumps(record)))

    def version(self) -> tuple[int, float]:
        """(runs, newest finish time): changes whenever a run is added; cheap enough to poll."""
        count, newest = self._db.execute("SELECT COUNT(*), MAX(finished) FROM runs").fetchone()
        return int(count), float(newest or 0.0)

    def records(self, keys: set[str] | None = None) -> list[dict[str, Any]]:
        """Every run (oldest first), or the runs with these keys (looked up by key, not by reading them all)."""
        if keys is not None and len(keys) <= 500:
            marks = ",".join("?" * len(keys))
            rows = self._db.execute(f"SELECT key, finished, record FROM runs WHERE key IN ({marks}) ORDER BY finished",
                                    sorted(keys))
        else:
            rows = self._db.execute("SELECT key, finished, record FROM runs ORDER BY finished")
        out = []
        for key, finished, record in rows:
            if keys is None or key in keys:
                out.append({**json.loads(record), "key": key, "finished": finished})
        return out

    def set_meta(self, key: str, value: Any) -> None:
        with self._db:
            self._db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, json.dumps(value)))

    def get_meta(self, key: str, default: Any = None) -> Any:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return json.loads(row[0]) if row else default
