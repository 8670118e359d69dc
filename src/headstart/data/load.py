"""``load_task``: one entry point for every data source a user can name."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from ..errors import HeadstartError
from ..paths import given_path
from .examples import EXAMPLES, load_example
from .readers import _names, from_arrays, read_image_folder, read_table
from .task import Task

__all__ = ["check_source_kind", "load_task"]

TABLE_SUFFIXES = {".csv", ".tsv", ".tab", ".jsonl", ".ndjson"}


def _read_npz(path: Path) -> Task:
    try:
        with np.load(path, allow_pickle=False) as z:
            keys = set(z.files)
            xk = next((k for k in ("x", "X", "inputs", "images", "texts") if k in keys), None)
            yk = next((k for k in ("y", "labels", "label", "targets") if k in keys), None)
            if xk is None or yk is None:
                raise HeadstartError(f"{path} needs arrays named x and y (found: {_names(sorted(keys)) or 'none'}).")
            x, y = z[xk], z[yk]
            classes = [str(c) for c in z["classes"]] if "classes" in keys else None
    except HeadstartError:  # a subclass of ValueError: the message above, not the ones below
        raise
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as e:
        if "Object arrays" in str(e):  # np.load refuses pickled object arrays (allow_pickle=False, for safety)
            raise HeadstartError(
                f"{path} stores Python objects; save texts as a string array (np.array(texts, dtype=str)) "
                "and labels as numbers or strings."
            ) from None
        # a truncated archive or member, or no zip archive at all (np.load then takes it for a pickle)
        raise HeadstartError(f"{path} is damaged or not an .npz file; re-save it with numpy.savez.") from None
    modality = "text" if x.dtype.kind in "US" else "image"
    inputs = [str(t) for t in x] if modality == "text" else x
    return from_arrays(inputs, y, modality=modality, classes=classes, name=path.stem)


def check_source_kind(source: str | Path, modality: str, what: str) -> None:
    """``source`` (named by ``what``, e.g. ``--test``) can hold ``modality`` examples: a folder for images, a table
    file for texts; checked before reading, so the sentence names the mismatch rather than a symptom of it."""
    if isinstance(source, str) and source in EXAMPLES:
        return
    path = given_path(source, what)
    if modality == "text" and path.is_dir():
        raise HeadstartError(f"{what} {source} is a folder, but the data are texts; give a CSV/TSV/JSONL (or .npz) "
                             "file like the data.")
    if modality == "image" and path.suffix.lower() in TABLE_SUFFIXES:
        raise HeadstartError(f"{what} {source} is a table of texts, but the data are images; give a folder of images "
                             "(one sub-folder per class) or an .npz like the data.")


def load_task(source: str | Path, *, text_column: str | None = None, label_column: str | None = None,
              encoding: str = "utf-8", strict: bool = False, normalize_labels: bool = False) -> Task:
    """A named example (``rotten-tomatoes``), a CSV/TSV/JSONL file, an ``.npz`` of arrays, or an image folder.

    ``normalize_labels`` merges labels that differ only in case or surrounding spaces (otherwise they stay
    apart, with a warning naming them).
    """
    if isinstance(source, str) and source in EXAMPLES:
        return load_example(source)
    path = given_path(source, "The data path")
    if path.is_dir():
        return read_image_folder(path, strict=strict)
    if path.suffix.lower() in TABLE_SUFFIXES:
        return read_table(path, text_column=text_column, label_column=label_column, encoding=encoding,
                          normalize_labels=normalize_labels)
    if path.suffix.lower() == ".npz":
        if not path.exists():
            raise HeadstartError(f"{path} does not exist.")
        return _read_npz(path)
    if not path.exists():
        raise HeadstartError(
            f"{source} is neither a file, a folder nor a named example. Named examples: {', '.join(EXAMPLES)}."
        )
    raise HeadstartError(
        f"{path}: unsupported file type {path.suffix!r}. Use .csv, .tsv, .jsonl, .npz, or a folder of images."
    )
