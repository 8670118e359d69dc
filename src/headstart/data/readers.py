"""Read a user's files into a ``Task``: CSV/TSV/JSONL tables, image folders, numpy arrays."""

from __future__ import annotations

import codecs
import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError

from ..errors import HeadstartError
from .tables import table_rows
from .task import Task, require_classes
from .values import IMAGE_SUFFIXES, check_labels, continuous_labels, input_modality, label_values

__all__ = ["IMAGE_SUFFIXES", "check_labels", "from_arrays", "image_size", "input_modality", "label_values",
           "read_image_folder", "read_input_texts", "read_table", "read_text"]

log = logging.getLogger(__name__)

TEXT_COLUMNS = ("text", "sentence", "review", "content", "body", "document", "message")
LABEL_COLUMNS = ("label", "labels", "category", "class", "target", "sentiment")


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
    return table_rows(path, text)


def _rows_named(rows: list[int]) -> str:
    shown = ", ".join(map(str, rows[:8]))
    return f"row{'s' if len(rows) > 1 else ''} {shown}{', ...' if len(rows) > 8 else ''}"


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
