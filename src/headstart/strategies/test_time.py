"""Test-time adaptation: a fitted model adjusted on unlabelled examples of the deployment domain, no label needed.

- ``bn-adapt`` (Li et al., 2016, AdaBN): every BatchNorm's running statistics recomputed over the
  target examples (a cumulative average, as ``torch.optim.swa_utils.update_bn``); nothing trains. For
  conv nets; a backbone without BatchNorm (a transformer) is refused in one sentence.
- ``tent`` (Wang et al., ICLR 2021): the normalisation layers' scale and shift trained to minimise the
  entropy of the model's predictions on target batches (BatchNorm in conv nets, after bn-adapt's
  statistics; LayerNorm in transformers), everything else frozen, dropout off. The paper adapts online
  with test-batch statistics; here it is offline over the target examples (``epochs`` passes, Adam at
  ``lr``, 1e-5 by measurement), and BatchNorm then predicts with the target statistics bn-adapt computed, so
  predictions do not depend on which examples share a batch.

Each is a *test-time stage* (``Strategy.test_time``): the race runs it after its recipe's stages as an
entry (``bn-adapt`` and ``tent`` are ``full`` plus the stage, so their source-only baseline is
``full``), and ``Adapter.adapt(target, "tent")`` / ``headstart predict --adapt tent --target FILE`` run
it on any fitted model.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch
from torch import Tensor, nn

from ..declare import option
from ..errors import HeadstartError
from ..train.loop import BatchSource
from ..train.model import AdaptedModel, ParamPlan
from .base import Strategy, register_strategy
from .finetune import Full

__all__ = ["TEST_TIME", "BatchNormAdapt", "Tent", "batchnorm_adapt", "test_time_stage"]

_BN = nn.modules.batchnorm._BatchNorm
_NORMS = (_BN, nn.LayerNorm, nn.GroupNorm)


def _to(state, device):
    return {k: v.to(device) for k, v in state.items()}


def _run_drawn(model: AdaptedModel, source: BatchSource, device: torch.device, batch_size: int, seed: int,
               limit: int) -> None:
    """Up to ``limit`` examples of ``source`` drawn at random (``seed``) through the body, in random batches: a file
    sorted by class would otherwise give statistics of its first classes, batch by batch of one class."""
    picked = np.random.default_rng(seed).permutation(len(source))[:limit]
    for start in range(0, len(picked), batch_size):
        state, _ = source.batch(picked[start:start + batch_size].tolist())
        model.features(_to(state, device), 0)


def _channels(x: Tensor) -> Tensor:
    """A BatchNorm input ``[N, C, ...]`` as ``[C, N·...]``."""
    return x.transpose(0, 1).reshape(x.shape[1], -1)


@torch.no_grad()
def _input_moments(model: AdaptedModel, norms: list[nn.Module], source: BatchSource, device: torch.device,
                   batch_size: int, seed: int, limit: int) -> list[tuple[Tensor, Tensor]]:
    """Per BatchNorm layer, the mean and variance of its input channels over ``source``, the model as it predicts."""
    sums = [[0.0, 0.0, 0] for _ in norms]

    def hook(i):
        def record(_module, args):
            x = _channels(args[0].double())
            sums[i][0] = sums[i][0] + x.sum(1)
            sums[i][1] = sums[i][1] + (x * x).sum(1)
            sums[i][2] += x.shape[1]
        return record

    handles = [m.register_forward_pre_hook(hook(i)) for i, m in enumerate(norms)]
    try:
        _run_drawn(model, source, device, batch_size, seed, limit)
    finally:
        for h in handles:
            h.remove()
    moments = []
    for total, squares, n in sums:
        mean = total / n
        moments.append((mean, (squares / n - mean * mean).clamp_min(0.0)))
    return moments


@torch.no_grad()
def batchnorm_adapt(model: AdaptedModel, target: BatchSource, device: torch.device, batch_size: int,
                    seed: int = 0, limit: int = 2048, source: BatchSource | None = None) -> int:
    """Every BatchNorm's statistics recomputed over (up to ``limit``) target examples; returns how many layers.

    AdaBN swaps the statistics the model normalised its training data with for the target's, so that target
    features reach the layers above as training features did. Without ``source``, those are taken to be the running
    statistics, which holds for a model whose BatchNorm trained on batch statistics (from scratch,
    ``batchnorm="batch"``). A pretrained body fine-tuned with its BatchNorm frozen (headstart's default) normalised its
    training data with its *pretraining* statistics, so the layers above learned that data's offsets and scales under
    them; replacing those with the target's own would hand the layers above standardised inputs they never saw. Given
    the training data (``source``), each layer instead maps the target's channels onto the distribution the training
    data had there: ``(x − μ_T)/σ_T · σ_S/σ + (μ_S − μ)/σ``, ``μ, σ`` the running statistics, ``μ_S, σ_S`` the
    training data's and ``μ_T, σ_T`` the target's (which equals plain AdaBN when the running statistics are the
    training data's). Folded into the running statistics, prediction costs nothing more.
    """
    norms = [m for m in model.backbone.modules() if isinstance(m, _BN) and m.track_running_stats]
    if not norms:
        raise HeadstartError(f"bn-adapt recomputes BatchNorm statistics, and {model.backbone.name} has no BatchNorm "
                             "(a transformer normalises each example on its own): use tent, which adapts its "
                             "LayerNorms.")
    training = model.training
    model.eval()
    maps = []  # per layer: (scale s, shift m) of the training data's normalised channels
    if source is not None:
        for norm, (mean, var) in zip(norms, _input_moments(model, norms, source, device, batch_size, seed, limit)):
            sd = torch.sqrt(norm.running_var.double() + norm.eps)
            maps.append((torch.sqrt(var + norm.eps) / sd, (mean - norm.running_mean.double()) / sd))

    def mapped(i):
        def forward(module, args, out):  # the batch normalised as the training data was, then the layer's affine
            x = args[0]
            shape = (1, -1) + (1,) * (x.dim() - 2)
            flat = _channels(x.double())
            sd = torch.sqrt(flat.var(1, unbiased=False) + module.eps)
            z = (x.double() - flat.mean(1).view(shape)) / sd.view(shape)
            z = z * maps[i][0].view(shape) + maps[i][1].view(shape)
            if module.affine:
                z = z * module.weight.double().view(shape) + module.bias.double().view(shape)
            return z.to(out.dtype)
        return forward

    momenta = [m.momentum for m in norms]
    handles = [m.register_forward_hook(mapped(i)) for i, m in enumerate(norms)] if maps else []
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # a cumulative average over the batches below
        m.train()
    try:
        _run_drawn(model, target, device, batch_size, seed, limit)
    finally:
        for h in handles:
            h.remove()
        for m, momentum in zip(norms, momenta):
            m.momentum = momentum
            m.eval()
    for m, (scale, shift) in zip(norms, maps):  # fold the map into the running statistics
        sd = torch.sqrt(m.running_var.double() + m.eps) / scale
        m.running_mean.copy_(m.running_mean.double() - shift * sd)
        m.running_var.copy_((sd * sd - m.eps).clamp_min(0.0))
    model.train(training)
    return len(norms)


def _entropy(logits: torch.Tensor) -> torch.Tensor:
    logp = torch.log_softmax(logits.float(), dim=1)
    return -(logp.exp() * logp).sum(1).mean()


@dataclass
class TestTimeStage(Strategy):
    """A stage that learns from unlabelled target examples only, after the recipe's stages (or on a fitted model)."""

    test_time: ClassVar[bool] = True
    trains = "head"  # nothing a saved model keeps apart from what its recipe trains: the stage adjusts in place
    closed_form: ClassVar[bool] = False

    def plan(self, n_blocks: int) -> ParamPlan:
        return ParamPlan({}, train_head=False)

    def stage_validates(self, monitor: str | None = None) -> bool:
        return False

    def adapt(self, model: AdaptedModel, target: BatchSource, device: torch.device, batch_size: int,
              seed: int, source: BatchSource | None = None) -> str:
        """Adjust ``model`` on ``target`` in place (``source``: examples of the training data, for a conv net's
        BatchNorm statistics, ``batchnorm_adapt``); returns one line for the run's notes."""
        raise NotImplementedError


@dataclass
class BatchNormStage(TestTimeStage):
    name = "bn-adapt/stage"
    summary = "BatchNorm statistics recomputed on the target examples"
    # 2: over a random draw of the target in random batches, not its first examples in order; 3: relative to the
    # training data's statistics, not in place of the running ones
    behaviour_version = 3

    def adapt(self, model, target, device, batch_size, seed, source=None) -> str:
        n = batchnorm_adapt(model, target, device, batch_size, seed, source=source)
        return f"bn-adapt: {n} BatchNorm layers' statistics recomputed on {min(len(target), 2048)} target examples" + (
            f", onto those of {min(len(source), 2048)} training examples" if source is not None else "")


@dataclass
class TentStage(TestTimeStage):
    name = "tent/stage"
    summary = "normalisation scale and shift trained to minimise prediction entropy on the target examples"
    behaviour_version = 3  # a conv net's BatchNorm statistics first, as bn-adapt's (whose versions it follows)
    # 1e-5, not the paper's online 1e-3 (SGD) or 1e-4: at 1e-4 an offline pass collapsed digits -> mnist-5k to a few
    # classes (0.15 on the target against full's 0.32) and swung from 0.42 to 0.83 across seeds on vader-movies ->
    # vader-tweets; at 1e-3 both ended on one class; at 1e-5 it was ahead of full on digits (+0.19) and level on the
    # text pair (BENCHMARKS.md, "Domain shift")
    lr: float = option(1e-5, "Adam's rate for the normalisation layers' scale and shift", low=0.0, low_open=True)
    epochs: int = option(1, "passes over the target examples", low=1)

    def adapt(self, model, target, device, batch_size, seed, source=None) -> str:
        if any(isinstance(m, _BN) for m in model.backbone.modules()):
            batchnorm_adapt(model, target, device, batch_size, seed, source=source)
        params = [p for m in model.backbone.modules() if isinstance(m, _NORMS) for p in m.parameters(recurse=False)]
        if not params:
            raise HeadstartError(f"tent trains the normalisation layers' scale and shift, and {model.backbone.name} "
                                 "has none; use another adaptation strategy (coral, dann, iw).")
        was = {p: p.requires_grad for p in model.parameters()}
        for p in model.parameters():
            p.requires_grad_(False)
        for p in params:
            p.requires_grad_(True)
        training = model.training
        model.eval()  # no dropout; BatchNorm predicts with the target statistics just computed
        optimizer = torch.optim.Adam(params, lr=self.lr)
        rng = np.random.default_rng(seed)
        size = max(2, batch_size)
        first = last = None
        for _ in range(self.epochs):
            order = rng.permutation(len(target))
            for start in range(0, len(order), size):
                state, _ = target.batch(order[start:start + size].tolist())
                loss = _entropy(model(_to(state, device), 0))
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                last = float(loss.detach())
                first = last if first is None else first
        for p, flag in was.items():
            p.requires_grad_(flag)
        model.train(training)
        return (f"tent: {sum(p.numel() for p in params):,} normalisation parameters adapted over {len(target)} target "
                f"examples ({self.epochs} pass(es), lr {self.lr:g}); prediction entropy {first:.3f} → {last:.3f}")


TEST_TIME: dict[str, type[TestTimeStage]] = {"bn-adapt": BatchNormStage, "tent": TentStage}


def test_time_stage(method: str) -> TestTimeStage:
    """The stage ``method`` names (``predict --adapt``), or one sentence listing them."""
    if method not in TEST_TIME:
        raise HeadstartError(f"Unknown test-time adaptation {method!r}; use one of {', '.join(TEST_TIME)}.")
    return TEST_TIME[method]()


@register_strategy
@dataclass
class BatchNormAdapt(Full):
    """``full``, then BatchNorm statistics recomputed on the target examples (``--target FILE``)."""

    name = "bn-adapt"
    order = 73
    summary = "full fine-tune, then BatchNorm statistics recomputed on unlabelled target examples (AdaBN)"
    modalities = ("image",)

    def stages(self) -> list[Strategy]:
        return [*super().stages(), BatchNormStage()]


@register_strategy
@dataclass
class Tent(Full):
    """``full``, then its normalisation layers adapted by entropy minimisation on the target examples."""

    name = "tent"
    order = 74
    summary = "full fine-tune, then normalisation layers adapted to minimise prediction entropy on target examples"
    tent_lr: float = option(1e-5, "Adam's rate for the normalisation layers' scale and shift", low=0.0,
                            low_open=True)
    tent_epochs: int = option(1, "passes over the target examples", low=1)

    def stages(self) -> list[Strategy]:
        return [*super().stages(), TentStage(lr=self.tent_lr, epochs=self.tent_epochs)]
