"""The data a race runs on: the task, its fixed split, the held-out selection and test parts, and the deployment
domain's examples (``--target``, ``--ood-test``); shared by every run of the race.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..data import Splits, Task, align_test, load_task, load_unlabelled, make_splits, stratified_subset
from ..data.load import check_source_kind
from ..data.preview import preview
from ..data.splits import check_budgets
from ..errors import HeadstartError
from ..strategies.runner import check_modality
from .choosing import resolve_choice
from .grid import RaceSpec, default_budgets

__all__ = ["RaceData", "prepare_race"]

log = logging.getLogger(__name__)


@dataclass
class RaceData:
    task: Task
    splits: Splits  # the pool every run draws its budget from, and the held-out parts
    selection: Task  # held out from every run; chooses
    test: Task  # held out from every run and every choice; only reported
    fingerprint: str
    test_fingerprint: str | None  # of the user's test file (None: the test part is held out of ``task``)
    notes: list[str]
    target: Task | None = None  # unlabelled examples of the deployment domain (``--target``)
    target_fingerprint: str | None = None
    choose: str = "selection"  # or "cv": no selection part, each run cross-validated within its labels
    cv_folds: int = 5
    ood: Task | None = None  # a labelled test set of the deployment domain (``--ood-test``): only scored
    ood_fingerprint: str | None = None
    #: per selection example, the density ratio of the deployment domain to the labelled one (with ``--target``):
    #: importance-weighted validation scores a run's selection accuracy as if on the deployment domain
    selection_weights: list[float] | None = None

    def describe(self) -> dict[str, Any]:
        """What the store keeps about the data (the report and the CLI read it): sizes, sources, and the test
        labels with a short preview of each test example (for the confusion matrix and misclassified examples)."""
        return {"name": self.task.name, "source": self.task.source, "classes": list(self.task.classes),
                "test_labels": self.test.labels.tolist(),
                "test_preview": [preview(self.test, i) for i in range(len(self.test))],
                "modality": self.task.modality, "examples": len(self.task), "pool": len(self.splits.pool),
                "selection": len(self.selection), "test": len(self.test),
                "test_source": self.test.source if self.test_fingerprint else None,
                "fingerprint": self.fingerprint, "test_fingerprint": self.test_fingerprint, "notes": self.notes,
                "choose": self.choose, **({"cv_folds": self.cv_folds} if self.choose == "cv" else {}),
                **({} if self.target is None else {"target": len(self.target), "target_source": self.target.source,
                                                   "target_fingerprint": self.target_fingerprint}),
                **({} if self.ood is None else {"ood_test": len(self.ood), "ood_source": self.ood.source,
                                                "ood_fingerprint": self.ood_fingerprint})}


def prepare_race(spec: RaceSpec, task: Task | None = None, test_task: Task | None = None, *,
                 load_options: dict[str, Any] | None = None) -> RaceData:
    """Load the data, fix the split and the held-out parts (shared by every run), fill in default budgets.

    With a test file (``spec.test`` or ``test_task``) the test set is that file; the selection part
    comes out of ``task``, and ``task``'s exact copies of test examples are kept out of every part.
    """
    task = task if task is not None else load_task(spec.data, **(load_options or {}))
    if test_task is None and spec.test is not None:
        check_source_kind(spec.test, task.modality, "--test")
        test_task = load_task(spec.test, **(load_options or {}))
    notes: list[str] = []
    copies = None
    if test_task is not None:
        test_task, copies = align_test(task, test_task)
    # chosen on a selection part, or (tiny data) by cross-validation within each run's labels: no selection part
    spec.choose, test_fraction, no_test = resolve_choice(spec.choose, task, test_file=test_task is not None,
                                                         exclude=copies)
    selection_fraction = 0.0 if spec.choose == "cv" else 0.2
    if test_task is not None:
        splits = make_splits(task, seed=spec.split_seed, selection_fraction=selection_fraction, test_fraction=0.0,
                             exclude=copies)
        if len(copies):
            notes.append(f"{len(copies)} examples of {task.name} are exact copies of test examples in "
                         f"{test_task.source or test_task.name}; they were kept out of training and selection")
        test_index = np.arange(len(test_task))
    else:
        splits = make_splits(task, seed=spec.split_seed, selection_fraction=selection_fraction,
                             test_fraction=test_fraction)
        test_task, test_index = task, splits.test
    if no_test:
        notes.append(no_test)
    selection_index = splits.selection
    if spec.test_limit is not None:
        selection_index = stratified_subset(task, selection_index, spec.test_limit, seed=spec.split_seed)
        test_index = stratified_subset(test_task, test_index, spec.test_limit, seed=spec.split_seed)
    for note in notes:
        log.warning("%s", note)
    notes += list(splits.warnings)  # already logged by make_splits
    if not spec.budgets:
        spec.budgets = default_budgets(task, split_seed=spec.split_seed, gpu=torch.cuda.is_available(),
                                       pool=splits.pool)
    check_budgets(task, splits, spec.budgets)
    name = spec.backbones[0] if spec.backbones else spec.backbone
    for entry in spec.strategies:  # prompt tuning on images: refused before any run
        check_modality(spec.strategy(entry), task.modality, name if isinstance(name, str) else "this backbone")
    target = None if spec.target is None else load_unlabelled(
        spec.target, task.classes, task.modality, **{k: v for k, v in (load_options or {}).items()
                                                     if k in ("text_column", "encoding")})
    if target is not None and _has_labels(spec.target, load_options):
        notes.append(f"--target {spec.target} has a label column: its examples are used unlabelled (labels never "
                     "read; to score runs on the deployment domain's labels, give them as --ood-test)")
        log.warning("%s", notes[-1])
    ood = None
    if spec.ood_test is not None:
        check_source_kind(spec.ood_test, task.modality, "--ood-test")
        ood, _ = align_test(task, load_task(spec.ood_test, **(load_options or {})), "The --ood-test file")
        if spec.test_limit is not None:
            ood = ood.subset(stratified_subset(ood, np.arange(len(ood)), spec.test_limit, seed=spec.split_seed))
    return RaceData(task, splits, task.subset(selection_index), test_task.subset(test_index), task.fingerprint(),
                    test_task.fingerprint() if test_task is not task else None, notes, target,
                    None if target is None else target.fingerprint(), spec.choose, spec.cv_folds, ood,
                    None if ood is None else ood.fingerprint())


def _has_labels(source: str, load_options: dict[str, Any] | None) -> bool:
    """A target file that holds labels too (a table with a label column, a folder of class folders)."""
    from ..data.load import TABLE_SUFFIXES

    path = Path(source)
    if path.suffix.lower() not in TABLE_SUFFIXES and not path.is_dir():
        return False
    try:
        labelled = load_task(source, **{k: v for k, v in (load_options or {}).items() if k != "label_column"})
    except HeadstartError:
        return False
    return len(labelled.classes) > 1
