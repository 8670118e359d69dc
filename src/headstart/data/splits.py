"""Reproducible stratified splits and nested label budgets.

Both are drawn per class with a generator seeded by ``(seed, class)``, so a class's draw never depends
on the other classes, and a budget of ``n`` per class is always the first ``n`` of one fixed order:
the 32-per-class draw contains the 8-per-class draw, and learning curves compare like with like.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import HeadstartError
from .task import Task

__all__ = ["Splits", "budget_indices", "draw", "holdout", "make_splits", "parse_budget", "val_budget"]


@dataclass(frozen=True)
class Splits:
    train: np.ndarray
    val: np.ndarray
    test: np.ndarray
    seed: int

    def sizes(self) -> dict[str, int]:
        return {"train": len(self.train), "val": len(self.val), "test": len(self.test)}


def _class_order(labels: np.ndarray, pool: np.ndarray, c: int, seed: int, salt: int) -> np.ndarray:
    members = np.sort(pool[labels[pool] == c])
    return np.random.default_rng([seed, salt, c]).permutation(members)


def make_splits(task: Task, *, val_fraction: float = 0.15, test_fraction: float = 0.2, seed: int = 0) -> Splits:
    """Stratified train/validation/test; every class gets at least one example in each part.

    Exact duplicates (same text or image bytes) always land in the same part, stratified by the
    label of their first copy, so test numbers are never inflated by copies of training examples.
    """
    for name, frac in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
        if not 0.0 < frac < 1.0:
            raise HeadstartError(f"The {name!r} parameter of make_splits must be in (0, 1). Got {frac!r} instead.")
    if val_fraction + test_fraction >= 1.0:
        raise HeadstartError("val_fraction + test_fraction must leave examples for training (sum < 1).")
    task.require_classes()
    # Exact duplicates form one unit that lands in one part, so no test example is also a training one.
    first: dict[str, int] = {}
    unit = np.array([first.setdefault(task.example_key(i), i) for i in range(len(task))])
    heads = np.unique(unit)
    members: dict[int, list[int]] = {}
    for i, u in enumerate(unit.tolist()):
        members.setdefault(u, []).append(i)
    parts: dict[str, list[np.ndarray]] = {"train": [], "val": [], "test": []}
    for c, cls in enumerate(task.classes):
        order = _class_order(task.labels, heads, c, seed, salt=0)
        n = len(order)
        if n == 0:
            continue
        if n < 3:
            raise HeadstartError(
                f"{task.name}: class {cls!r} has {n} example{'s' if n != 1 else ''}; a train/validation/test "
                "split needs at least 3 per class. Add examples of it or remove the class."
            )
        n_test = max(1, round(n * test_fraction))
        n_val = max(1, round(n * val_fraction))
        n_test, n_val = min(n_test, n - 2), min(n_val, n - 1 - min(n_test, n - 2))
        for name, chunk in (("test", order[:n_test]), ("val", order[n_test : n_test + n_val]),
                            ("train", order[n_test + n_val :])):
            parts[name].append(np.array([i for u in chunk for i in members[u]], dtype=np.int64))
    return Splits(*(np.sort(np.concatenate(parts[k])) for k in ("train", "val", "test")), seed=seed)


def parse_budget(value: str | int | None) -> int | None:
    """``"all"``/``None`` -> ``None`` (the whole pool); a positive integer -> examples per class."""
    if value is None or (isinstance(value, str) and value.strip().lower() == "all"):
        return None
    try:
        n = int(value)
    except (TypeError, ValueError):
        raise HeadstartError(
            f"A label budget is examples per class (a positive integer) or 'all'. Got {value!r}.") from None
    if n < 1:
        raise HeadstartError(f"A label budget must be at least 1 example per class. Got {n}.")
    return n


def budget_indices(task: Task, pool: np.ndarray, per_class: int | None, *, seed: int = 0) -> np.ndarray:
    """The first ``per_class`` examples of each class in a fixed per-class order over ``pool``.

    Nested by construction: for the same ``pool`` and ``seed``, a smaller budget is a subset of a
    larger one. ``None`` returns the whole pool.
    """
    pool = np.asarray(pool, dtype=np.int64)
    if per_class is None:
        return np.sort(pool)
    chosen = []
    for c, cls in enumerate(task.classes):
        order = _class_order(task.labels, pool, c, seed, salt=1)
        if len(order) < per_class:
            raise HeadstartError(
                f"{task.name}: class {cls!r} has only {len(order)} examples in this pool, fewer than the budget "
                f"of {per_class} per class. Use a budget of at most {len(order)}, or 'all'."
            )
        chosen.append(order[:per_class])
    return np.sort(np.concatenate(chosen))


def holdout(task: Task, fraction: float = 0.15, *, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Stratified (train, validation) indices when a user gives no validation set: at least one per class."""
    task.require_classes()
    everything = np.arange(len(task))
    train, val = [], []
    for c, cls in enumerate(task.classes):
        order = _class_order(task.labels, everything, c, seed, salt=2)
        if len(order) == 0:
            continue
        if len(order) < 2:
            raise HeadstartError(
                f"{task.name}: class {cls!r} has 1 example; holding out a validation set needs at least 2 per "
                "class. Add examples, or pass a validation set explicitly."
            )
        n_val = min(len(order) - 1, max(1, round(len(order) * fraction)))
        val.append(order[:n_val])
        train.append(order[n_val:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(val))


def val_budget(per_class: int | None) -> int | None:
    """Validation examples per class that go with a training budget: as a user with that few labels
    would hold out (half the budget, at least 4); the whole validation split for 'all'."""
    return None if per_class is None else max(4, per_class // 2)


def draw(task: Task, splits: Splits, per_class: int | None, *, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(train, validation) indices for a label budget: both nested in the budget, both stratified.

    A class with fewer validation examples than the matching validation budget keeps all it has.
    """
    train = budget_indices(task, splits.train, per_class, seed=seed)
    want = val_budget(per_class)
    if want is None:
        return train, np.sort(splits.val)
    have = int(np.bincount(task.labels[splits.val], minlength=len(task.classes)).min())
    return train, budget_indices(task, splits.val, min(want, have), seed=seed)
