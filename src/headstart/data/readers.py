"""Read a user's files into a ``Task``: CSV/TSV/JSONL tables, image folders, numpy arrays."""

from __future__ import annotations

import codecs
import csv
import io
import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError

from ..errors import HeadstartError
from .task import Task

__all__ = ["IMAGE_SUFFIXES", "check_labels", "from_arrays", "image_size", "read_image_folder", "read_input_texts",
           "read_table", "read_text"]

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
    delimiter = "\t" if path.suffix.lower() in (".tsv", ".tab") else ","
    reader = csv.DictReader(io.StringIO(text, newline=""), delimiter=delimiter)
    try:
        columns = list(reader.fieldnames or [])
        rows = list(reader)
    except csv.Error as exc:
        raise HeadstartError(f"{path}, line {reader.line_num}: not valid {'TSV' if delimiter == chr(9) else 'CSV'} "
                             f"({exc}); fix that line or re-save the file.") from None
    return columns, rows


def _rows_named(rows: list[int]) -> str:
    shown = ", ".join(map(str, rows[:8]))
    return f"row{'s' if len(rows) > 1 else ''} {shown}{', ...' if len(rows) > 8 else ''}"


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


def from_arrays(inputs: Sequence[Any] | np.ndarray, labels: Sequence[Any] | np.ndarray, *,
                modality: str | None = None, classes: Sequence[str] | None = None, name: str = "arrays",
                min_classes: int = 2) -> Task:
    """Texts or images already in memory. Labels may be strings or integers; classes are sorted."""
    labels = np.asarray(labels)
    if labels.ndim != 1:
        raise HeadstartError(f"Labels must be one per example (a 1-D sequence); got shape {labels.shape}.")
    if labels.dtype.kind in "fc":  # floats: whole numbers are class codes; anything else is not a class label
        if not np.isfinite(labels).all():
            raise HeadstartError("Labels contain NaN or infinity; every example needs a class label.")
        if labels.dtype.kind == "c" or not np.equal(np.mod(labels, 1), 0).all():
            raise HeadstartError("Unknown label type: continuous labels (fractional numbers) are not classes; "
                                 "headstart classifies, so pass class labels (strings or integers).")
        labels = labels.astype(np.int64)
    if modality is None:
        first = inputs[0] if len(inputs) else ""
        modality = "text" if isinstance(first, str) else "image"
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
    task = Task(inputs, codes, tuple(classes), modality, name, "in memory")
    task.require_classes(min_classes)
    return task


def read_input_texts(path: str | Path, *, text_column: str | None = None, encoding: str = "utf-8") -> list[str]:
    """Only the texts of a CSV/TSV/JSONL file (for prediction: no label column needed)."""
    path = Path(path)
    columns, rows = _rows(path, read_text(path, encoding))
    col = _pick(columns, text_column, TEXT_COLUMNS, "text", "--text-column", path)
    return [str(r.get(col, "")) for r in rows]
