"""CSV/TSV rows as a user's file holds them: the delimiter found, ragged rows and unclosed quotes named by line."""

from __future__ import annotations

import csv
import io
import logging
import sys
from pathlib import Path
from typing import Any

from ..errors import HeadstartError

__all__ = ["table_rows"]

log = logging.getLogger(__name__)


#: what a table's fields may be separated by, besides the suffix's own (tried when the header does not split on it)
_DELIMITERS = {",": "commas", "\t": "tabs", ";": "semicolons", "|": "vertical bars"}


def _parse(text: str, delimiter: str, *, strict: bool = False) -> tuple[list[list[str]], list[tuple[int, int]]]:
    """Records and, for each, the (first, last) physical line it spans."""
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=strict)
    rows, lines, last = [], [], 0
    for row in reader:
        rows.append(row)
        lines.append((last + 1, reader.line_num))
        last = reader.line_num
    return rows, lines


def _splits_evenly(rows: list[list[str]]) -> bool:
    """The header splits into at least two fields, and (nearly) every row has as many."""
    if not rows or len(rows[0]) < 2:
        return False
    body = [r for r in rows[1:51] if r]
    return not body or sum(len(r) == len(rows[0]) for r in body) >= 0.9 * len(body)


def table_rows(path: Path, text: str) -> tuple[list[str], list[dict[str, Any]]]:
    """A CSV/TSV file's header and rows. The delimiter is the suffix's unless the header does not split on it and
    another one (``;``, tab, ``|``) fits (a note names it); rows whose field count differs from the header's
    and a quote never closed are refused with their line numbers, never read as junk."""
    own = "\t" if path.suffix.lower() in (".tsv", ".tab") else ","
    kind = "TSV" if own == "\t" else "CSV"
    csv.field_size_limit(min(sys.maxsize, 2**31 - 1))  # a long review or article is one field, not an error
    delimiter = own
    try:
        rows, lines = _parse(text, own)
        if not _splits_evenly(rows):
            sample = "\n".join(text.splitlines()[:51])
            for other in (d for d in _DELIMITERS if d != own and d in text.partition("\n")[0]):
                if _splits_evenly(_parse(sample, other)[0]):
                    delimiter = other
                    rows, lines = _parse(text, other)
                    log.warning("%s: read with %s between fields (its header does not split on %s)", path,
                                _DELIMITERS[other], _DELIMITERS[own])
                    break
    except csv.Error as exc:
        raise HeadstartError(f"{path}: not valid {kind} ({exc}); fix the file or re-save it.") from None
    rows_lines = [(r, ln) for r, ln in zip(rows, lines) if r]  # blank lines are not rows
    if not rows_lines:
        return [], []
    (header, _), body = rows_lines[0], rows_lines[1:]
    if body and body[-1][1][1] > body[-1][1][0]:  # the last record spans lines: a quote that never closes?
        try:
            _parse(text, delimiter, strict=True)
        except csv.Error as exc:
            if "unexpected end of data" in str(exc):
                raise HeadstartError(f"{path}, line {body[-1][1][0]}: a quote opens there and is never closed, so the "
                                     "rest of the file would be one text; close it (a quote inside a text is "
                                     'written "") or re-save the file.') from None
    ragged = [(ln[0], len(r)) for r, ln in body if len(r) != len(header)]
    if ragged:
        shown = ", ".join(f"{line} ({n} field{'s' if n != 1 else ''})" for line, n in ragged[:5])
        shown += ", ..." if len(ragged) > 5 else ""
        raise HeadstartError(f"{path}: {len(ragged)} row{'s' if len(ragged) > 1 else ''} do not have the header's "
                             f"{len(header)} fields, at line{'s' if len(ragged) > 1 else ''} {shown}; a text with an "
                             'unquoted separator needs quotes ("good, really") — fix those lines or re-save the file.')
    return list(header), [dict(zip(header, r)) for r, _ in body]
