"""The training loop: AdamW, warm-up then cosine, clipping, early stopping that restores the best weights.

It knows nothing about strategies: it gets a model, the parameter groups, where the forward pass
starts (0 for raw inputs, later for cached states), two batch sources, the stage's objective and its
terms (already prepared, their parameters among the groups) and the fit context they draw from.
Each step's loss is the objective's data term plus every term's weighted value; the epoch record
holds each part (``EpochRecord.terms``) and the early-stopping state after the epoch.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from ..backbones import State
from ..errors import HeadstartError
from .callbacks import Callback, EpochRecord, FitResult, StopReason
from .clock import compute_time
from .config import TrainConfig
from .context import FitContext
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


class EarlyStopping(Callback):
    """Tracks the monitored metric; says when an epoch is the best so far and when patience ran out.

    A callback: the loop runs it first after each epoch, and it writes its state into the epoch's record
    (``best_epoch``, ``wait``), so whatever follows a run (the lab, the report) reads it rather than
    replaying the rule; it stops the loop by ``stop_requested``.

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
        self.improved = False

    def on_epoch_end(self, record: EpochRecord) -> None:
        self.improved = self.update(record)
        record.best_epoch, record.wait = self.best_epoch, self.wait
        self.stop_requested = self.should_stop

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
                   grad_clip: float | None, backward: Callable[[Tensor], None] | None = None,
                   before_step: Callable[[], None] | None = None) -> None:
    """Backward, clip, (``before_step``), step, schedule: the one update every training path uses."""
    optimizer.zero_grad(set_to_none=True)
    (backward or Tensor.backward)(loss)
    if grad_clip is not None:
        nn.utils.clip_grad_norm_(params, grad_clip)
    if before_step is not None:
        before_step()
    optimizer.step()
    scheduler.step()


def _to(state: State, device: torch.device) -> State:
    return {k: v.to(device, non_blocking=True) for k, v in state.items()}


@torch.no_grad()
def evaluate(model: AdaptedModel, source: BatchSource, boundary: int, device: torch.device,
             batch_size: int) -> tuple[float, float, Tensor]:
    """Mean cross-entropy, accuracy and the logits, in eval mode."""
    was_training = model.training
    model.eval()
    logits = []
    for s in range(0, len(source), batch_size):
        state, _ = source.batch(range(s, min(s + batch_size, len(source))))
        logits.append(model(_to(state, device), boundary).float().cpu())
    model.train(was_training)
    out = torch.cat(logits)
    labels = torch.as_tensor(source.labels, dtype=torch.long)
    loss = nn.functional.cross_entropy(out, labels).item()
    return loss, (out.argmax(1) == labels).float().mean().item(), out


@torch.no_grad()
def recalibrate_batchnorm(model: AdaptedModel, source: BatchSource, boundary: int, device: torch.device,
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
        model(_to(state, device), boundary)
    for m, momentum in zip(norms, momenta):
        m.momentum = momentum


def run_training(model: AdaptedModel, groups: list[dict], boundary: int, train: BatchSource, val: BatchSource | None,
                 cfg: TrainConfig, default_epochs: int, *, stage: str, min_steps: int = 0,
                 callbacks: Sequence[Callback] = (), result: FitResult | None = None, include_start: bool = False,
                 objective: Objective | None = None, terms: Sequence[Any] = (),
                 ctx: FitContext | None = None) -> FitResult:
    """Train the trainable parameters on ``objective`` (cross-entropy by default) plus ``terms``; restore the best
    epoch's weights.

    ``include_start``: the starting weights (epoch 0) are a candidate too, for a stage that starts
    from a fitted model (a fine-tune whose head starts from the probe's solution). An objective that
    does not validate (or ``val=None``) trains every planned epoch and keeps the last weights.

    Epochs: ``cfg.epochs`` when set, else ``default_epochs`` raised until the run makes ``min_steps``
    updates (``cfg.min_steps`` overrides it); what was planned is added to ``result.stages[-1]``.
    """
    device = next(model.parameters()).device
    cfg = cfg.resolve_monitor("val_acc")  # a caller that did not resolve a strategy's default
    ctx = ctx or FitContext(model, cfg, device, boundary, train, val, stage)
    run = _Run(model, groups, ctx, objective or Objective(), list(terms), list(callbacks),
               result or FitResult(strategy=stage), default_epochs, min_steps)
    reason = run.train(include_start)
    if run.best_state is not None:
        model.load_state_dict(run.best_state, strict=False)
    if reason is StopReason.MAX_EPOCHS and run.validates and not run.stopper.restores:
        reason = StopReason.SCHEDULE
    run.result.stop_reason = reason
    for cb in run.callbacks:
        cb.on_fit_end(run.result)
    return run.result


class _Run:
    """One stage's training: the optimiser and schedule, the stopper, and the epoch loop."""

    def __init__(self, model: AdaptedModel, groups: list[dict], ctx: FitContext, objective: Objective,
                 terms: list[Any], callbacks: list[Callback], result: FitResult, default_epochs: int,
                 min_steps: int) -> None:
        cfg, stage = ctx.cfg, ctx.stage
        self.model, self.ctx, self.objective, self.terms, self.result = model, ctx, objective, terms, result
        self.cfg, self.stage, self.device, self.boundary = cfg, stage, ctx.device, ctx.boundary
        self.validates = objective.validates and ctx.val is not None
        objective.bind(ctx)
        objective.prepare(model, ctx.train, ctx.boundary, ctx.device)
        self.steps_per_epoch = objective.steps_per_epoch(len(ctx.train), cfg.batch_size)
        self.epochs = cfg.plan_epochs(default_epochs, min_steps, self.steps_per_epoch)
        ctx.total_steps = self.steps_per_epoch * self.epochs
        self.optimizer = torch.optim.AdamW(groups, lr=groups[0]["lr"], weight_decay=cfg.weight_decay)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, warmup_cosine(self.steps_per_epoch * self.epochs, cfg.warmup))
        self.params = [p for g in groups for p in g["params"]]
        self.trainable = count_trainable(model) + sum(count_trainable(m) for t in terms for m in t.modules().values())
        result.trainable_params = max(result.trainable_params, self.trainable)
        patience, min_epochs = cfg.stopping(self.epochs)
        self.stopper = EarlyStopping(cfg.monitor, patience, min_epochs)
        self.callbacks = callbacks
        self.best_state = copy_trainable_state(model) if self.validates else None
        self.generator = torch.Generator().manual_seed(cfg.seed)
        self.rng = np.random.default_rng(cfg.seed)
        self.dtype = cfg.resolve_precision(ctx.device)
        self.parallel = data_parallel() if any(p.requires_grad for p in model.parameters()) else None
        if self.parallel is not None and (type(objective) is not Objective or terms):
            what = objective.describe() if type(objective) is not Objective else ", ".join(t.name for t in terms)
            raise HeadstartError(f"{stage}: multi-process training covers cross-entropy fine-tunes; "
                                 f"{what} trains in one process (launch without accelerate).")
        self.forward = self.parallel.wrap(model) if self.parallel is not None else model
        self._announce(patience, min_epochs)

    def _announce(self, patience: int, min_epochs: int) -> None:
        described = ", ".join([self.objective.describe(), *(t.describe() for t in self.terms)])
        if self.result.stages:
            self.result.stages[-1].update(
                epochs=self.epochs, steps_per_epoch=self.steps_per_epoch, objective=described,
                **({"patience": patience, "min_epochs": min_epochs, "monitor": self.cfg.monitor}
                   if self.validates else {}))
        for cb in self.callbacks:
            cb.stop_requested, cb.model = False, self.model
            cb.on_fit_start({"strategy": self.result.strategy, "stage": self.stage, "epochs": self.epochs,
                             "steps_per_epoch": self.steps_per_epoch, "trainable_params": self.trainable,
                             "boundary": self.boundary, "patience": patience if self.validates else None,
                             "min_epochs": min_epochs, "monitor": self.cfg.monitor if self.validates else None,
                             "objective": described})

    def train(self, include_start: bool) -> StopReason:
        if include_start and self.validates:
            val_loss, val_acc, _ = evaluate(self.model, self.ctx.val, self.boundary, self.device,
                                            self.cfg.eval_batch_size)
            self._end_epoch(EpochRecord(self.stage, 0, None, val_loss, val_acc, 0.0, 0.0, self.trainable))
        for epoch in range(1, self.epochs + 1):
            tic = compute_time()
            train_loss, parts = self._epoch()
            if not math.isfinite(train_loss):
                return self._non_finite(epoch)
            val_loss = val_acc = None
            if self.validates:
                recalibrate_batchnorm(self.model, self.ctx.train, self.boundary, self.device, self.cfg.eval_batch_size)
                val_loss, val_acc, _ = evaluate(self.model, self.ctx.val, self.boundary, self.device,
                                                self.cfg.eval_batch_size)
            self._end_epoch(EpochRecord(self.stage, epoch, train_loss, val_loss, val_acc, compute_time() - tic,
                                        self.optimizer.param_groups[0]["lr"], self.trainable, terms=parts))
            if self.validates and self.stopper.stop_requested:
                return StopReason.EARLY_STOPPED
            if any(cb.stop_requested for cb in self.callbacks):
                return StopReason.INTERRUPTED
        return StopReason.MAX_EPOCHS

    def _end_epoch(self, record: EpochRecord) -> None:
        self.result.records.append(record)
        if self.validates:  # the stopper first: it writes its state into the record the others receive
            self.stopper.on_epoch_end(record)
            if self.stopper.improved:
                if record.epoch > 0:  # epoch 0's weights are the starting copy, kept as the NaN fallback
                    self.best_state = copy_trainable_state(self.model) if self.stopper.restores else None
                self.result.best_epoch, self.result.best_val_loss, self.result.best_val_acc = (
                    record.epoch, record.val_loss, record.val_acc)
        for cb in self.callbacks:
            cb.on_epoch_end(record)

    def _epoch(self) -> tuple[float, dict[str, float]]:
        """One pass: the mean loss per example, and each part of it (the data term and every term) when terms."""
        set_train_mode(self.model, self.cfg.resolve_batchnorm(self.model.backbone.pretrained))
        for m in (m for t in self.terms for m in t.modules().values()):
            m.train()
        names = ["data", *(t.name for t in self.terms)] if self.terms else []
        sums = torch.zeros(1 + len(self.terms), device=self.device)  # on the device: no host sync per step
        seen, train = 0, self.ctx.train
        for step, index in enumerate(self.objective.steps(len(train), self.cfg.batch_size, self.generator)):
            local = self.parallel.shard(index) if self.parallel is not None else index
            state, labels = train.batch(local, self.rng)
            batch = Batch(local, _to(state, self.device), labels.to(self.device, non_blocking=True))
            parts = self._loss(batch)
            loss = sum(parts[1:], parts[0])
            weight = self.parallel.scale(len(local), len(index)) if self.parallel is not None else 1.0
            optimizer_step(loss * weight if weight != 1.0 else loss, self.optimizer, self.scheduler, self.params,
                           self.cfg.grad_clip, self.parallel.backward if self.parallel is not None else None,
                           self._before_step)
            sums += torch.stack([p.detach() for p in parts]) * len(local)
            seen += len(local)
            for cb in self.callbacks:
                cb.on_step_end(step, loss)
        if self.parallel is not None:  # the epoch's loss over every process's examples
            sums, seen = self.parallel.sum(sums), len(train)
        means = [v / max(1, seen) for v in sums.tolist()]  # divided in double precision, as the record is
        return float(sum(means)), dict(zip(names, means))

    def _loss(self, batch: Batch) -> list[Tensor]:
        """[data term, weighted term, ...] of one step."""
        with autocast(self.dtype, self.device):
            data = self.objective.loss(self.forward, batch, self.boundary).float()
            parts = [t.resolved_weight * t.value(self.model, batch, self.ctx).float() for t in self.terms]
        penalty = self.objective.penalty(self.model)
        return [data if penalty is None else data + penalty, *parts]

    def _before_step(self) -> None:
        for cb in self.callbacks:
            cb.on_before_optimizer_step(self.optimizer)

    def _non_finite(self, epoch: int) -> StopReason:
        self.result.notes.append(f"{self.stage}: the loss became non-finite in epoch {epoch}; kept the best weights "
                                 "so far. Try a lower learning rate.")
        if self.best_state is None:  # nothing validated to fall back on: the weights are unusable
            raise HeadstartError(f"{self.stage}: the loss became non-finite in epoch {epoch}; lower the learning "
                                 "rate (lr=...).")
        return StopReason.NON_FINITE_LOSS
