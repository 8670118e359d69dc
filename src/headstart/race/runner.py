"""Run a race: every missing (strategy, budget, seed) on identical splits, each result committed as it ends.

Every run is scored on two held-out parts: *selection* (what chooses) and *test* (only reported).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sklearn.metrics import f1_score

from .. import __version__
from ..adapter import Adapter
from ..backbones import Backbone
from ..backbones.hf_load import pin
from ..data import Task, draw
from ..errors import HeadstartError
from ..fetch import cache_dir
from ..tracking import Tracker
from ..train import Callback, EpochRecord, FeatureCache, ProgressBar
from ..train.clock import compute_time
from .choosing import cross_validate
from .domains import (
    deployment_gap,
    flat_weights_note,
    importance_weighted_accuracy,
    prediction_entropy,
    selection_weights,
)
from .eta import RaceClock
from .executors import Executor, LocalExecutor
from .forgetting import measure_forgetting, reference_name
from .grid import RaceSpec, RunSpec
from .prepare import RaceData, prepare_race
from .store import ResultStore

__all__ = ["RaceData", "grid_records", "prepare_race", "race_lock", "run_race"]

log = logging.getLogger(__name__)

BackboneFactory = Callable[[bool], Backbone]
ENTROPY_EXAMPLES = 500  # target examples each run's prediction entropy is measured on


def _scores(clf: Adapter, part: Task) -> tuple[float | None, float | None, float, list[int]]:
    """Accuracy, macro-F1, seconds to predict ``part``, and the predicted class indices (no scores for an empty
    part: a race on data too small to hold a test part out)."""
    if len(part) == 0:
        return None, None, 0.0, []
    tic = compute_time()
    pred = clf.predict_proba(part).argmax(1)
    seconds = compute_time() - tic
    return (float((pred == part.labels).mean()),
            float(f1_score(part.labels, pred, average="macro", labels=np.unique(part.labels))), seconds,
            pred.tolist())


def _run_one(spec: RaceSpec, data: RaceData, run: RunSpec, backbone: str | BackboneFactory, cache: FeatureCache,
             callbacks: Sequence[Callback]) -> dict[str, Any]:
    task = data.task
    train_idx, val_idx = draw(task, data.splits, run.budget, seed=run.seed)
    strategy = spec.strategy(run.strategy)  # parsed once, with this race's options
    backbone_options = spec.backbone_options
    if run.backbone is not None:  # a race over several backbones: this run's candidate
        backbone, backbone_options = spec.backbone_of(run.backbone)
    clf = Adapter(backbone, strategy, backbone_options=backbone_options, feature_cache=cache,
                  callbacks=list(callbacks), **{**spec.train_options_for(run.strategy), "seed": run.seed})
    for cb in callbacks:
        cb.on_phase("training", f"{run.entry} on {len(train_idx) + len(val_idx)} labelled examples")
    tic = compute_time()
    target = data.target if "target" in strategy.sources() else None
    if run.budget == 0:  # no labels: a label-free strategy (zero-shot) from the class names alone
        clf.fit(None, classes=task.classes)
    else:  # below VALIDATED_FROM per class nothing is held out: only strategies that need no validation run there
        clf.fit(task.subset(train_idx), val=task.subset(val_idx) if len(val_idx) else None, target=target)
    fit_seconds = compute_time() - tic
    for cb in callbacks:
        cb.on_phase("scoring", f"{len(data.selection):,} selection and {len(data.test):,} test examples")
    cv, sel_pred = None, []
    if data.choose == "cv":  # the selection score: out-of-fold predictions of the run's own labels
        cv = _cross_validated(spec, data, run, clf, backbone, backbone_options, cache, train_idx, val_idx, target)
        sel_acc, sel_f1 = cv["acc"], cv["macro_f1"]
    else:
        sel_acc, sel_f1, _, sel_pred = _scores(clf, data.selection)
    test_acc, test_f1, predict_seconds, test_pred = _scores(clf, data.test)
    r = clf.result_
    if clf.strategy_.pretrained and (r.delta.get("l2") or 0.0) > 0:
        for cb in callbacks:
            cb.on_phase("measuring what it kept", "its features against the pretrained ones")
    forgetting = _forgetting(spec, data, clf, backbone, backbone_options, cache)
    deployment: dict[str, Any] = {}
    if data.ood is not None:
        deployment["ood_acc"], deployment["ood_macro_f1"], _, _ = _scores(clf, data.ood)
        deployment["n_ood"] = len(data.ood)
    if data.target is not None:
        if data.selection_weights is not None and data.choose != "cv":
            deployment["iwv_acc"] = importance_weighted_accuracy(sel_pred, data.selection.labels,
                                                                 data.selection_weights)
        shown = data.target.subset(np.arange(min(len(data.target), ENTROPY_EXAMPLES)))
        deployment["target_entropy"] = prediction_entropy(clf.predict_proba(shown))
    epochs = len([e for e in r.records if e.epoch > 0])
    labelled = len(train_idx) + len(val_idx)
    return {
        "strategy": run.entry, "budget": run.budget, "seed": run.seed, "from_scratch": clf.strategy_.from_scratch,
        **({} if run.backbone is None else {"backbone": run.backbone, "strategy_entry": run.strategy}),
        "headstart": __version__,
        "per_class": run.budget if run.budget is not None else float(labelled) / len(task.classes),
        "n_train": len(train_idx), "n_val": len(val_idx), "n_selection": cv["n"] if cv else len(data.selection),
        **({"cv": cv} if cv else {}),
        "n_test": len(data.test),
        "sel_acc": sel_acc, "sel_macro_f1": sel_f1, "test_acc": test_acc, "test_macro_f1": test_f1,
        "trainable_params": r.trainable_params, "seconds": fit_seconds, "predict_seconds": predict_seconds,
        "epochs": epochs, "seconds_per_epoch": (sum(e.seconds for e in r.records) / epochs) if epochs else None,
        "best_epoch": r.best_epoch, "stop_reason": r.stop_reason.value, "best_val_acc": r.best_val_acc,
        "delta_l2": r.delta.get("l2"), "delta_relative": r.delta.get("relative"),
        "delta_per_block": r.delta.get("per_block"),
        **({"forgetting": forgetting} if forgetting is not None else {}),
        **deployment,
        "curve": [{"epoch": e.epoch, "stage": e.stage, "train_loss": e.train_loss, "val_loss": e.val_loss,
                   "val_acc": e.val_acc, "seconds": e.seconds, "lr": e.lr, **({"terms": e.terms} if e.terms else {})}
                  for e in r.records],
        "notes": r.notes, "stages": r.stages, "config": clf.config_.to_dict(),
        "device": str(next(clf.model_.parameters()).device), "threads": torch.get_num_threads(),
        "predict_ms_per_example": 1000 * predict_seconds / len(data.test) if len(data.test) else None,
        "test_pred": test_pred,
    }


def _forgetting(spec: RaceSpec, data: RaceData, clf: Adapter, backbone: Any, backbone_options: dict[str, Any],
                cache: FeatureCache) -> dict[str, Any] | None:
    """How much pretrained competence the run kept (``race/forgetting.py``), for a run that moved a pretrained body;
    a reference that cannot be had here is said in the record, never a failed run."""
    if not clf.strategy_.pretrained or not (clf.result_.delta.get("l2") or 0.0) > 0:
        return None
    held = data.selection if len(data.selection) else data.test
    if len(held) == 0:
        return None
    reference = reference_name(spec.reference, data.task.modality, data.task.name)
    try:
        return measure_forgetting(clf.model_, backbone, backbone_options, held, reference, cache)
    except HeadstartError as exc:
        log.warning("forgetting: %s", exc)
        return {"error": str(exc)}


def _cross_validated(spec: RaceSpec, data: RaceData, run: RunSpec, clf: Adapter, backbone: Any,
                     backbone_options: dict[str, Any], cache: FeatureCache, train_idx: np.ndarray,
                     val_idx: np.ndarray, target: Task | None) -> dict[str, Any]:
    """The run's labels cut into folds, each scored by a fresh fit (the run's own settings) on the others; at 0
    labels the run's own label-free model scores every example of the pool (it learnt from none)."""
    task = data.task
    if run.budget == 0:
        acc, f1, seconds, _ = _scores(clf, task.subset(data.splits.pool))
        return {"acc": acc, "macro_f1": f1, "folds": 0, "fold_acc": [], "n": len(data.splits.pool),
                "seconds": seconds}

    def fit_predict(train: np.ndarray, val: np.ndarray, held: np.ndarray) -> np.ndarray:
        fold = Adapter(backbone, spec.strategy(run.strategy), backbone_options=backbone_options, feature_cache=cache,
                       progress=False, **{**spec.train_options_for(run.strategy), "seed": run.seed})
        fold.fit(task.subset(train), val=task.subset(val) if len(val) else None, target=target)
        return fold.predict_proba(task.subset(held)).argmax(1)

    tic = compute_time()
    out = cross_validate(task, np.concatenate([train_idx, val_idx]), folds=spec.cv_folds, seed=run.seed,
                         validates=len(val_idx) > 0, fit_predict=fit_predict)
    return {**out, "seconds": compute_time() - tic}


def run_race(spec: RaceSpec, out: str | Path, *, task: Task | None = None, test_task: Task | None = None,
             data: RaceData | None = None, backbone: str | BackboneFactory | None = None, progress: bool = True,
             feature_cache: FeatureCache | None = None, load_options: dict[str, Any] | None = None,
             on_run_end: Callable[[dict[str, Any], int, int], None] | None = None,
             trackers: Sequence[Tracker] = (), run_callbacks: Callable[[RunSpec], Sequence[Callback]] | None = None,
             record_grid: bool = True, executor: Executor | None = None,
             lock: Callable[[Path], Any] | None = None) -> list[dict[str, Any]]:
    """Run what is missing of ``spec`` into ``out/results.sqlite``; returns this grid's records.

    ``backbone`` overrides ``spec.backbone`` with a factory (custom or test backbones); ``test_task``
    (or ``spec.test``) is the user's own test set; ``data`` is an already prepared race (``prepare_race``);
    ``trackers`` (``headstart.tracking``) log every run it trains to MLflow / TensorBoard;
    ``run_callbacks(run)`` gives training callbacks for one run (the lab's live view);
    ``record_grid=False`` adds runs to the store without making ``spec`` the folder's grid (what the
    report shows), as the lab does when it trains single settings beside a race;
    ``executor`` runs the runs (``LocalExecutor`` by default; ``RayExecutor`` spreads them over Ray), while
    this process alone writes the store; ``lock(out)`` the context that keeps other races out of the folder
    meanwhile (default: one race at a time; the lab shares one among the runs it trains side by side).
    """
    out = Path(out)
    if isinstance(spec.backbone, str):  # a hub id runs at one commit, which every run's key then names
        spec = replace(spec, backbone=pin(spec.backbone))
    data = data or prepare_race(spec, task, test_task, load_options=load_options)
    out.mkdir(parents=True, exist_ok=True)
    if data.target is not None and data.selection_weights is None and len(data.selection):
        name, options = spec.backbone_of(spec.backbones[0] if spec.backbones else None)
        data.selection_weights = selection_weights(backbone or name, options, data.selection, data.target,
                                                   feature_cache or FeatureCache(cache_dir() / "features"),
                                                   seed=spec.split_seed)
        flat = flat_weights_note(data.selection_weights)
        if flat:
            data.notes.append(flat)
    with (lock or race_lock)(out):
        return _run_grid(spec, out, data, backbone, progress, feature_cache, on_run_end, trackers, run_callbacks,
                         record_grid, executor or LocalExecutor())


@contextmanager
def race_lock(out: Path) -> Iterator[None]:
    """One race at a time per folder: a second one is refused at once (readers such as the report are not)."""
    from filelock import FileLock, Timeout

    lock = FileLock(out / ".race.lock")
    try:
        lock.acquire(timeout=0)
    except Timeout:
        raise HeadstartError(f"{out} is in use by another race (`headstart compare` or the lab); wait for it to "
                             "finish, or use another --out. Its finished runs are kept either way.") from None
    try:
        yield
    finally:
        lock.release()


def _run_grid(spec: RaceSpec, out: Path, data: RaceData, backbone: str | BackboneFactory | None, progress: bool,
              feature_cache: FeatureCache | None,
              on_run_end: Callable[[dict[str, Any], int, int], None] | None,
              trackers: Sequence[Tracker], run_callbacks: Callable[[RunSpec], Sequence[Callback]] | None,
              record_grid: bool, executor: Executor) -> list[dict[str, Any]]:
    store = ResultStore(out / "results.sqlite")
    keys = {run: spec.run_key(run, data.fingerprint, data.test_fingerprint, data.target_fingerprint,
                              data.ood_fingerprint) for run in spec.runs()}
    if record_grid or store.get_meta("spec") is None:
        store.set_meta("spec", spec.to_dict())
        store.set_meta("data", data.describe())
    _record_gap(store, spec, data, backbone, feature_cache)
    if record_grid:
        store.set_meta("grid", sorted(keys.values()))
    done = store.done_keys()
    todo = [run for run in spec.runs() if keys[run] not in done]
    log.info("race: %d runs in the grid, %d already finished, %d to run (%s executor)", len(keys),
             len(keys) - len(todo), len(todo), executor.name)
    cache = feature_cache or FeatureCache(cache_dir() / "features")
    bar = None
    if progress and todo:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(keys), initial=len(keys) - len(todo), desc="race", unit="run")
    started: dict[RunSpec, list[Callback]] = {}
    # the rest of the race, timed per entry on its own runs (a resumed race's finished ones included)
    clock = RaceClock(store.records(set(keys.values()) & done) if bar is not None and executor.live else ())
    left, whole_pool = list(todo), len(data.splits.pool) / len(data.task.classes)

    def time_left() -> str:
        return clock.left((r.entry, whole_pool if r.budget is None else r.budget) for r in left)

    def callbacks_for(run: RunSpec) -> list[Callback]:
        """The run's training callbacks: the caller's, trackers' (started here, in the driver) and a bar."""
        identity = spec.run_identity(run, data.fingerprint, data.test_fingerprint, data.target_fingerprint,
                                     data.ood_fingerprint)
        params = {"run": {"strategy": run.entry, "budget": run.budget, "seed": run.seed}, "key": keys[run],
                  **identity}
        callbacks = list(run_callbacks(run)) if run_callbacks is not None else []
        callbacks += [t.start(run.label, params) for t in trackers]
        started[run] = callbacks
        if bar is not None:
            eta = time_left() if executor.live else ""
            bar.set_postfix_str(f"{run.label} · {eta}" if eta else run.label)
        return callbacks + ([ProgressBar(run.label)] if progress else [])

    try:
        runs = executor.run(_run_one, spec, data, todo, backbone or spec.backbone, cache,
                            callbacks_for if executor.live else lambda run: [])
        for n, (run, record) in enumerate(runs, 1):
            if not executor.live:  # trained elsewhere: the driver's callbacks get its epochs now
                _replay(record, callbacks_for(run))
            for cb in started.get(run, []):
                cb.on_run_end(record)
            store.add(keys[run], run.entry, run.budget, run.seed, record)
            left.remove(run)
            clock.observe_record(record)
            for t in trackers:
                t.finish(record)
            if bar is not None:
                bar.update(1)
            if on_run_end is not None:
                on_run_end(record, n, len(todo))
    finally:
        if bar is not None:
            bar.close()
        for t in trackers:
            t.close()
    records = store.records(set(keys.values()))
    store.close()
    return records


def _record_gap(store: ResultStore, spec: RaceSpec, data: RaceData, backbone: Any,
                feature_cache: FeatureCache | None) -> None:
    """The deployment gap (``race/domains.py``) between the pool and the deployment examples (``--target``, else the
    ``--ood-test`` inputs), measured once per data and backbone and kept in the store."""
    deployment, against = ((data.target, "target") if data.target is not None else
                           (data.ood, "ood-test") if data.ood is not None else (None, None))
    if deployment is None:
        return
    name, options = spec.backbone_of(spec.backbones[0] if spec.backbones else None)
    wanted = {"data": data.fingerprint, "deployment": deployment.fingerprint(), "backbone": str(name),
              "backbone_options": options}
    saved = store.get_meta("deployment_gap")
    if saved is not None and all(saved.get(k) == v for k, v in wanted.items()):
        return
    gap = deployment_gap(backbone or name, options, data.task.subset(data.splits.pool), deployment,
                         feature_cache or FeatureCache(cache_dir() / "features"), against=against,
                         seed=spec.split_seed)
    store.set_meta("deployment_gap", {**gap, **wanted})


def _replay(record: dict[str, Any], callbacks: Sequence[Callback]) -> None:
    """A finished run's epochs, as the training loop would have reported them."""
    for entry in record.get("curve", []):
        epoch = EpochRecord(entry["stage"], entry["epoch"], entry["train_loss"], entry["val_loss"], entry["val_acc"],
                            entry.get("seconds", 0.0), entry.get("lr", 0.0), record["trainable_params"],
                            terms=entry.get("terms", {}))
        for cb in callbacks:
            cb.on_epoch_end(epoch)


def grid_records(store: ResultStore) -> tuple[list[dict[str, Any]], int]:
    """The records of the store's current grid, and how many other runs it holds (other settings: not shown)."""
    grid = set(store.get_meta("grid") or [])
    everything = store.records()
    return [r for r in everything if r["key"] in grid], sum(r["key"] not in grid for r in everything)
