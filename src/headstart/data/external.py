"""A user's own test file: aligned to the training file's classes, with its copies kept out of training."""

from __future__ import annotations

import numpy as np

from ..errors import HeadstartError
from .task import Task

__all__ = ["align_test"]


def align_test(task: Task, test: Task, what: str = "The test file") -> tuple[Task, np.ndarray]:
    """``test`` re-expressed in ``task``'s classes, and the indices of ``task`` that copy a test example.

    A test label the training data lack is an error (no run could predict it); exact copies of test
    texts or images in the training data are returned so that they are kept out of every run.
    """
    if test.modality != task.modality:
        raise HeadstartError(f"{what} {test.source or test.name} holds {test.modality}s but the training data "
                             f"hold {task.modality}s; give a file of the same kind.")
    present = sorted({test.classes[i] for i in np.unique(test.labels)})
    unknown = [c for c in present if c not in task.classes]
    if unknown:
        raise HeadstartError(
            f"{what} {test.source or test.name} has labels the training data lack: {unknown[:5]}. "
            f"Training classes: {list(task.classes)[:20]}. Fix the labels, or remove those test rows.")
    index = {c: i for i, c in enumerate(task.classes)}
    labels = np.array([index[test.classes[i]] for i in test.labels], dtype=np.int64)
    aligned = Task(test.inputs, labels, task.classes, test.modality, test.name, test.source, test.notes)
    test_keys = {test.example_key(i) for i in range(len(test))}
    copies = np.array([i for i in range(len(task)) if task.example_key(i) in test_keys], dtype=np.int64)
    return aligned, copies
