"""The training loop: AdamW, warm-up then cosine, clipping, early stopping that restores the best weights.

It knows nothing about strategies: it gets a model, the parameter groups, where the forward pass
starts (0 for raw inputs, later for cached states) and two batch sources.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from ..backbones import State
from ..errors import HeadstartError
from .callbacks import Callback, EpochRecord, FitResult, StopReason
from .config import TrainConfig
from .distributed import data_parallel
from .model import AdaptedModel, copy_trainable_state, count_trainable, set_train_mode
from .objective import Batch, Objective
from .precision import autocast

__all__ = ["BatchSource", "EarlyStopping", "evaluate", "optimizer_step", "recalibrate_batchnorm", "run_training",
           "warmup_cosine"]


@dataclass
class BatchSource:
    """Items (raw inputs or cached per-example states) plus labels, and how to make a model-ready batch."""

    items: Sequence[Any]
    labels: np.ndarray
    to_state: Callable[[list[Any]], State]  # preprocess (raw) or merge_states (cached)
    augment: Callable[[Any, np.random.Generator], Any] | None = None
    #: batches in page-locked memory, so copies to a GPU overlap compute (``non_blocking``), as a DataLoader's
    #: ``pin_memory`` does; set for cached states bound for CUDA
    pin: bool = False

    def __len__(self) -> int:
        return len(self.labels)

    def batch(self, index: Sequence[int], rng: np.random.Generator | None = None) -> tuple[State, Tensor]:
        items = [self.items[i] for i in index]
        if self.augment is not None and rng is not None:
            items = [self.augment(x, rng) for x in items]
        state, labels = self.to_state(items), torch.as_tensor(self.labels[np.asarray(index)], dtype=torch.long)
        if self.pin:
            state, labels = {k: v.pin_memory() for k, v in state.items()}, labels.pin_memory()
        return state, labels


class EarlyStopping:
    """Tracks the monitored metric; says when an epoch is the best so far and when patience ran out.

    ``val_acc`` breaks ties by the lower loss (accuracy on a few validation examples ties often),
    ``val_loss`` by the higher accuracy. Stopping never fires before epoch ``min_epochs``. ``none``: every
    epoch counts as the best so far (the last weights are kept) and stopping never fires.
    """

    def __init__(self, monitor: str = "val_acc", patience: int = 5, min_epochs: int = 0) -> None:
        self.monitor, self.patience, self.min_epochs = monitor, patience, min_epochs
        self.best: tuple[float, float] | None = None
        self.best_epoch: int | None = None
        self.wait = 0
        self.epoch = 0

    def _key(self, record: EpochRecord) -> tuple[float, float]:
        acc, loss = record.val_acc, record.val_loss
        return (acc, -loss) if self.monitor == "val_acc" else (-loss, acc)

    def update(self, record: EpochRecord) -> bool:
        """Record an epoch; True when it improved on the best so far."""
        key, self.epoch = self._key(record), record.epoch
        better = self.best is None or key > self.best or self.monitor == "none"
        if better:
            self.best, self.best_epoch, self.wait = key, record.epoch, 0
        else:
            self.wait += 1
        return better

    @property
    def restores(self) -> bool:
        """False for ``none``: the run keeps its last weights, so nothing is snapshotted or restored."""
        return self.monitor != "none"

    @property
    def should_stop(self) -> bool:
        return self.restores and self.wait >= self.patience and self.epoch >= self.min_epochs


def warmup_cosine(total_steps: int, warmup: float) -> Callable[[int], float]:
    warm = max(1, int(round(total_steps * warmup))) if warmup > 0 else 0

    def factor(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        progress = (step - warm) / max(1, total_steps - warm)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))
    return factor


def optimizer_step(loss: Tensor, optimizer: torch.optim.Optimizer, scheduler: Any, params: list[Tensor],
                   grad_clip: float | None, backward: Callable[[Tensor], None] | None = None) -> None:
    """Backward, clip, step, schedule: the one update every training path uses."""
    optimizer.zero_grad(set_to_none=True)
    (backward or Tensor.backward)(loss)
    if grad_clip is not None:
        nn.utils.clip_grad_norm_(params, grad_clip)
    optimizer.step()
    scheduler.step()


def _to(state: State, device: torch.device) -> State:
    return {k: v.to(device, non_blocking=True) for k, v in state.items()}


@torch.no_grad()
def evaluate(model: AdaptedModel, source: BatchSource, start: int, device: torch.device,
             batch_size: int) -> tuple[float, float, Tensor]:
    """Mean cross-entropy, accuracy and the logits, in eval mode."""
    was_training = model.training
    model.eval()
    logits = []
    for s in range(0, len(source), batch_size):
        state, _ = source.batch(range(s, min(s + batch_size, len(source))))
        logits.append(model(_to(state, device), start).float().cpu())
    model.train(was_training)
    out = torch.cat(logits)
    labels = torch.as_tensor(source.labels, dtype=torch.long)
    loss = nn.functional.cross_entropy(out, labels).item()
    return loss, (out.argmax(1) == labels).float().mean().item(), out


@torch.no_grad()
def recalibrate_batchnorm(model: AdaptedModel, source: BatchSource, start: int, device: torch.device,
                          batch_size: int, limit: int = 1024) -> None:
    """Recompute the running statistics of every BatchNorm that trains, over (up to ``limit``) training examples.

    Running averages with momentum lag far behind the weights when an epoch is a handful of steps
    (small data, a net trained from scratch), so evaluation in eval mode sees stale statistics: a
    from-scratch MobileNetV2 scored chance on validation for 15 epochs while its training loss fell.
    "Precise BN" (Wu & Johnson, 2021) fixes it with one forward pass, as ``torch.optim.swa_utils.update_bn``.
    """
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.training]
    if not norms:
        return
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # a cumulative average over the batches below
    n = min(len(source), limit)
    for s in range(0, n, batch_size):
        state, _ = source.batch(range(s, min(s + batch_size, n)))
        model(_to(state, device), start)
    for m, momentum in zip(norms, momenta):
        m.momentum = momentum


def run_training(model: AdaptedModel, groups: list[dict], start: int, train: BatchSource, val: BatchSource | None,
                 cfg: TrainConfig, default_epochs: int, *, stage: str, min_steps: int = 0,
                 callbacks: Sequence[Callback] = (), result: FitResult | None = None, include_start: bool = False,
                 objective: Objective | None = None) -> FitResult:
    """Train the trainable parameters on ``objective`` (cross-entropy by default); restore the best epoch's weights.

    ``include_start``: the starting weights (epoch 0) are a candidate too, for a stage that starts
    from a fitted model (a fine-tune whose head starts from the probe's solution). An objective that
    does not validate (or ``val=None``) trains every planned epoch and keeps the last weights.

    Epochs: ``cfg.epochs`` when set, else ``default_epochs`` raised until the run makes ``min_steps``
    updates (``cfg.min_steps`` overrides it); what was planned is added to ``result.stages[-1]``.
    """
    device = next(model.parameters()).device
    cfg = cfg.resolve_monitor("val_acc")  # a caller that did not resolve a strategy's default
    objective = objective or Objective()
    validates = objective.validates and val is not None
    result = result or FitResult(strategy=stage)
    objective.start(model, train, start, device)
    steps_per_epoch = objective.steps_per_epoch(len(train), cfg.batch_size)
    epochs = cfg.plan_epochs(default_epochs, min_steps, steps_per_epoch)
    optimizer = torch.optim.AdamW(groups, lr=groups[0]["lr"], weight_decay=cfg.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, warmup_cosine(steps_per_epoch * epochs, cfg.warmup))
    params = [p for g in groups for p in g["params"]]
    trainable = count_trainable(model)
    result.trainable_params = max(result.trainable_params, trainable)
    patience, min_epochs = cfg.stopping(epochs)
    if result.stages:
        result.stages[-1].update(epochs=epochs, steps_per_epoch=steps_per_epoch, objective=objective.describe(),
                                 **({"patience": patience, "min_epochs": min_epochs, "monitor": cfg.monitor}
                                    if validates else {}))
    stopper = EarlyStopping(cfg.monitor, patience, min_epochs)
    best_state = copy_trainable_state(model) if validates else None
    generator = torch.Generator().manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    dtype = cfg.resolve_precision(device)
    parallel = data_parallel() if any(p.requires_grad for p in model.parameters()) else None
    if parallel is not None and type(objective) is not Objective:
        raise HeadstartError(f"{stage}: multi-process training covers cross-entropy fine-tunes; "
                             f"{objective.describe()} trains in one process (launch without accelerate).")
    forward = parallel.wrap(model) if parallel is not None else model
    for cb in callbacks:
        cb.stop_requested, cb.model = False, model
        cb.on_fit_start({"strategy": result.strategy, "stage": stage, "epochs": epochs,
                         "steps_per_epoch": steps_per_epoch, "trainable_params": trainable, "start_block": start,
                         "patience": patience if validates else None, "min_epochs": min_epochs,
                         "monitor": cfg.monitor if validates else None, "objective": objective.describe()})
    reason = StopReason.MAX_EPOCHS
    if include_start and validates:
        val_loss, val_acc, _ = evaluate(model, val, start, device, cfg.eval_batch_size)
        record = EpochRecord(stage, 0, None, val_loss, val_acc, 0.0, 0.0, trainable)
        result.records.append(record)
        stopper.update(record)
        result.best_epoch, result.best_val_loss, result.best_val_acc = 0, val_loss, val_acc
        for cb in callbacks:
            cb.on_epoch_end(record)
    for epoch in range(1, epochs + 1):
        tic = time.perf_counter()
        set_train_mode(model)
        total, seen = torch.zeros((), device=device), 0  # summed on the device: no host sync per step
        for index in objective.steps(len(train), cfg.batch_size, generator):
            local = parallel.shard(index) if parallel is not None else index
            state, labels = train.batch(local, rng)
            batch = Batch(local, _to(state, device), labels.to(device, non_blocking=True))
            with autocast(dtype, device):
                loss = objective.loss(forward, batch, start).float()
            penalty = objective.penalty(model)
            if penalty is not None:
                loss = loss + penalty
            weight = parallel.scale(len(local), len(index)) if parallel is not None else 1.0
            optimizer_step(loss * weight if weight != 1.0 else loss, optimizer, scheduler, params, cfg.grad_clip,
                           parallel.backward if parallel is not None else None)
            total += loss.detach() * len(local)
            seen += len(local)
        if parallel is not None:  # the epoch's loss over every process's examples
            total, seen = parallel.sum(total), len(train)
        train_loss = total.item() / max(1, seen)
        if not math.isfinite(train_loss):
            reason = StopReason.NON_FINITE_LOSS
            result.notes.append(f"{stage}: the loss became non-finite in epoch {epoch}; kept the best weights "
                                "so far. Try a lower learning rate.")
            if best_state is None:  # nothing validated to fall back on: the weights are unusable
                raise HeadstartError(f"{stage}: the loss became non-finite in epoch {epoch}; lower the learning "
                                     "rate (lr=...).")
            break
        val_loss = val_acc = None
        if validates:
            recalibrate_batchnorm(model, train, start, device, cfg.eval_batch_size)
            val_loss, val_acc, _ = evaluate(model, val, start, device, cfg.eval_batch_size)
        record = EpochRecord(stage, epoch, train_loss, val_loss, val_acc, time.perf_counter() - tic,
                             optimizer.param_groups[0]["lr"], trainable)
        result.records.append(record)
        if validates and stopper.update(record):
            best_state = copy_trainable_state(model) if stopper.restores else None
            result.best_epoch, result.best_val_loss, result.best_val_acc = epoch, val_loss, val_acc
        for cb in callbacks:
            cb.on_epoch_end(record)
        if validates and stopper.should_stop:
            reason = StopReason.EARLY_STOPPED
            break
        if any(cb.stop_requested for cb in callbacks):
            reason = StopReason.INTERRUPTED
            break
    if best_state is not None:
        model.load_state_dict(best_state, strict=False)
    if reason is StopReason.MAX_EPOCHS and validates and not stopper.restores:
        reason = StopReason.SCHEDULE
    result.stop_reason = reason
    for cb in callbacks:
        cb.on_fit_end(result)
    return result
