"""What ``Adapter(warm_start=True)`` does when it continues a fitted model on a new task.

The same classes again carry the head on (domain-incremental); new classes grow it
(``incremental="class"``) or get a head of their own beside the old one (``incremental="task"``);
``replay`` rehearses the examples kept from earlier tasks. The frozen copy of the previous head is what
a guard against forgetting (``ewc``, ``lwf``, ``l2sp``) keeps.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from .data import Task
from .errors import HeadstartError
from .train import AdaptedModel
from .train.reference import frozen_copy

__all__ = ["WarmStart", "joined"]


def joined(a: Task, b: Task) -> Task:
    """Two tasks of the same classes as one."""
    inputs = [*a.inputs, *b.inputs]
    return Task(inputs, np.concatenate([a.labels, b.labels]), a.classes, a.modality, a.name, a.source, a.notes)


def _free_name(name: str, taken: Any) -> str:
    """``name``, or ``name-2``, ``name-3``... whichever is not taken yet."""
    candidates = [name] + [f"{name}-{i}" for i in range(2, len(taken) + 3)]
    return next(c for c in candidates if c not in taken)


class WarmStart:
    """The continued fit of ``Adapter``: its parameters (``warm_start``, ``incremental``, ``replay``) and fitted state
    (``model_``, ``classes_``, ``memory_``, ``heads_``) live on the estimator."""

    def _continuing(self) -> bool:
        return bool(self.warm_start) and hasattr(self, "model_")

    def _learned_classes(self, y: Sequence[Any] | None, train: Task, continuing: bool) -> np.ndarray:
        """Labels as given (the original values: ints stay ints): the sorted order of ``train.classes``, or, when a
        continued fit added classes to the head, the earlier classes first, then the new ones."""
        given = np.unique(np.asarray(y)) if y is not None else np.asarray(train.classes)
        if not continuing or tuple(str(c) for c in given) == train.classes:
            return given
        by_name = {str(c): c for c in [*self.classes_.tolist(), *given.tolist()]}
        return np.asarray([by_name[c] for c in train.classes])

    def _continued_task(self, train: Task) -> Task:
        """``train`` in the classes of the model it continues: its own order when they are the same classes
        (domain-incremental), the earlier classes and then the new ones (``incremental="class"``), or its own
        classes on a new head (``incremental="task"``)."""
        old = tuple(str(c) for c in self.classes_)
        if set(train.classes) <= set(old) and (self.incremental == "class" or set(train.classes) == set(old)):
            return self._align_classes(train, old)
        if self.incremental == "task":
            return train
        return self._align_classes(train, old + tuple(c for c in train.classes if c not in old))

    def _rehearsal(self, train: Task) -> Task:
        """The rehearsal buffer, in ``train``'s classes (one sentence when there is none to rehearse)."""
        memory = getattr(self, "memory_", None)
        if memory is None:
            raise HeadstartError("replay rehearses the examples a model kept from its earlier task, and this one kept "
                                 "none: fit the earlier task with replay=N too (headstart fit --replay N), or continue "
                                 "without replay.")
        if not set(memory.classes) <= set(train.classes):
            raise HeadstartError("replay rehearses earlier classes through one head; with incremental='task' each "
                                 "task has a head of its own: use incremental='class', or continue without replay.")
        return self._align_classes(memory, train.classes)

    def _continued_model(self, train: Task) -> tuple[AdaptedModel, list[torch.nn.Module]]:
        """The fitted model, its head grown to new classes (``incremental="class"``) or a new head beside the old one
        (``"task"``); and a frozen copy of the head it had, which guards keep."""
        model = self.model_
        if train.modality != self.modality_:
            raise HeadstartError(f"warm_start continues a {self.modality_} model, but these data are "
                                 f"{train.modality}s; fit a new Adapter instead.")
        previous = [frozen_copy(model.head)]
        old = tuple(str(c) for c in self.classes_)
        if self.incremental == "class" and train.classes[: len(old)] == old and len(train.classes) > len(old):
            model.grow_head(len(train.classes))
        elif old != train.classes:
            name = _free_name(getattr(self, "task_name_", "task"), model.heads)
            model.new_head(len(train.classes), keep_as=name)
            model.fitted = False  # a new head: nothing of it was learned before
            self.heads_ = {**getattr(self, "heads_", {}), name: list(old)}
        return model.train(), previous
