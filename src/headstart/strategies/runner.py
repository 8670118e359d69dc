"""Run a strategy on a model: its stages in order, each through the loop (or its closed-form solver)."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import torch

from ..data import VALIDATED_FROM, Task
from ..errors import HeadstartError
from ..train.augment import augmenter_for
from ..train.callbacks import Callback, FitResult, StopReason
from ..train.clock import compute_time
from ..train.config import TrainConfig
from ..train.context import FitContext
from ..train.delta import snapshot, weight_distance
from ..train.features import FeatureCache
from ..train.loop import BatchSource, run_training
from ..train.model import AdaptedModel, build_param_groups, count_trainable, first_trainable, module_groups
from .base import Strategy
from .finetune import RANDOM_HEAD_LR

__all__ = ["cached_source", "check_modality", "check_sources", "check_validation", "fit_model", "prepare_model",
           "run_test_time", "stack_states", "with_made"]

log = logging.getLogger(__name__)


def prepare_model(model: AdaptedModel, strategy: Strategy) -> None:
    """Structural changes of every stage (LoRA's adapters), before training or before loading weights."""
    check_modality(strategy, model.backbone.modality, model.backbone.name)
    for stage in strategy.stages():
        stage.configure(model)


def check_modality(strategy: Strategy, modality: str, backbone: str) -> None:
    """One sentence when ``strategy`` does not apply to a ``modality`` backbone (prompt tuning on a conv net)."""
    if modality not in strategy.modalities:
        article = "an" if modality[0] in "aeiou" else "a"
        raise HeadstartError(f"{strategy.spec} applies to {' and '.join(strategy.modalities)} backbones only; "
                             f"{backbone} is {article} {modality} backbone: pick another strategy (`headstart options` "
                             "lists them).")


def stack_states(states):
    """Per-example fixed-size states (pooled features) into a batch."""
    return {k: torch.stack([s[k] for s in states]) for k in states[0]}


def cached_source(model: AdaptedModel, cache: FeatureCache, boundary: int, task: Task, *, batch_size: int,
                  device: torch.device) -> BatchSource:
    """``task`` as cached states at ``boundary`` (pooled features at ``features_start``), ready to batch."""
    states = cache.states(model, boundary, task, range(len(task)), batch_size=batch_size, device=device)
    merge = stack_states if boundary == model.features_start else model.backbone.merge_states
    return BatchSource(states, task.labels, merge, pin=device.type == "cuda")


def _joined(train: Task, val: Task | None) -> Task:
    """Training and validation examples as one task (a stage that trains on both)."""
    if val is None:
        return train
    return Task(list(train.inputs) + list(val.inputs), np.concatenate([train.labels, val.labels]), train.classes,
                train.modality, train.name, train.source)


def _sources(model: AdaptedModel, boundary: int, train: Task, val: Task | None, extra: dict[str, Task],
             cfg: TrainConfig, cache: FeatureCache, device: torch.device
             ) -> tuple[int, BatchSource, BatchSource | None, dict[str, BatchSource]]:
    """Cached states from ``boundary`` when allowed, else raw inputs from block 0 (training ones augmented);
    the extra sources (unlabelled target examples, ...) are prepared exactly as the validation ones."""
    backbone = model.backbone
    if cfg.cache_features and not cfg.augment and boundary > 0:
        def source(t):
            return cached_source(model, cache, boundary, t, batch_size=cfg.eval_batch_size, device=device)
        return boundary, source(train), None if val is None else source(val), {k: source(t) for k, t in extra.items()}
    if cfg.augment and boundary > 0:
        log.info("augmentation is on: the frozen bottom runs every step (the feature cache is bypassed)")
    augment = augmenter_for(train.modality) if cfg.augment else None
    return (0, BatchSource(train.inputs, train.labels, backbone.preprocess, augment),
            None if val is None else BatchSource(val.inputs, val.labels, backbone.preprocess),
            {k: BatchSource(t.inputs, t.labels, backbone.preprocess) for k, t in extra.items()})


def _may_train(model: AdaptedModel, strategy: Strategy) -> set[str]:
    """Names (relative to the backbone) of every parameter some stage's plan lets train."""
    names = set()
    for stage in strategy.stages():
        plan = stage.plan(model.n_blocks)
        for i in plan.block_scales:
            names |= {f"blocks.{i}.{n}" for n, _ in model.backbone.blocks[i].named_parameters()
                      if plan.only is None or plan.only in n}
    return names


def check_sources(strategy: Strategy, sources: dict[str, Task]) -> None:
    """Every extra source the strategy draws from (its stages' terms, a test-time stage) was given (one sentence
    before any training)."""
    for name in sorted(strategy.sources()):
        if name not in sources:
            how = " (--target FILE, or Adapter.fit(..., target=...))" if name == "target" else ""
            raise HeadstartError(f"{strategy.spec} trains on unlabelled {name!r} examples; give them{how}.")


def check_validation(strategy: Strategy, cfg: TrainConfig, val: Task | None) -> None:
    """One sentence when a stage chooses on validation examples and there are none (budgets below 4 per class)."""
    if val is None and strategy.needs_validation(cfg.monitor):
        raise HeadstartError(
            f"{strategy.spec} keeps its best epoch by validation examples, and there are none (a budget below "
            f"{VALIDATED_FROM} per class holds none out); give at least {VALIDATED_FROM} labels per class, train "
            "without early stopping (monitor='none'), or use a strategy that needs no validation (probe, prototype, "
            "contrastive, zero-shot).")


def with_made(strategy: Strategy, train: Task | None, classes: tuple[str, ...], modality: str) -> Task | None:
    """``train`` plus the examples ``strategy`` makes itself from the class names (contrastive's ``synthetic``)."""
    inputs, labels = strategy.made_examples(tuple(classes), modality)
    if not inputs:
        return train
    made = Task(list(inputs), np.asarray(labels, dtype=np.int64), tuple(classes), modality,
                train.name if train is not None else "made", train.source if train is not None else "made")
    return made if train is None else _joined(train, made)


def fit_model(model: AdaptedModel, strategy: Strategy, train: Task, val: Task | None, cfg: TrainConfig, *,
              cache: FeatureCache | None = None, callbacks: Sequence[Callback] = (),
              sources: dict[str, Task] | None = None, previous: Sequence[torch.nn.Module] = ()) -> FitResult:
    """Train ``model`` (already ``prepare_model``-ed) with ``strategy``; returns the run's full record.

    ``val``: the validation examples, or None where a budget is too small to hold any out (only strategies that
    choose nothing on them run then). ``sources``: named extra examples the stages' terms draw from (``target``:
    unlabelled examples of the deployment domain; ``replay``: an earlier task's rehearsal buffer). ``previous``:
    frozen heads of the task(s) the model learned before (continual learning), which guards keep."""
    sources = dict(sources or {})
    check_sources(strategy, sources)
    check_validation(strategy, cfg, val)
    made = with_made(strategy, train, train.classes, train.modality)
    if made is not train:
        log.info("%s: %d examples made from the class names join the %d labelled ones", strategy.spec,
                 len(made) - len(train), len(train))
        train = made
    return _fit(model, strategy, train, val, cfg, cache, callbacks, sources, list(previous))


def _fit(model: AdaptedModel, strategy: Strategy, train: Task, val: Task | None, cfg: TrainConfig,
         cache: FeatureCache | None, callbacks: Sequence[Callback], sources: dict[str, Task],
         previous: list[torch.nn.Module] | None = None) -> FitResult:
    """Every stage in turn on ``train`` (made examples already in it), ``val`` and ``sources``."""
    device = cfg.resolve_device()
    model.to(device)
    cache = cache if cache is not None else FeatureCache()
    start_weights = snapshot(model.backbone, _may_train(model, strategy))
    result = FitResult(strategy=strategy.spec)
    tic = compute_time()
    for n, stage in enumerate(strategy.stages()):
        if stage.test_time:
            run_test_time(model, stage, sources["target"], cfg, device, result, train)
        elif stage.closed_form:
            for cb in callbacks:
                cb.on_phase("extracting features", f"{len(train) + (len(val) if val is not None else 0)} examples "
                            f"through the frozen body for {stage.spec}")
            _plan_stage(model, stage, cfg, result, n)
            # features of a body tuned in this run are never reused: keep them in memory, not on disk
            solving = compute_time()
            _solve(model, stage, train, val, cfg, cache if n == 0 else FeatureCache(), device, result)
            for cb in callbacks:
                cb.on_solved({"stage": stage.spec, "val_acc": result.best_val_acc, "val_loss": result.best_val_loss,
                              "seconds": compute_time() - solving})
        else:
            _train_stage(model, stage, train, val, sources, cfg, cache, device, callbacks, result, n, previous or [])
    if cfg.resolve_precision(device) is not None and not all(s.closed_form for s in strategy.stages()):
        result.notes.append(f"trained under bf16 autocast on {device.type} (precision={cfg.precision!r}); "
                            "weights, evaluation and predictions in fp32")
    result.seconds = compute_time() - tic
    result.delta = weight_distance(model.backbone, start_weights)
    return result


def run_test_time(model: AdaptedModel, stage: Strategy, target: Task, cfg: TrainConfig, device: torch.device,
                  result: FitResult, source: Task | None = None) -> None:
    """A test-time stage on the unlabelled ``target`` examples (raw inputs: the body's statistics change); ``source``:
    examples of the training data (labels not read), which a conv net's BatchNorm statistics are mapped onto."""
    def raw(task: Task) -> BatchSource:
        return BatchSource(task.inputs, task.labels, model.backbone.preprocess)

    note = stage.adapt(model, raw(target), device, cfg.batch_size, cfg.seed,
                       raw(source) if source is not None else None)
    result.boundary = 0  # the body's statistics changed: a cached frozen bottom is not this model's any more
    result.stages.append({"stage": stage.spec, "test_time": True})
    result.notes.append(note)


def check_label_free(strategy: Strategy) -> None:
    """One sentence unless ``strategy`` can be built without examples (it learns nothing from labels, or makes its
    own from the class names)."""
    if not strategy.runs_without_labels or (not strategy.makes_examples
                                            and not all(s.closed_form for s in strategy.stages())):
        raise HeadstartError(f"{strategy.spec} learns from labelled examples; give some (X and y), or use zero-shot, "
                             "which needs only the class names (or contrastive with synthetic=8, which makes "
                             "examples from them).")


def _record_solved(model: AdaptedModel, stage: Strategy, chosen: dict, result: FitResult) -> None:
    """A closed-form stage's outcome in the run's record: what trained, its held-out estimates, its note."""
    result.trainable_params = max(result.trainable_params, count_trainable(model))
    result.best_val_loss, result.best_val_acc = chosen["val_loss"], chosen["val_acc"]
    result.stop_reason = StopReason.SOLVED
    if chosen.get("note"):
        result.notes.append(f"{stage.spec}: {chosen['note']}")


def fit_without_examples(model: AdaptedModel, strategy: Strategy, classes: tuple[str, ...],
                         cfg: TrainConfig) -> FitResult:
    """A strategy that learns nothing from labels (zero-shot) from the class names alone: no example is seen."""
    check_label_free(strategy)
    if strategy.makes_examples:
        made = with_made(strategy, None, tuple(classes), model.backbone.modality)
        assert made is not None
        result = _fit(model, strategy, made, None, cfg, None, (), {})
        result.notes.append(f"no labelled examples: trained on the {len(made)} examples made from the class names")
        return result
    device = cfg.resolve_device()
    model.to(device)
    start_weights = snapshot(model.backbone, _may_train(model, strategy))
    result = FitResult(strategy=strategy.spec)
    tic = compute_time()
    empty, no_labels = torch.empty(0, model.backbone.feature_dim), np.zeros(0, dtype=np.int64)
    for n, stage in enumerate(strategy.stages()):
        _plan_stage(model, stage, cfg, result, n)
        chosen = stage.solve(model, empty, no_labels, empty, no_labels, seed=cfg.seed, classes=tuple(classes))
        _record_solved(model, stage, chosen, result)
    result.notes.append("no labelled examples: the model was built from the class names alone")
    result.seconds = compute_time() - tic
    result.delta = weight_distance(model.backbone, start_weights)
    return result


def _plan_stage(model: AdaptedModel, stage: Strategy, cfg: TrainConfig, result: FitResult,
                n: int) -> tuple[list[dict], int]:
    """The stage's parameter groups; its rates and boundary join the record."""
    lr = cfg.lr or stage.lr_for(model.backbone)
    head_lr = cfg.head_lr or stage.default_head_lr or lr
    groups, boundary = build_param_groups(model, stage.plan(model.n_blocks), lr, head_lr, cfg.weight_decay)
    result.boundary = boundary if n == 0 else min(result.boundary, boundary)
    result.stages.append({"stage": stage.spec, "closed_form": stage.closed_form,
                          **({} if stage.closed_form else {
                              "lr": lr, "head_lr": head_lr,
                              "group_lrs": sorted({round(g["lr"], 12) for g in groups}, reverse=True)})})
    return groups, boundary


def _train_stage(model: AdaptedModel, stage: Strategy, train: Task, val: Task | None, sources: dict[str, Task],
                 cfg: TrainConfig, cache: FeatureCache, device: torch.device, callbacks: Sequence[Callback],
                 result: FitResult, n: int, previous: list[torch.nn.Module]) -> None:
    """One stage through the loop: its sources (cached where the plan allows), its terms prepared, then train."""
    planned = first_trainable(model, stage.plan(model.n_blocks))  # where a cache of the frozen bottom stops
    fit_on, held_out = (_joined(train, val), None) if stage.trains_on_validation else (train, val)
    if planned > 0 and cfg.cache_features and not cfg.augment:
        for cb in callbacks:
            cb.on_phase("extracting features",
                        f"blocks 0..{min(planned, model.n_blocks) - 1} run once for {stage.spec}")
    boundary, train_src, val_src, extra = _sources(model, planned, fit_on, held_out, sources, cfg, cache, device)
    stage_cfg = cfg.resolve_monitor(stage.default_monitor)
    ctx = FitContext(model, stage_cfg, device, boundary, train_src, val_src, stage.spec, train.classes, extra,
                     previous=previous)
    groups, _ = _plan_stage(model, stage, cfg, result, n)  # what trains is set before the terms prepare
    terms = stage.terms()
    for term in terms:
        found = term.prepare(ctx)
        if found:
            result.notes.append(f"{stage.spec}: {found}")  # the sentence names what it describes
        for name, module in term.modules().items():  # new modules: a new head's rate, not a fitted body's
            groups += module_groups({f"{term.name}.{name}": module.to(device)}, term.modules_lr or RANDOM_HEAD_LR,
                                    cfg.weight_decay)
    if boundary > 0:
        result.notes.append(f"{stage.spec}: frozen blocks 0..{min(boundary, model.n_blocks) - 1} ran once "
                            "(cached); each epoch ran only the trainable top")
    if stage.trains_on_validation:
        result.notes.append(f"{stage.spec}: trained on the {len(train)} training + {0 if val is None else len(val)} "
                            "validation examples (nothing held out, no early stopping)")
    elif val is None:
        result.notes.append(f"{stage.spec}: no validation examples (a budget below {VALIDATED_FROM} per class): "
                            "trained for its epochs, the last kept")
    run_training(model, groups, boundary, train_src, val_src, stage_cfg, stage.default_epochs, stage=stage.spec,
                 min_steps=stage.default_min_steps, callbacks=callbacks, result=result,
                 include_start=stage.starts_fitted, objective=stage.objective(model, cfg), terms=terms, ctx=ctx)


def _solve(model: AdaptedModel, stage, train: Task, val: Task | None, cfg: TrainConfig, cache: FeatureCache,
           device: torch.device, result: FitResult) -> None:
    at = model.features_start
    feats = [stack_states(cache.states(model, at, t, range(len(t)), batch_size=cfg.eval_batch_size, device=device))
             ["features"].cpu() if t is not None else torch.empty(0, model.backbone.feature_dim)
             for t in (train, val)]
    y_val = val.labels if val is not None else np.zeros(0, dtype=np.int64)
    chosen = stage.solve(model, feats[0], train.labels, feats[1], y_val, seed=cfg.seed, classes=train.classes)
    _record_solved(model, stage, chosen, result)  # its val_loss / val_acc: held-out estimates
