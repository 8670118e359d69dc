"""Reproducible stratified splits and nested label budgets.

A race splits the labelled data once, by the split seed, into three parts:

- the **pool**: the labelled examples a run may learn from; a label budget draws from it;
- the **selection** part: held out from every run; every run is scored on it, and everything that
  *chooses* (the recommendation, the best strategy per budget, the contestants of the
  negative-transfer check) uses these scores only;
- the **test** part: held out from every run and from every choice; its scores are only reported.
  A user's own test file replaces it.

A budget of ``n`` per class is every label a run sees: ``n`` examples per class of the pool, split
inside the budget into training and validation (a quarter, at least one per class, for early stopping).
Strategies without early stopping (the probe's cross-validation, the contrastive pair stage) use all
``n``. Below ``VALIDATED_FROM`` (4) per class nothing is held out: with one to three labels of a class,
one of them cannot tell good weights from bad, so every label trains and only strategies that keep no
epoch by validation run there (zero-shot, prototype, the probe, contrastive). Draws are per class with a
generator seeded by ``(seed, class)``, so a class's draw never depends
on the other classes, and a budget is always the first ``n`` of one fixed order: the 32-per-class draw
contains the 8-per-class draw, and learning curves compare like with like.

Exact duplicates (same text, same image bytes) are one unit: they always land in the same part, and
never straddle training and validation.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np

from ..errors import HeadstartError
from .task import Task

__all__ = ["MIN_HELDOUT", "VALIDATED_FROM", "VAL_FRACTION", "Splits", "budget_indices", "check_budgets", "draw",
           "holdout", "make_splits",
           "parse_budget", "split_budget", "stratified_subset"]

log = logging.getLogger(__name__)

#: the share of a budget held out for validation (early stopping), at least one example per class
VAL_FRACTION = 0.25
#: the smallest budget per class that holds validation examples out (below it, every label trains)
VALIDATED_FROM = 4
#: below this many examples, the selection or test part is too small to tell strategies a few points apart
MIN_HELDOUT = 100


@dataclass(frozen=True)
class Splits:
    pool: np.ndarray  # what label budgets draw from (training + validation)
    selection: np.ndarray  # held out; chooses
    test: np.ndarray  # held out; only reported (empty when the user gave a test file)
    seed: int
    warnings: tuple[str, ...] = ()  # held-out parts too small to tell strategies apart

    def sizes(self) -> dict[str, int]:
        return {"pool": len(self.pool), "selection": len(self.selection), "test": len(self.test)}


def units(task: Task) -> np.ndarray:
    """For each example, the index of its first exact copy (itself when unique)."""
    first: dict[str, int] = {}
    return np.array([first.setdefault(task.example_key(i), i) for i in range(len(task))], dtype=np.int64)


def _class_order(labels: np.ndarray, pool: np.ndarray, c: int, seed: int, salt: int) -> np.ndarray:
    members = np.sort(pool[labels[pool] == c])
    return np.random.default_rng([seed, salt, c]).permutation(members)


def make_splits(task: Task, *, selection_fraction: float = 0.2, test_fraction: float = 0.2, seed: int = 0,
                exclude: np.ndarray | None = None) -> Splits:
    """Stratified pool / selection / test; every class gets at least one example in each part.

    ``test_fraction=0`` makes no test part (the user's own test file is the test set);
    ``selection_fraction=0`` no selection part (a race that chooses by cross-validation within the
    labels). ``exclude`` keeps examples out of every part (copies of the user's test examples).
    """
    if not 0.0 <= selection_fraction < 1.0:
        raise HeadstartError("The 'selection_fraction' parameter of make_splits must be in [0, 1). "
                             f"Got {selection_fraction!r} instead.")
    if not 0.0 <= test_fraction < 1.0:
        raise HeadstartError(f"The 'test_fraction' parameter of make_splits must be in [0, 1). Got {test_fraction!r} "
                             "instead.")
    if selection_fraction + test_fraction >= 1.0:
        raise HeadstartError("selection_fraction + test_fraction must leave examples to learn from (sum < 1).")
    task.require_classes()
    unit = units(task)
    excluded = np.zeros(len(task), dtype=bool)
    if exclude is not None and len(exclude):
        excluded[np.asarray(exclude, dtype=np.int64)] = True
    heads = np.unique(unit[~excluded])
    members: dict[int, list[int]] = {}
    for i, u in enumerate(unit.tolist()):
        if not excluded[i]:
            members.setdefault(u, []).append(i)
    parts: dict[str, list[np.ndarray]] = {"pool": [], "selection": [], "test": []}
    need = 1 + (test_fraction > 0) + (selection_fraction > 0)
    for c, cls in enumerate(task.classes):
        order = _class_order(task.labels, heads, c, seed, salt=0)
        n = len(order)
        if n == 0:
            continue
        if n < need:
            fractions = (("pool", 1), ("selection", selection_fraction), ("test", test_fraction))
            parts_named = "/".join(p for p, f in fractions if f > 0)
            raise HeadstartError(
                f"{task.name}: class {cls!r} has {n} distinct example{'s' if n != 1 else ''}; a {parts_named} split "
                f"needs at least {need} per class. Add examples of it or remove the class.")
        n_test = min(max(1, round(n * test_fraction)), n - need + 1) if test_fraction > 0 else 0
        n_sel = min(max(1, round(n * selection_fraction)), n - 1 - n_test) if selection_fraction > 0 else 0
        for name, chunk in (("test", order[:n_test]), ("selection", order[n_test: n_test + n_sel]),
                            ("pool", order[n_test + n_sel:])):
            parts[name].append(np.array([i for u in chunk for i in members[u]], dtype=np.int64))
    pool, selection, test = (np.sort(np.concatenate(parts[k])) if parts[k] else np.zeros(0, dtype=np.int64)
                             for k in ("pool", "selection", "test"))
    warnings = tuple(f"the {name} part has only {len(idx)} examples (fewer than {MIN_HELDOUT}): differences between "
                     f"strategies of a few points on it are noise"
                     for name, idx in (("selection", selection), ("test", test))
                     if len(idx) < MIN_HELDOUT and (selection_fraction if name == "selection" else test_fraction) > 0)
    for w in warnings:
        log.warning("%s: %s", task.name, w)
    return Splits(pool, selection, test, seed, warnings)


def parse_budget(value: str | int | None) -> int | None:
    """``"all"``/``None`` -> ``None`` (the whole pool); ``0`` (no labels: only strategies that learn nothing from
    them run, zero-shot) or a positive integer -> labelled examples per class."""
    if value is None or (isinstance(value, str) and value.strip().lower() == "all"):
        return None
    try:
        if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
            raise ValueError(value)  # int() would quietly turn True into 1 and 2.5 into 2
        n = int(value)
    except (TypeError, ValueError, OverflowError):
        raise HeadstartError(
            f"A label budget is labelled examples per class (an integer, 0 or more) or 'all'. Got {value!r}."
        ) from None
    if n < 0:
        raise HeadstartError(f"A label budget is labelled examples per class, 0 or more (0: zero-shot). Got {n}.")
    return n


def budget_indices(task: Task, pool: np.ndarray, per_class: int | None, *, seed: int = 0) -> np.ndarray:
    """The first ``per_class`` examples of each class in a fixed per-class order over ``pool``.

    Nested by construction: for the same ``pool`` and ``seed``, a smaller budget is a subset of a
    larger one. ``None`` returns the whole pool.
    """
    pool = np.asarray(pool, dtype=np.int64)
    if per_class is None:
        return np.sort(pool)
    return np.sort(np.concatenate(_budget_orders(task, pool, per_class, seed)))


def _budget_orders(task: Task, pool: np.ndarray, per_class: int | None, seed: int) -> list[np.ndarray]:
    """Per class, the budget's examples in draw order (the whole class for ``None``)."""
    out = []
    for c, cls in enumerate(task.classes):
        order = _class_order(task.labels, pool, c, seed, salt=1)
        if per_class is not None and len(order) < per_class:
            raise HeadstartError(
                f"{task.name}: class {cls!r} has only {len(order)} examples to learn from, fewer than the budget "
                f"of {per_class} per class. Use a budget of at most {len(order)}, or 'all'.")
        out.append(order if per_class is None else order[:per_class])
    return out


def check_budgets(task: Task, splits: Splits, budgets: list[int | None]) -> None:
    """Every budget fits every class's pool, checked before any training; the message gives the largest."""
    counts = np.bincount(task.labels[splits.pool], minlength=len(task.classes))
    present = counts[counts > 0]
    smallest = int(present.min()) if len(present) else 0
    too_big = [b for b in budgets if b is not None and b > smallest]
    if too_big:
        cls = task.classes[int(np.flatnonzero(counts == smallest)[0])]
        raise HeadstartError(
            f"A budget of {too_big[0]} labels per class is more than {task.name} can give: class {cls!r} has "
            f"{smallest} examples to learn from (the rest are held out for selection and test). The largest "
            f"possible budget is {smallest}, or 'all'.")


def split_budget(n: int) -> int:
    """Validation examples out of a class's ``n`` budgeted ones (a quarter, rounded up; none when ``n`` < 2)."""
    return 0 if n < 2 else max(1, math.ceil(n * VAL_FRACTION))


def _split_by_unit(order: np.ndarray, unit: dict[int, str], n_val: int) -> tuple[np.ndarray, np.ndarray]:
    """The last units of ``order`` (whole duplicate groups) to validation until it holds ``n_val`` examples."""
    if n_val == 0:
        return order, order[:0]
    groups: dict[str, list[int]] = {}
    for i in order.tolist():
        groups.setdefault(unit[i], []).append(i)
    val: list[int] = []
    for g in reversed(list(groups)[1:]):  # the first unit always stays in training
        if len(val) >= n_val:
            break
        val.extend(groups[g])
    val_set = set(val)
    return np.array([i for i in order.tolist() if i not in val_set], dtype=np.int64), np.array(val, dtype=np.int64)


def _train_val(task: Task, orders: list[np.ndarray], validated_from: int = 2) -> tuple[np.ndarray, np.ndarray]:
    unit = {i: task.example_key(i) for order in orders for i in order.tolist()}  # only the budget's examples
    train, val = [], []
    for order in orders:
        t, v = _split_by_unit(order, unit, split_budget(len(order)) if len(order) >= validated_from else 0)
        train.append(t)
        val.append(v)
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(val))


def draw(task: Task, splits: Splits, per_class: int | None, *, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(train, validation) indices for a budget of ``per_class`` labelled examples per class in total.

    Both come out of the budget (validation: a quarter of each class, rounded up, whole duplicate
    groups), so a run sees exactly ``per_class`` labels per class; ``None`` splits the whole pool
    the same way. Nested: the 8-per-class budget is inside the 32-per-class one. Below ``VALIDATED_FROM`` per
    class the validation part is empty: every label trains.
    """
    return _train_val(task, _budget_orders(task, splits.pool, per_class, seed),
                      2 if per_class is None else VALIDATED_FROM)


def holdout(task: Task, *, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(train, validation) indices of a whole task, by the same rule as a budget's (duplicates kept together)."""
    task.require_classes()
    orders = [_class_order(task.labels, np.arange(len(task)), c, seed, salt=2) for c in range(len(task.classes))]
    for c, order in enumerate(orders):
        if len(order) == 1:
            raise HeadstartError(
                f"{task.name}: class {task.classes[c]!r} has 1 example; holding out a validation set needs at least "
                "2 per class. Add examples, or pass a validation set explicitly (val=...).")
    train, val = _train_val(task, [o for o in orders if len(o)])
    if len(val) == 0 or len(train) == 0:
        raise HeadstartError(
            f"{task.name}: too few distinct examples to hold out a validation set (exact copies stay on one side, "
            f"and each class here has one distinct text or image); add different examples, or pass a validation set "
            "explicitly (val=...).")
    return train, val


def stratified_subset(task: Task, index: np.ndarray, size: int, *, seed: int = 0) -> np.ndarray:
    """Exactly ``size`` of ``index`` (all of it if smaller), in the natural class proportions.

    Largest-remainder allocation, at least one example of every class present; fixed by ``seed``.
    """
    index = np.asarray(index, dtype=np.int64)
    if size >= len(index):
        return np.sort(index)
    counts = np.bincount(task.labels[index], minlength=len(task.classes))
    present = counts > 0
    if size < int(present.sum()):
        raise HeadstartError(f"A held-out subset of {size} examples cannot hold one of each of the "
                             f"{int(present.sum())} classes; ask for at least {int(present.sum())}.")
    quota = counts * size / counts.sum()
    take = np.maximum(np.floor(quota).astype(int), present.astype(int))
    while take.sum() > size:  # the minimum of one per class overshot: trim the largest shares
        take[np.argmax(np.where(take > 1, take - quota, -np.inf))] -= 1
    for c in np.argsort(-(quota - np.floor(quota)), kind="stable"):
        if take.sum() >= size:
            break
        if take[c] < counts[c]:
            take[c] += 1
    chosen = [_class_order(task.labels, index, c, seed, salt=3)[: take[c]] for c in range(len(counts)) if take[c]]
    return np.sort(np.concatenate(chosen))
