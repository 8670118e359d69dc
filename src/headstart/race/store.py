"""The race's results: an SQLite database written one finished run at a time.

Each run is one committed row, keyed by everything that determines its result, so a killed race
(even SIGKILL) loses at most the run in progress, re-running the same command skips finished runs,
and changing the grid only adds the missing ones. WAL mode keeps readers (the report, a dashboard)
working while a race writes.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from ..errors import HeadstartError
from ..storage import Database

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
        self._db = Database(self.path, SCHEMA, "a race's results")
        self._check_format()

    def _check_format(self) -> None:
        found = self.get_meta("format")
        if found == RESULTS_FORMAT:
            return
        if found is None and self._db.rows("SELECT COUNT(*) FROM runs")[0][0] == 0:
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
        return {row[0] for row in self._db.rows("SELECT key FROM runs")}

    def add(self, key: str, strategy: str, budget: int | None, seed: int, record: dict[str, Any]) -> None:
        with self._db.transaction() as db:  # one transaction per run: committed, or not there at all
            db.execute("INSERT OR REPLACE INTO runs VALUES (?, ?, ?, ?, ?, ?)",
                             (key, strategy, budget, seed, time.time(), json.dumps(record)))

    def version(self) -> tuple[int, float]:
        """(runs, newest finish time): changes whenever a run is added; cheap enough to poll."""
        count, newest = self._db.rows("SELECT COUNT(*), MAX(finished) FROM runs")[0]
        return int(count), float(newest or 0.0)

    def records(self, keys: set[str] | None = None) -> list[dict[str, Any]]:
        """Every run (oldest first), or the runs with these keys (looked up by key, not by reading them all)."""
        if keys is not None and len(keys) <= 500:
            marks = ",".join("?" * len(keys))
            rows = self._db.rows(f"SELECT key, finished, record FROM runs WHERE key IN ({marks}) ORDER BY finished",
                                 sorted(keys))
        else:
            rows = self._db.rows("SELECT key, finished, record FROM runs ORDER BY finished")
        out = []
        for key, finished, record in rows:
            if keys is None or key in keys:
                out.append({**self._decode(record, f"run {key}"), "key": key, "finished": finished})
        return out

    def set_meta(self, key: str, value: Any) -> None:
        self._db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, json.dumps(value)))

    def get_meta(self, key: str, default: Any = None) -> Any:
        rows = self._db.rows("SELECT value FROM meta WHERE key = ?", (key,))
        return self._decode(rows[0][0], f"setting {key!r}") if rows else default

    def _decode(self, text: str, what: str) -> Any:
        try:
            return json.loads(text)
        except (ValueError, TypeError):
            raise HeadstartError(f"{self.path}: the {what} is damaged (not valid JSON); headstart leaves the file as "
                                 "it is: move it away or delete it to start afresh, or use another --out folder."
                                 ) from None
