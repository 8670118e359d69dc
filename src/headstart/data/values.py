"""Labels and inputs checked the same way wherever they come from (a file, arrays, a Python list): missing,
mixed, continuous or case-variant labels, and inputs that are neither texts nor images."""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import HeadstartError

__all__ = ["IMAGE_SUFFIXES", "check_labels", "continuous_labels", "input_modality", "label_values"]

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm"}


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
