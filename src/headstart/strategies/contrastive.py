"""``contrastive``: SetFit's recipe on headstart's backbone: the body learns from pairs, then the probe.

Stage 1 fine-tunes every block so that the cosine of two texts' pooled features is 1 for texts of
the same class and 0 for texts of different classes (sentence-transformers' CosineSimilarityLoss,
the loss SetFit uses). It trains on the training *and* validation texts: it has nothing to
early-stop, and 96 labelled texts make thousands of pairs, far more signal than 96 labels give a
new head. Stage 2 is the closed-form probe on the tuned features (Tunstall et al., 2022, "SetFit").
The probe's validation estimate is therefore optimistic; the test set is untouched.

Two ways to make the pairs, same loss:

- ``sampling="in-batch"`` (default): each step encodes ``2 * batch_size`` texts and scores *every*
  pair among them (same-class and different-class pairs weighted equally), for ``epochs`` passes
  (the training option; 40 unless set: each text is encoded half as often as in SetFit's run, but
  each encoding serves 31 pairs instead of one). It matched SetFit-style sampling at half the
  wall-clock, and 80 epochs were no better (BENCHMARKS.md, peers notes).
- ``sampling="pairs"``: SetFit's own ("oversampling"): distinct pairs, as many same-class as
  different-class ones, at most ``iterations`` of each per text, ``batch_size`` pairs per step,
  SetFit's learning rate 2e-5 (in-batch: 5e-5, for its fewer steps).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from ..data import Task
from ..errors import HeadstartError
from ..train.config import TrainConfig
from ..train.loop import optimizer_step, warmup_cosine
from ..train.model import AdaptedModel, ParamPlan, build_param_groups, set_train_mode
from ..train.precision import autocast
from .base import Strategy, register_strategy
from .probe import Probe

__all__ = ["Contrastive", "draw_pairs", "pair_loss"]


def draw_pairs(labels: np.ndarray, iterations: int, seed: int) -> list[tuple[int, int, float]]:
    """Distinct pairs ``(i, j, target)``, half same-class (1.0), half different-class (0.0), shuffled.

    Each side holds ``min(max(#same, #different), iterations * len(labels))`` pairs: every distinct
    pair of the larger side once (up to the cap), the smaller side cycled in a fresh order to match.
    A side with no pairs at all (every class a singleton, or a single class) is left out.
    """
    rng = np.random.default_rng(seed)
    i, j = np.triu_indices(len(labels), k=1)
    same = labels[i] == labels[j]
    sides = [np.stack([i[same], j[same]], 1), np.stack([i[~same], j[~same]], 1)]
    per_side = min(max(len(s) for s in sides), iterations * len(labels))
    pairs: list[tuple[int, int, float]] = []
    for side, target in zip(sides, (1.0, 0.0)):
        if not len(side):
            continue
        rounds = -(-per_side // len(side))
        order = np.concatenate([rng.permutation(len(side)) for _ in range(rounds)])[:per_side]
        pairs += [(int(a), int(b), target) for a, b in side[order]]
    return [pairs[k] for k in rng.permutation(len(pairs))]


SAMPLINGS = ("in-batch", "pairs")
SETFIT_LR = 2e-5  # SetFit's body learning rate, for its own sampling


def pair_loss(feats: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Cosine-similarity MSE over every pair in the batch; same- and different-class halves weigh equally."""
    unit = nn.functional.normalize(feats, dim=-1)
    cos = unit @ unit.T
    upper = torch.ones_like(cos, dtype=torch.bool).triu(1)
    same = labels[:, None] == labels[None, :]
    parts = [((cos[mask] - target) ** 2).mean() for mask, target in ((same & upper, 1.0), (~same & upper, 0.0))
             if mask.any()]
    return torch.stack(parts).mean()


@dataclass
class _PairStage(Strategy):
    name = "contrastive/pairs"
    default_lr = 5e-5
    default_epochs = 40
    sampling: str = field(default="in-batch", metadata={"help": "'in-batch' (every pair in a batch) or 'pairs' "
                                                                "(SetFit's sampled pairs)"})
    iterations: int = field(default=20, metadata={"help": "with sampling='pairs': at most this many pairs per text "
                                                          "and side"})

    def plan(self, n_blocks: int) -> ParamPlan:
        return ParamPlan({i: 1.0 for i in range(n_blocks)}, train_head=False)

    def _batches(self, labels: np.ndarray, cfg: TrainConfig) -> tuple[list[tuple[np.ndarray, np.ndarray]], str]:
        """(left, right) index arrays per step: in-batch steps have right empty (every pair of left)."""
        if self.sampling == "pairs":
            pairs = np.array(draw_pairs(labels, self.iterations, cfg.seed)).reshape(-1, 3).astype(int)
            steps = [(c[:, 0], c[:, 1]) for c in np.array_split(pairs, max(1, -(-len(pairs) // cfg.batch_size)))]
            return steps, f"{len(pairs):,} sampled pairs, {cfg.batch_size} per step"
        rng, size, epochs = np.random.default_rng(cfg.seed), 2 * cfg.batch_size, cfg.epochs or self.default_epochs
        steps = []
        for _ in range(epochs):
            order = rng.permutation(len(labels))
            steps += [(order[s : s + size], order[:0]) for s in range(0, len(order), size) if len(order[s:]) > 1]
        return steps, f"every pair within {size} texts per step, {epochs} epochs"

    def train_body(self, model: AdaptedModel, train: Task, val: Task, cfg: TrainConfig) -> str:
        """Tune the body on pairs of the training and validation texts; returns a note for the run's record."""
        inputs = list(train.inputs) + list(val.inputs)
        labels = np.concatenate([train.labels, val.labels])
        device = next(model.parameters()).device
        lr = cfg.lr or (SETFIT_LR if self.sampling == "pairs" else self.default_lr)
        groups, _ = build_param_groups(model, self.plan(model.n_blocks), lr, lr, cfg.weight_decay)
        steps, how = self._batches(labels, cfg)
        optimizer = torch.optim.AdamW(groups, lr=lr, weight_decay=cfg.weight_decay)
        schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, warmup_cosine(len(steps), cfg.warmup))
        params = [p for g in groups for p in g["params"]]
        backbone, y = model.backbone, torch.as_tensor(labels, device=device)
        dtype = cfg.resolve_precision(device)
        set_train_mode(model)
        tic, total = time.perf_counter(), 0.0
        for left, right in steps:
            state = {k: v.to(device) for k, v in backbone.preprocess([inputs[i] for i in (*left, *right)]).items()}
            with autocast(dtype, device):
                feats = backbone.forward_features(state)
            feats = feats.float()
            if len(right):  # sampled pairs: row k of the left half pairs with row k of the right half
                target = (y[left] == y[right]).to(feats.dtype)
                cos = nn.functional.cosine_similarity(feats[: len(left)], feats[len(left):])
                loss = nn.functional.mse_loss(cos, target)
            else:
                loss = pair_loss(feats, y[left])
            if not torch.isfinite(loss):
                raise HeadstartError("contrastive: the pair loss became non-finite; lower the learning rate (lr=...).")
            optimizer_step(loss, optimizer, schedule, params, cfg.grad_clip)
            total += loss.item()
        model.eval()
        return (f"{self.spec}: {how} ({len(steps)} steps) over {len(inputs)} training + validation examples, "
                f"mean pair loss {total / max(1, len(steps)):.4f}, {time.perf_counter() - tic:.0f}s")


@register_strategy
@dataclass
class Contrastive(Strategy):
    name = "contrastive"
    summary = "SetFit's recipe: the body learns from same/different-class pairs, then the closed-form probe"
    shorthand = "sampling"
    default_lr = _PairStage.default_lr
    default_epochs = _PairStage.default_epochs
    sampling: str = field(default="in-batch", metadata={"help": "'in-batch' (every pair in a batch) or 'pairs' "
                                                                "(SetFit's sampled pairs)"})
    iterations: int = field(default=20, metadata={"help": "with sampling='pairs': at most this many pairs per text "
                                                          "and side"})

    def __post_init__(self) -> None:
        if self.sampling not in SAMPLINGS:
            raise HeadstartError(f"contrastive's sampling must be one of {', '.join(SAMPLINGS)}. "
                                 f"Got {self.sampling!r}.")
        if self.iterations < 1:
            raise HeadstartError(f"The 'iterations' parameter of contrastive must be a positive integer. "
                                 f"Got {self.iterations!r} instead.")

    def stages(self) -> list[Strategy]:
        return [_PairStage(sampling=self.sampling, iterations=self.iterations), Probe()]

    def plan(self, n_blocks: int) -> ParamPlan:  # what trains over the whole run: the body, then the head
        return ParamPlan({i: 1.0 for i in range(n_blocks)})
