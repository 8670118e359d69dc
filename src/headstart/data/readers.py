"""Read a user's files into a ``Task``: CSV/TSV/JSONL tables, image folders, numpy arrays."""

from __future__ import annotations

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

__all__ = ["IMAGE_SUFFIXES", "from_arrays", "read_image_folder", "read_input_texts", "read_table", "read_text"]

log = logging.getLogger(__name__)

TEXT_COLUMNS = ("text", "sentence", "review", "content", "body", "document", "message")
LABEL_COLUMNS = ("label", "labels", "category", "class", "target", "sentiment")
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm"}


def read_text(path: Path, encoding: str = "utf-8") -> str:
    """A whole text file, with errors that name the file and what to do."""
    if not path.exists():
        raise HeadstartError(f"{path} does not exist.")
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
            raise HeadstartError(f"{path} has no {what} column {wanted!r}. Columns: {', '.join(columns)}.")
        return wanted
    lowered = {c.lower(): c for c in columns}
    for g in guesses:
        if g in lowered:
            return lowered[g]
    raise HeadstartError(
        f"{path}: cannot tell which column holds the {what} (columns: {', '.join(columns)}). "
        f"Name it with {flag} COLUMN."
    )


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
            if not isinstance(row, dict):
                raise HeadstartError(f"{path}, line {n}: each line must be a JSON object with named fields.")
            rows.append(row)
        columns = list(dict.fromkeys(k for r in rows for k in r))
        return columns, rows
    delimiter = "\t" if path.suffix.lower() in (".tsv", ".tab") else ","
    reader = csv.DictReader(io.StringIO(text, newline=""), delimiter=delimiter)
    columns = list(reader.fieldnames or [])
    return columns, list(reader)


def read_table(path: str | Path, *, text_column: str | None = None, label_column: str | None = None,
               encoding: str = "utf-8") -> Task:
    """A CSV, TSV or JSONL file of texts and labels. Column names are guessed when not given."""
    path = Path(path)
    columns, rows = _rows(path, read_text(path, encoding))
    if not rows:
        raise HeadstartError(f"{path} has a header but no rows.")
    text_col = _pick(columns, text_column, TEXT_COLUMNS, "text", "--text-column", path)
    label_col = _pick(columns, label_column, LABEL_COLUMNS, "label", "--label-column", path)
    texts, labels = [], []
    for n, row in enumerate(rows, 2):  # row 1 is the header
        text, label = row.get(text_col), row.get(label_col)
        if label is None or str(label).strip() == "":
            raise HeadstartError(f"{path}, row {n}: empty {label_col!r}; give every row a label or remove it.")
        if text is None:
            raise HeadstartError(f"{path}, row {n}: no {text_col!r} value.")
        texts.append(str(text))
        labels.append(str(label).strip())
    classes = tuple(sorted(set(labels)))
    index = {c: i for i, c in enumerate(classes)}
    task = Task(texts, np.array([index[c] for c in labels]), classes, "text", path.stem, str(path))
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
    files, labels, bad = [], [], []
    for label, d in enumerate(class_dirs):
        for f in sorted(p for p in d.rglob("*") if p.is_file() and not p.name.startswith(".")):
            try:
                with Image.open(f) as img:
                    img.verify()  # parses headers and checksums without decoding the pixels
            except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
                if strict:
                    raise HeadstartError(f"{f} is not a readable image ({type(exc).__name__}); "
                                         "remove it, or drop --strict to skip such files.") from None
                bad.append(f)
                continue
            files.append(str(f))
            labels.append(label)
    notes: tuple[str, ...] = ()
    if bad:
        shown = ", ".join(str(b.relative_to(path)) for b in bad[:3])
        notes = (f"skipped {len(bad)} unreadable or non-image files ({shown}{', ...' if len(bad) > 3 else ''})",)
        log.warning("%s: %s", path, notes[0])
    if not files:
        raise HeadstartError(f"{path} has no readable images ({len(bad)} files skipped).")
    task = Task(files, np.array(labels), tuple(d.name for d in class_dirs), "image", path.name, str(path), notes)
    task.require_classes()
    return task


def from_arrays(inputs: Sequence[Any] | np.ndarray, labels: Sequence[Any] | np.ndarray, *,
                modality: str | None = None, classes: Sequence[str] | None = None, name: str = "arrays",
                min_classes: int = 2) -> Task:
    """Texts or images already in memory. Labels may be strings or integers; classes are sorted."""
    labels = np.asarray(labels)
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
