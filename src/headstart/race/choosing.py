"""How a race chooses: on a held-out selection part, or by cross-validation within each run's labels.

A race chooses on a selection part (a fifth of the data) that no run learns from. When the data
themselves are a few labels per class, a fifth is too few to tell strategies apart (at 20 labels per
class, 4) and costs a fifth of the labels. Then the race chooses by **repeated stratified k-fold
cross-validation within each run's labels**: the run's labelled examples are cut into k folds
(exact copies kept in one fold); for each fold the strategy is fitted, exactly as the run itself is,
on the other folds and predicts the held-out one, so every label trains in some fits and scores in
another. The pooled out-of-fold accuracy is the run's selection score, and the seeds repeat it with
other folds (and, below 'all', other draws). The run's model itself is then fitted on all its labels
and scored on the test part, which is still held out when the data allow one (every class at least
``CV_TEST_FROM`` examples); when they do not, the race says so plainly and reports no test numbers.

``choose="auto"`` (the default) cross-validates when the selection part would hold fewer than
``CV_BELOW`` examples of some class; ``"selection"`` and ``"cv"`` force one way.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from ..data import Task
from ..data.splits import units
from ..errors import HeadstartError

__all__ = ["CHOICES", "CV_BELOW", "CV_TEST_FROM", "cross_validate", "resolve_choice"]

CHOICES = ("auto", "selection", "cv")
#: ``auto`` cross-validates when the selection part would hold fewer than this many examples of some class
CV_BELOW = 10
#: when cross-validating, a test part is still held out if every class has at least this many examples
CV_TEST_FROM = 10


def _smallest_class(task: Task, exclude: np.ndarray | None) -> int:
    keep = np.ones(len(task), dtype=bool)
    if exclude is not None and len(exclude):
        keep[np.asarray(exclude, dtype=np.int64)] = False
    heads = np.unique(units(task)[keep])
    counts = np.bincount(task.labels[heads], minlength=len(task.classes))
    return int(counts[counts > 0].min())


def resolve_choice(choose: str, task: Task, *, test_file: bool, selection_fraction: float = 0.2,
                   exclude: np.ndarray | None = None) -> tuple[str, float, str | None]:
    """(``"selection"`` or ``"cv"``, the test fraction to split with, a note when no test part can be held out)."""
    if choose not in CHOICES:
        raise HeadstartError(f"choose must be one of {', '.join(CHOICES)}; got {choose!r}.")
    smallest = _smallest_class(task, exclude)
    if choose == "auto":
        choose = "cv" if round(smallest * selection_fraction) < CV_BELOW else "selection"
    if choose == "cv" and smallest < 2:
        raise HeadstartError(f"{task.name}: a class has a single distinct example; choosing by cross-validation needs "
                             "at least 2 of every class (one to learn from, one to score). Add examples of it or "
                             "remove the class.")
    if choose == "selection" or test_file:
        return choose, 0.0 if test_file else 0.2, None
    if smallest >= CV_TEST_FROM:
        return "cv", 0.2, None
    return "cv", 0.0, (f"no test part: the smallest class has {smallest} examples, and holding some out would leave "
                       f"too few to learn from and to choose with (a test part needs {CV_TEST_FROM} of every class). "
                       "The accuracies shown are the cross-validated ones that chose, so they are optimistic; give a "
                       "test file (--test) to measure the chosen model.")


def fold_count(task: Task, labelled: np.ndarray, folds: int) -> int:
    """The folds a run's labels allow: ``folds``, at most the smallest class's count (0: fewer than 2 labels of a
    class, nothing to cross-validate)."""
    counts = np.bincount(task.labels[labelled], minlength=len(task.classes))
    k = min(folds, int(counts[counts > 0].min()) if len(labelled) else 0)
    return k if k >= 2 else 0


def cross_validate(task: Task, labelled: np.ndarray, *, folds: int, seed: int, validates: bool,
                   fit_predict: Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]) -> dict[str, Any]:
    """Out-of-fold predictions of every example of ``labelled``: ``fit_predict(train, val, held_out)`` fits a
    fresh model (on ``val`` too when ``validates``: a quarter of each class of the training folds) and returns its
    predicted class indices for ``held_out``. Returns the pooled accuracy, macro-F1 and per-fold accuracies."""
    from sklearn.metrics import f1_score
    from sklearn.model_selection import StratifiedGroupKFold

    from ..data.splits import _train_val

    labelled = np.sort(np.asarray(labelled, dtype=np.int64))
    k = fold_count(task, labelled, folds)
    if k == 0:
        raise HeadstartError("Choosing by cross-validation needs at least 2 labels of every class in a run; raise the "
                             "budget, or choose on a selection part (choose='selection').")
    keys = [task.example_key(int(i)) for i in labelled]
    groups = np.unique(keys, return_inverse=True)[1]
    y = task.labels[labelled]
    splitter = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)
    pred = np.full(len(labelled), -1, dtype=np.int64)
    fold_acc = []
    for train_pos, held_pos in splitter.split(np.zeros(len(y)), y, groups):
        train = labelled[train_pos]
        val = train[:0]
        if validates:  # as the run holds a quarter of its budget out, the fold holds a quarter of its training part
            rng = np.random.default_rng([seed, 3])
            orders = [rng.permutation(train[task.labels[train] == c]) for c in range(len(task.classes))]
            train, val = _train_val(task, [o for o in orders if len(o)], validated_from=2)
        pred[held_pos] = fit_predict(train, val, labelled[held_pos])
        fold_acc.append(float((pred[held_pos] == y[held_pos]).mean()))
    return {"acc": float((pred == y).mean()),
            "macro_f1": float(f1_score(y, pred, average="macro", labels=np.unique(y))),
            "folds": k, "fold_acc": fold_acc, "n": len(labelled)}
