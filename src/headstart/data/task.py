"""``Task``: labelled inputs of one modality, with class names. Everything downstream consumes this."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import HeadstartError

__all__ = ["Task", "require_classes"]


def require_classes(present: Sequence[str], name: str, source: str, minimum: int = 2) -> None:
    """A classifier needs at least two of the classes to occur (``minimum`` 1 for validation or test data)."""
    if len(present) < minimum:
        raise HeadstartError(
            f"{name}: only one class ({present[0] if present else 'none'!s}) in {source or 'the data'}; "
            "a classifier needs at least two. Check the label column, or add examples of the other classes."
        )


@dataclass(frozen=True, eq=False)
class Task:
    """Inputs and integer labels (indices into ``classes``).

    ``inputs`` is a list of strings for text; for images a list of file paths / arrays, or one
    ``N×H×W[×C]`` array. ``source`` says where it came from (for reports and error messages).
    """

    inputs: Sequence[Any] | np.ndarray
    labels: np.ndarray
    classes: tuple[str, ...]
    modality: str
    name: str = "task"
    source: str = ""
    notes: tuple[str, ...] = field(default=())
    #: an empty part of a task is allowed (a race without a selection or test part); data never are
    allow_empty: bool = field(default=False, repr=False, compare=False)
    #: example keys already computed (an image's key reads its file): each is hashed once per Task, and a
    #: subset inherits its parent's
    _keys: dict[int, str] = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        labels = np.asarray(self.labels)
        object.__setattr__(self, "labels", labels.astype(np.int64))
        if self.modality not in ("text", "image"):
            raise HeadstartError(f"The 'modality' of a Task must be 'text' or 'image'. Got {self.modality!r} instead.")
        if len(self.inputs) != len(labels):
            raise HeadstartError(f"{self.name}: {len(self.inputs)} inputs but {len(labels)} labels.")
        if len(labels) == 0 and not self.allow_empty:
            raise HeadstartError(f"{self.name}: no examples; check the file or folder ({self.source}).")
        if len(labels) and (labels.min() < 0 or labels.max() >= len(self.classes)):
            raise HeadstartError(f"{self.name}: labels must index into the {len(self.classes)} classes.")

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, index: Sequence[int] | np.ndarray) -> Task:
        index = np.asarray(index, dtype=np.int64)
        if isinstance(self.inputs, np.ndarray):
            inputs: Any = self.inputs[index]
        else:
            inputs = [self.inputs[i] for i in index]
        sub = Task(inputs, self.labels[index], self.classes, self.modality, self.name, self.source, self.notes,
                   allow_empty=len(index) == 0)
        sub._keys.update((j, self._keys[i]) for j, i in enumerate(index.tolist()) if i in self._keys)
        return sub

    def counts(self) -> dict[str, int]:
        """Examples per class, in class order."""
        got = np.bincount(self.labels, minlength=len(self.classes))
        return {c: int(n) for c, n in zip(self.classes, got)}

    def require_classes(self, minimum: int = 2) -> None:
        require_classes([c for c, n in self.counts().items() if n > 0], self.name, self.source, minimum)

    def example_key(self, i: int) -> str:
        """A content hash of example ``i`` (text or image bytes): what caches and duplicate checks key on."""
        i = int(i)
        if i in self._keys:
            return self._keys[i]
        item = self.inputs[i]
        h = hashlib.sha1()
        if isinstance(item, str) and self.modality == "text":
            h.update(item.encode("utf-8"))
        elif isinstance(item, np.ndarray):
            h.update(str(item.shape).encode())
            h.update(np.ascontiguousarray(item).tobytes())
        else:  # an image file: its bytes, so a renamed copy is still a duplicate
            with open(item, "rb") as f:
                h.update(f.read())
        self._keys[i] = key = h.hexdigest()
        return key

    def fingerprint(self) -> str:
        h = hashlib.sha1()
        for i in range(len(self)):
            h.update(self.example_key(i).encode())
        h.update(self.labels.tobytes())
        return h.hexdigest()[:16]
