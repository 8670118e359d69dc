"""The one way headstart opens its SQLite stores (a race's ``results.sqlite``, the lab's ``lab.sqlite``).

Every database error becomes one sentence that names the file and the fix: damaged (never deleted or
rebuilt behind the user's back: their finished runs may still be recoverable), locked by another
process, a full disk, read-only, or not openable at all. Callers go through ``Database``; nothing else
in headstart calls ``sqlite3`` directly.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .errors import HeadstartError

__all__ = ["Database", "explain"]

TIMEOUT = 30.0  # seconds a write waits for another process's lock before giving up


def explain(exc: sqlite3.Error, path: Path, what: str, timeout: float = TIMEOUT) -> HeadstartError:
    """``exc`` (raised while using the store at ``path``, which holds ``what``) as one sentence with the fix."""
    name = getattr(exc, "sqlite_errorname", "") or ""
    text = str(exc)
    if name.startswith(("SQLITE_NOTADB", "SQLITE_CORRUPT")) or "not a database" in text or "malformed" in text:
        return HeadstartError(
            f"{path} ({what}) is damaged and cannot be read ({text}); headstart leaves it as it is: move it away "
            f"or delete it to start afresh in {path.parent}, or use another --out folder.")
    if name.startswith("SQLITE_FULL") or "disk is full" in text:
        return HeadstartError(f"The disk holding {path} ({what}) is full; free space, then run again (finished runs "
                              "are kept).")
    if name.startswith(("SQLITE_READONLY", "SQLITE_PERM", "SQLITE_AUTH")) or "readonly" in text:
        return HeadstartError(f"{path} ({what}) cannot be written: the file, its folder or the disk is read-only; "
                              "fix the permissions, or use another --out folder.")
    if name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")) or "locked" in text:
        return HeadstartError(f"{path} ({what}) stayed locked by another process for {timeout:g} s; let "
                              "the other headstart command on this folder finish, then run again.")
    if name.startswith("SQLITE_CANTOPEN") or "unable to open" in text:
        return HeadstartError(f"{path} ({what}) cannot be opened: its folder is missing or not writable, or the "
                              "path is not a file; fix that, or use another --out folder.")
    if name.startswith("SQLITE_IOERR") or "disk I/O" in text:
        return HeadstartError(f"Reading or writing {path} ({what}) failed with a disk error ({text}); check that the "
                              "disk has space and is still mounted, then run again (finished runs are kept).")
    return HeadstartError(f"{path} ({what}) could not be used: SQLite says {text!r}; move it away to start afresh, or "
                          "use another --out folder.")


class Database:
    """An open SQLite file with its schema applied, in WAL mode (readers never wait for a writer).

    ``rows`` reads, ``transaction`` writes atomically; any ``sqlite3.Error`` on the way, opening included,
    is a ``HeadstartError`` from ``explain``.
    """

    def __init__(self, path: str | Path, schema: str, what: str, *, timeout: float | None = None) -> None:
        self.path, self.what, self.timeout = Path(path), what, TIMEOUT if timeout is None else timeout
        if self.path.is_dir():
            raise HeadstartError(f"{self.path} ({what}) is a folder, not a file; move it away, or use another --out "
                                 "folder.")
        self._db: sqlite3.Connection | None = None
        with self.errors():
            self._db = sqlite3.connect(self.path, timeout=self.timeout)
            try:
                self._db.execute("PRAGMA journal_mode=WAL")
                self._db.executescript(schema)
                self._db.commit()
            except sqlite3.Error:
                self.close()
                raise

    @contextmanager
    def errors(self) -> Iterator[None]:
        """Turns any SQLite error inside the block into the sentence for this store."""
        try:
            yield
        except sqlite3.Error as exc:
            raise explain(exc, self.path, self.what, self.timeout) from None

    def rows(self, sql: str, params: tuple[Any, ...] | list[Any] = ()) -> list[tuple[Any, ...]]:
        with self.errors():
            return self._conn.execute(sql, params).fetchall()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """A block of writes committed together, or rolled back together."""
        with self.errors(), self._conn as db:
            yield db

    def execute(self, sql: str, params: tuple[Any, ...] | list[Any] = ()) -> sqlite3.Cursor:
        """One write, committed."""
        with self.transaction() as db:
            return db.execute(sql, params)

    @property
    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            raise HeadstartError(f"{self.path} ({self.what}) is closed; open it again.")
        return self._db

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    def __enter__(self) -> Database:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
