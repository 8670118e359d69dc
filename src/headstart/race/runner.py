"""Run a race: every missing (strategy, budget, seed) on identical splits, each result committed as it ends."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.metrics import f1_score

from ..adapter import Adapter
from ..backbones import Backbone
from ..data import Splits, Task, budget_indices, draw, load_task, make_splits
from ..fetch import cache_dir
from ..train import Callback, FeatureCache, ProgressBar
from .grid import RaceSpec, RunSpec, default_budgets
from .store import ResultStore

__all__ = ["RaceData", "prepare_race", "run_race"]

log = logging.getLogger(__name__)

BackboneFactory = Callable[[bool], Backbone]


@dataclass
class RaceData:
    task: Task
    splits: Splits  # train and validation pools that every run draws its budget from
    test: Task  # the same held-out examples for every run
    fingerprint: str


def prepare_race(spec: RaceSpec, task: Task | None = None) -> RaceData:
    """Load the data, fix the split and the test set (shared by every run), and fill in default budgets."""
    task = task if task is not None else load_task(spec.data)
    splits = make_splits(task, seed=spec.split_seed)
    test_index = splits.test
    if spec.test_limit is not None and spec.test_limit < len(test_index):
        per_class = max(1, spec.test_limit // len(task.classes))
        smallest = int(np.bincount(task.labels[test_index], minlength=len(task.classes)).min())
        test_index = budget_indices(task, test_index, min(per_class, smallest), seed=spec.split_seed)
    if not spec.budgets:
        import torch

        spec.budgets = default_budgets(task, split_seed=spec.split_seed, gpu=torch.cuda.is_available())
    return RaceData(task, splits, task.subset(test_index), task.fingerprint())


def _run_one(spec: RaceSpec, data: RaceData, run: RunSpec, backbone: str | BackboneFactory, cache: FeatureCache,
             callbacks: Sequence[Callback]) -> dict[str, Any]:
    task = data.task
    train_idx, val_idx = draw(task, data.splits, run.budget, seed=run.seed)
    options = {**spec.train_options, "seed": run.seed}
    clf = Adapter(backbone, run.strategy, backbone_options=spec.backbone_options, feature_cache=cache,
                  callbacks=list(callbacks), **options)
    tic = time.perf_counter()
    clf.fit(task.subset(train_idx), val=task.subset(val_idx))
    fit_seconds = time.perf_counter() - tic
    tic = time.perf_counter()
    proba = clf.predict_proba(data.test)
    predict_seconds = time.perf_counter() - tic
    pred = proba.argmax(1)
    r = clf.result_
    epochs = len(r.records)
    return {
        "strategy": run.strategy, "budget": run.budget, "seed": run.seed,
        "per_class": run.budget if run.budget is not None else float(len(train_idx)) / len(task.classes),
        "n_train": len(train_idx), "n_val": len(val_idx), "n_test": len(data.test),
        "test_acc": float((pred == data.test.labels).mean()),
        "test_macro_f1": float(f1_score(data.test.labels, pred, average="macro")),
        "trainable_params": r.trainable_params, "seconds": fit_seconds, "predict_seconds": predict_seconds,
        "epochs": epochs, "seconds_per_epoch": (sum(e.seconds for e in r.records) / epochs) if epochs else None,
        "best_epoch": r.best_epoch, "stop_reason": r.stop_reason.value, "best_val_acc": r.best_val_acc,
        "delta_l2": r.delta.get("l2"), "delta_relative": r.delta.get("relative"),
        "delta_per_block": r.delta.get("per_block"),
        "curve": [{"epoch": e.epoch, "stage": e.stage, "train_loss": e.train_loss, "val_loss": e.val_loss,
                   "val_acc": e.val_acc} for e in r.records],
        "notes": r.notes,
    }


def run_race(spec: RaceSpec, out: str | Path, *, task: Task | None = None,
             backbone: str | BackboneFactory | None = None, progress: bool = True,
             feature_cache: FeatureCache | None = None,
             on_run_end: Callable[[dict[str, Any], int, int], None] | None = None) -> list[dict[str, Any]]:
    """Run what is missing of ``spec`` into ``out/results.sqlite``; returns this grid's records.

    ``backbone`` overrides ``spec.backbone`` with a factory (custom or test backbones).
    """
    out = Path(out)
    data = prepare_race(spec, task)
    store = ResultStore(out / "results.sqlite")
    store.set_meta("spec", spec.to_dict())
    store.set_meta("data", {"name": data.task.name, "source": data.task.source, "classes": list(data.task.classes),
                            "modality": data.task.modality, "examples": len(data.task), "test": len(data.test),
                            "fingerprint": data.fingerprint})
    keys = {run: spec.run_key(run, data.fingerprint) for run in spec.runs()}
    done = store.done_keys()
    todo = [run for run in spec.runs() if keys[run] not in done]
    log.info("race: %d runs in the grid, %d already finished, %d to run", len(keys), len(keys) - len(todo), len(todo))
    cache = feature_cache or FeatureCache(cache_dir() / "features")
    bar = None
    if progress and todo:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(keys), initial=len(keys) - len(todo), desc="race", unit="run")
    try:
        for n, run in enumerate(todo, 1):
            if bar is not None:
                bar.set_postfix_str(run.label)
            callbacks = [ProgressBar(run.label)] if progress else []
            record = _run_one(spec, data, run, backbone or spec.backbone, cache, callbacks)
            store.add(keys[run], run.strategy, run.budget, run.seed, record)
            if bar is not None:
                bar.update(1)
            if on_run_end is not None:
                on_run_end(record, n, len(todo))
    finally:
        if bar is not None:
            bar.close()
    records = store.records(set(keys.values()))
    store.close()
    return records
