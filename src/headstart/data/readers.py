"""Read a user's files into a ``Task``: CSV/TSV/JSONL tables, image folders, numpy arrays."""

from __future__ import annotations

import codecs
import csv
import io
import json
import logging
import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError

from ..errors import HeadstartError
from .task import Task, require_classes

__all__ = ["IMAGE_SUFFIXES", "check_labels", "from_arrays", "image_size", "input_modality", "label_values",
           "read_image_folder", "read_input_texts", "read_table", "read_text"]

log = logging.getLogger(__name__)

TEXT_COLUMNS = ("text", "sentence", "review", "content", "body", "document", "message")
LABEL_COLUMNS = ("label", "labels", "category", "class", "target", "sentiment")
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm"}


def read_text(path: Path, encoding: str = "utf-8") -> str:
    """A whole text file, with errors that name the file and what to do."""
    try:
        codecs.lookup(encoding)
    except LookupError:
        raise HeadstartError(f"Unknown encoding {encoding!r}; use one Python knows, e.g. utf-8, latin-1 or cp1252."
                             ) from None
    if not path.exists():
        raise HeadstartError(f"{path} does not exist.")
    if not path.is_file():
        raise HeadstartError(f"{path} is not a file.")
    raw = path.read_bytes()
    if not raw.strip():
        raise HeadstartError(f"{path} is empty; it needs a header row and at least one example per class.")
    try:
        return raw.decode("utf-8-sig" if encoding.lower().replace("_", "-") == "utf-8" else encoding)
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise HeadstartError(
            f"{path} is not valid {encoding} (line {line}, byte {exc.start}: {raw[exc.start:exc.start + 4]!r}). "
            "Pass its real encoding, e.g. --encoding latin-1 (Python: encoding='latin-1'), or re-save it as UTF-8."
        ) from None


def _pick(columns: Sequence[str], wanted: str | None, guesses: Sequence[str], what: str, flag: str,
          path: Path) -> str:
    if wanted is not None:
        if wanted not in columns:
            raise HeadstartError(f"{path} has no {what} column {wanted!r}. Columns: {_names(columns)}.")
        return wanted
    lowered = {c.lower(): c for c in columns}
    for g in guesses:
        if g in lowered:
            return lowered[g]
    raise HeadstartError(
        f"{path}: cannot tell which column holds the {what} (columns: {_names(columns)}). "
        f"Name it with {flag} COLUMN."
    )


def _names(columns) -> str:
    """Column names for a one-line message: a name with a line break or other control character is quoted."""
    return ", ".join(c if c.isprintable() else repr(c) for c in map(str, columns))


def _rows(path: Path, text: str) -> tuple[list[str], list[dict[str, Any]]]:
    if path.suffix.lower() in (".jsonl", ".ndjson"):
        rows = []
        for n, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise HeadstartError(f"{path}, line {n}: not valid JSON ({exc.msg}).") from None
            except (ValueError, RecursionError):
                raise HeadstartError(f"{path}, line {n}: not valid JSON (too deeply nested or too large).") from None
            if not isinstance(row, dict):
                raise HeadstartError(f"{path}, line {n}: each line must be a JSON object with named fields.")
            rows.append(row)
        columns = list(dict.fromkeys(k for r in rows for k in r))
        return columns, rows
    return _table_rows(path, text)


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


def _fits(rows: list[list[str]]) -> bool:
    """The header splits into at least two fields, and (nearly) every row has as many."""
    if not rows or len(rows[0]) < 2:
        return False
    body = [r for r in rows[1:51] if r]
    return not body or sum(len(r) == len(rows[0]) for r in body) >= 0.9 * len(body)


def _table_rows(path: Path, text: str) -> tuple[list[str], list[dict[str, Any]]]:
    """A CSV/TSV file's header and rows. The delimiter is the suffix's unless the header does not split on it and
    another one (``;``, tab, ``|``) fits (a note names it); rows whose field count differs from the header's
    and a quote never closed are refused with their line numbers, never read as junk."""
    own = "\t" if path.suffix.lower() in (".tsv", ".tab") else ","
    kind = "TSV" if own == "\t" else "CSV"
    csv.field_size_limit(min(sys.maxsize, 2**31 - 1))  # a long review or article is one field, not an error
    delimiter = own
    try:
        rows, lines = _parse(text, own)
        if not _fits(rows):
            sample = "\n".join(text.splitlines()[:51])
            for other in (d for d in _DELIMITERS if d != own and d in text.partition("\n")[0]):
                if _fits(_parse(sample, other)[0]):
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


def _rows_named(rows: list[int]) -> str:
    shown = ", ".join(map(str, rows[:8]))
    return f"row{'s' if len(rows) > 1 else ''} {shown}{', ...' if len(rows) > 8 else ''}"


def continuous_labels(labels: Sequence[str]) -> str | None:
    """What continuous labels look like (``"40 distinct fractional numbers such as 0.13"``), or None when they are
    class labels. As scikit-learn's ``type_of_target``: numbers with a fractional part are not classes."""
    values = []
    for label in labels:
        try:
            values.append(float(label))
        except ValueError:
            return None
    fractional = sorted({v for v in values if math.isfinite(v) and v != int(v)})
    if not fractional:
        return None
    return f"{len(set(values))} distinct numbers, {len(fractional)} of them fractional (such as {fractional[0]:g})"


def check_labels(labels: list[str], source: str, normalize: bool) -> tuple[list[str], list[str]]:
    """Labels that differ only in case or surrounding spaces: merged when asked (or when only spaces differ),
    else kept apart; either way a warning names them. Returns (labels, warnings)."""
    groups: dict[str, set[str]] = {}
    for label in labels:
        groups.setdefault(label.strip().casefold(), set()).add(label)
    clashing = {k: v for k, v in groups.items() if len(v) > 1}
    if not clashing:
        return labels, []
    counts: dict[str, int] = {}
    for label in labels:
        counts[label] = counts.get(label, 0) + 1
    mapping, warnings = {}, []
    for spellings in clashing.values():
        names = " / ".join(repr(s) for s in sorted(spellings))
        only_spaces = len({s.strip() for s in spellings}) == 1
        if normalize or only_spaces:
            keep = max(sorted(spellings), key=lambda s: counts[s]).strip()
            mapping.update({s: keep for s in spellings})
            warnings.append(f"{source}: labels {names} differ only in {'spaces' if only_spaces else 'case or spaces'}"
                            f"; merged into {keep!r}")
        else:
            warnings.append(f"{source}: labels {names} differ only in case or spaces and are kept as separate classes;"
                            " pass --normalize-labels (Python: normalize_labels=True) to merge them")
    for w in warnings:
        log.warning("%s", w)
    return [mapping.get(label, label) for label in labels], warnings


def read_table(path: str | Path, *, text_column: str | None = None, label_column: str | None = None,
               encoding: str = "utf-8", normalize_labels: bool = False) -> Task:
    """A CSV, TSV or JSONL file of texts and labels. Column names are guessed when not given.

    Rows with an empty text are dropped (a warning names them); labels that differ only in case or
    spaces are reported, and merged with ``normalize_labels``.
    """
    path = Path(path)
    columns, rows = _rows(path, read_text(path, encoding))
    if not rows:
        raise HeadstartError(f"{path} has a header but no rows.")
    text_col = _pick(columns, text_column, TEXT_COLUMNS, "text", "--text-column", path)
    label_col = _pick(columns, label_column, LABEL_COLUMNS, "label", "--label-column", path)
    texts, labels, empty = [], [], []
    for n, row in enumerate(rows, 2):  # row 1 is the header
        text, label = row.get(text_col), row.get(label_col)
        if label is None or str(label).strip() == "":
            raise HeadstartError(f"{path}, row {n}: empty {label_col!r}; give every row a label or remove it.")
        if isinstance(label, (list, dict)):
            raise HeadstartError(f"{path}, row {n}: {label_col!r} is a JSON {type(label).__name__}, not one class "
                                 "label; give each row a single label (multi-label data are not supported).")
        if text is None or not str(text).strip():
            empty.append(n)
            continue
        texts.append(str(text))
        labels.append(str(label))
    notes = []
    if empty:
        notes.append(f"{path}: dropped {len(empty)} {_rows_named(empty)} with an empty {text_col!r}")
        log.warning("%s", notes[-1])
    if not texts:
        raise HeadstartError(f"{path}: every {text_col!r} is empty; check --text-column.")
    continuous = continuous_labels(labels)
    if continuous:
        raise HeadstartError(f"{path}: the {label_col!r} column holds {continuous}; headstart classifies, so give "
                             "class labels (words or whole numbers), or bin the numbers into classes first.")
    labels, warned = check_labels(labels, str(path), normalize_labels)
    labels = [label.strip() for label in labels]
    classes = tuple(sorted(set(labels)))
    index = {c: i for i, c in enumerate(classes)}
    task = Task(texts, np.array([index[c] for c in labels]), classes, "text", path.stem, str(path),
                tuple(notes + warned))
    task.require_classes()
    return task


def read_image_folder(path: str | Path, *, strict: bool = False) -> Task:
    """``path/<class>/<image>``. Unreadable files are skipped and counted (an error with ``strict``)."""
    path = Path(path)
    if not path.is_dir():
        raise HeadstartError(f"{path} is not a folder.")
    class_dirs = sorted(d for d in path.iterdir() if d.is_dir() and not d.name.startswith("."))
    if not class_dirs:
        raise HeadstartError(f"{path} has no sub-folders; put each class's images in a sub-folder named after it.")
    files, labels, bad, empty = [], [], [], []
    kept: list[str] = []
    for d in class_dirs:
        before = len(files)
        label = len(kept)
        for f in sorted(p for p in d.rglob("*") if p.is_file() and not p.name.startswith(".")):
            try:
                image_size(f)
            except HeadstartError as exc:
                if strict:
                    raise HeadstartError(f"{exc} Remove it, or drop --strict to skip such files.") from None
                bad.append(f)
                continue
            files.append(str(f))
            labels.append(label)
        if len(files) == before:
            empty.append(d.name)  # no readable image: it never becomes a class
        else:
            kept.append(d.name)
    notes: list[str] = []
    if bad:
        shown = ", ".join(str(b.relative_to(path)) for b in bad[:3])
        notes.append(f"skipped {len(bad)} unreadable or non-image files ({shown}{', ...' if len(bad) > 3 else ''})")
    if empty:
        notes.append(f"dropped class folder{'s' if len(empty) > 1 else ''} {', '.join(map(repr, empty))}: no readable "
                     "images in it")
    for note in notes:
        log.warning("%s: %s", path, note)
    if not files:
        raise HeadstartError(f"{path} has no readable images ({len(bad)} files skipped).")
    folded: dict[str, list[str]] = {}
    for name in kept:
        folded.setdefault(name.strip().casefold(), []).append(name)
    for names in (v for v in folded.values() if len(v) > 1):
        notes.append(f"class folders {' / '.join(map(repr, names))} differ only in case or spaces and are separate "
                     "classes; merge the folders if they are one class")
        log.warning("%s: %s", path, notes[-1])
    task = Task(files, np.array(labels), tuple(kept), "image", path.name, str(path), tuple(notes))
    task.require_classes()
    return task


def image_size(item: Any) -> tuple[int, int]:
    """(width, height) of an image file or array, decoding every pixel: a truncated or damaged file is a
    HeadstartError naming it (a header check alone passes a truncated JPEG)."""
    if isinstance(item, np.ndarray):
        return int(item.shape[1]), int(item.shape[0])
    try:
        with Image.open(item) as img:
            img.load()
            return img.size
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise HeadstartError(f"{item} is not a readable image ({type(exc).__name__}).") from None


def _positions(found: list[int]) -> str:
    return ", ".join(map(str, found[:5])) + (", ..." if len(found) > 5 else "")


def input_modality(inputs: Sequence[Any] | np.ndarray, what: str = "X", modality: str | None = None) -> str:
    """What ``inputs`` are: ``"text"`` (strings), ``"image"`` (arrays, or paths of image files); anything else, or a
    mix, is one sentence naming the first input that does not fit."""
    if isinstance(inputs, np.ndarray) and inputs.dtype.kind not in "OUS":
        if inputs.ndim not in (3, 4):
            raise HeadstartError(f"{what} is an array of shape {inputs.shape}; images are N×H×W or N×H×W×C, texts a "
                                 "list of strings.")
        return "image"

    def kind(x: Any) -> str | None:
        if isinstance(x, np.ndarray) and x.ndim in (2, 3) and x.dtype.kind in "uif":
            return "image"
        if isinstance(x, Path):
            return "image"
        if isinstance(x, (str, np.str_)):
            looks = modality == "image" or (modality is None and Path(x).suffix.lower() in IMAGE_SUFFIXES
                                            and len(x) < 4096 and Path(x).is_file())
            return "image" if looks else "text"
        return None

    kinds = [kind(x) for x in inputs]
    bad = [i for i, k in enumerate(kinds) if k is None]
    if bad:
        first = inputs[bad[0]]
        raise HeadstartError(f"{what}[{bad[0]}] is {_a(type(first).__name__)} ({_short(first)}); every input must be a "
                             f"text (a string), an image array or an image file's path ({len(bad)} do not fit, at "
                             f"{_positions(bad)}).")
    found = set(kinds)
    if len(found) > 1:
        i = kinds.index("image" if kinds[0] == "text" else "text")
        raise HeadstartError(f"{what} mixes texts and images ({what}[0] is {_a(kinds[0])}, {what}[{i}] "
                             f"{_a(kinds[i])}); give one kind.")
    return found.pop() if found else (modality or "text")


def _a(kind: str) -> str:
    return f"an {kind}" if kind[0] in "aeiou" else f"a {kind}"


def _short(x: Any) -> str:
    text = repr(x)
    return text if len(text) <= 40 else text[:37] + "..."


def _is_missing(v: Any) -> bool:
    if v is None:
        return True
    if isinstance(v, (float, np.floating)):
        return bool(np.isnan(v))
    return isinstance(v, (str, np.str_)) and not v.strip()


def _label_kind(v: Any) -> str:
    if isinstance(v, (bool, np.bool_)):
        return "boolean"
    if isinstance(v, (complex, np.complexfloating)):
        return "complex"
    if isinstance(v, (int, float, np.number)):
        return "number"
    return "string" if isinstance(v, (str, np.str_)) else type(v).__name__


def label_values(labels: Sequence[Any] | np.ndarray) -> np.ndarray:
    """Labels as a 1-D array of one type, checked as the file readers check theirs: missing values (None, NaN,
    empty) are refused with their count and positions, a mix of numbers and strings (``1`` and ``"1"`` would
    become one class) is refused, and fractional numbers are not classes."""
    if isinstance(labels, (str, bytes)):
        raise HeadstartError("Labels must be one per example (a list or array); got a single string.")
    values = list(labels.tolist() if isinstance(labels, np.ndarray) else labels)
    if isinstance(labels, np.ndarray) and labels.ndim != 1:
        raise HeadstartError(f"Labels must be one per example (a 1-D sequence); got shape {labels.shape}.")
    missing = [i for i, v in enumerate(values) if _is_missing(v)]
    if missing:
        raise HeadstartError(f"{len(missing)} of {len(values)} labels are missing (None, NaN or empty), at positions "
                             f"{_positions(missing)}; give every example a class label, or leave those examples out.")
    nested = [i for i, v in enumerate(values) if isinstance(v, (list, tuple, dict, set, np.ndarray))]
    if nested:
        raise HeadstartError(f"Labels must be one per example (a 1-D sequence); label {nested[0]} is a "
                             f"{type(values[nested[0]]).__name__}.")
    kinds = {_label_kind(v) for v in values}
    if len(kinds) > 1:
        first = {_label_kind(v): v for v in reversed(values)}
        shown = " and ".join(f"{first[k]!r}" for k in sorted(kinds))
        raise HeadstartError(f"Labels mix {' and '.join(sorted(kinds))} values (e.g. {shown}); give every label the "
                             "same type, so that 1 and '1' are not silently one class.")
    if kinds == {"complex"}:
        raise HeadstartError("Labels are complex numbers; pass class labels (strings or integers).")
    if kinds == {"number"} and any(isinstance(v, (float, np.floating)) for v in values):
        floats = np.asarray(values, dtype=np.float64)
        if not np.isfinite(floats).all():
            raise HeadstartError("Labels contain infinity; every example needs a class label.")
        if not np.equal(np.mod(floats, 1), 0).all():
            raise HeadstartError(f"Labels are continuous ({len(np.unique(floats))} distinct fractional numbers such "
                                 f"as {floats[np.mod(floats, 1) != 0][0]:g}); headstart classifies, so pass class "
                                 "labels (strings or integers), or bin the numbers into classes first.")
        return floats.astype(np.int64)
    if kinds == {"string"}:
        return np.asarray([str(v) for v in values], dtype=object).astype(str)
    return np.asarray(values)


def from_arrays(inputs: Sequence[Any] | np.ndarray, labels: Sequence[Any] | np.ndarray, *,
                modality: str | None = None, classes: Sequence[str] | None = None, name: str = "arrays",
                min_classes: int = 2) -> Task:
    """Texts or images already in memory. Labels may be strings or integers; classes are sorted."""
    labels = label_values(labels)
    if isinstance(inputs, (str, bytes)):
        raise HeadstartError(f"{name} must be a list of inputs; wrap a single text as [text].")
    if classes is None:
        values = sorted(set(labels.tolist()))
        classes = [str(v) for v in values]
        index = {v: i for i, v in enumerate(values)}
        codes = np.array([index[v] for v in labels.tolist()])
    elif labels.dtype.kind in "iu":  # integer codes into the given class names
        codes = labels
        if codes.min() < 0 or codes.max() >= len(classes):
            raise HeadstartError(f"Integer labels must lie in [0, {len(classes)}) for classes {list(classes)}.")
    else:
        lookup = {c: i for i, c in enumerate(classes)}
        unknown = sorted({str(v) for v in labels.tolist()} - set(lookup))
        if unknown:
            raise HeadstartError(f"Labels {unknown[:5]} are not among the classes {list(classes)}.")
        codes = np.array([lookup[str(v)] for v in labels.tolist()])
    # the classes first: one class is the message scikit-learn's checks (and a user) expect, whatever the inputs
    require_classes(sorted({str(classes[c]) for c in codes.tolist()}), name, "in memory", min_classes)
    return Task(inputs, codes, tuple(classes), input_modality(inputs, name, modality), name, "in memory")


def read_input_texts(path: str | Path, *, text_column: str | None = None, encoding: str = "utf-8") -> list[str]:
    """Only the texts of a CSV/TSV/JSONL file (for prediction: no label column needed)."""
    path = Path(path)
    columns, rows = _rows(path, read_text(path, encoding))
    col = _pick(columns, text_column, TEXT_COLUMNS, "text", "--text-column", path)
    return [str(r.get(col, "")) for r in rows]
