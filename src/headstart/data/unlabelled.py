"""``load_unlabelled``: examples without labels (a deployment domain's), for domain adaptation (``--target``).

The same sources as ``load_task``: a CSV/TSV/JSONL file (only its text column is read; a label column,
if present, is ignored), a folder of images (every image under it, class folders or not), an ``.npz``
(its ``x``), or a named example (its inputs; its labels are never read). Empty texts are dropped.
The result is a ``Task`` whose labels are all 0 and never read, so it batches and caches like any other.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import HeadstartError
from ..paths import given_path
from .examples import EXAMPLES
from .load import TABLE_SUFFIXES, load_task
from .readers import IMAGE_SUFFIXES, read_input_texts
from .task import Task

__all__ = ["load_unlabelled"]


def load_unlabelled(source: str | Path, classes: tuple[str, ...], modality: str, *, text_column: str | None = None,
                    encoding: str = "utf-8", flag: str = "--target", domain: str = "the deployment domain") -> Task:
    """Unlabelled ``modality`` examples from ``source``, as a task over ``classes`` (the labelled data's); messages
    name the argument it came from (``flag``) and what it holds (examples of ``domain``)."""
    path = given_path(source, flag)
    if isinstance(source, str) and source in EXAMPLES or path.suffix.lower() == ".npz":
        inputs = list(load_task(source).inputs)
    elif path.is_dir():
        if modality == "text":
            raise HeadstartError(f"{flag} {source} is a folder, but the labelled data are texts; give a "
                                 "CSV/TSV/JSONL file of texts.")
        inputs = [str(f) for f in sorted(path.rglob("*")) if f.suffix.lower() in IMAGE_SUFFIXES]
    elif path.suffix.lower() in TABLE_SUFFIXES:
        if not path.is_file():
            raise HeadstartError(f"{flag} {source}: the file does not exist.")
        inputs = [t for t in read_input_texts(path, text_column=text_column, encoding=encoding) if t.strip()]
    else:
        raise HeadstartError(f"{flag} {source}: give a CSV/TSV/JSONL file, a folder of images, an .npz or a named "
                             f"example of unlabelled examples of {domain}.")
    if not inputs:
        raise HeadstartError(f"{flag} {source} holds no examples.")
    kind = "text" if isinstance(inputs[0], str) and Path(inputs[0]).suffix.lower() not in IMAGE_SUFFIXES else "image"
    if kind != modality:
        raise HeadstartError(f"{flag} {source} holds {kind}s but the labelled data are {modality}s; give "
                             "examples of the same kind.")
    return Task(inputs, np.zeros(len(inputs), dtype=np.int64), classes, modality,
                f"{flag.strip('-')}:{path.stem or source}", str(source))
