"""``contrastive``: SetFit's recipe on headstart's backbone: the body learns from pairs, then the probe.

Stage 1 draws, for every labelled example and each of ``iterations`` rounds, one partner of the same
class (target cosine 1) and one of another class (target 0), and fine-tunes every block so that the
cosine of the pooled features matches the target (sentence-transformers' CosineSimilarityLoss).
96 labelled texts become thousands of pairs: far more signal than the labels alone give a new head.
Stage 2 is the closed-form probe on the tuned features (Tunstall et al., 2022, "SetFit").
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ..data import Task
from ..errors import HeadstartError
from ..train.config import TrainConfig
from ..train.loop import optimizer_step, warmup_cosine
from ..train.model import AdaptedModel, ParamPlan, build_param_groups, set_train_mode
from .base import Strategy, register_strategy
from .probe import Probe

__all__ = ["Contrastive", "draw_pairs"]

log = logging.getLogger(__name__)


def draw_pairs(labels: np.ndarray, iterations: int, seed: int) -> list[tuple[int, int, float]]:
    """Per round and example: one same-class partner (1.0) and one other-class partner (0.0), shuffled."""
    rng = np.random.default_rng(seed)
    by_class = {c: np.flatnonzero(labels == c) for c in np.unique(labels)}
    pairs: list[tuple[int, int, float]] = []
    for _ in range(iterations):
        for i, c in enumerate(labels):
            same = by_class[c][by_class[c] != i]
            if len(same):
                pairs.append((i, int(rng.choice(same)), 1.0))
            pairs.append((i, int(rng.choice(np.flatnonzero(labels != c))), 0.0))
    order = rng.permutation(len(pairs))
    return [pairs[k] for k in order]


@dataclass
class _PairStage(Strategy):
    name = "contrastive/pairs"
    default_lr = 2e-5  # SetFit's body learning rate
    iterations: int = 20

    def plan(self, n_blocks: int) -> ParamPlan:
        return ParamPlan({i: 1.0 for i in range(n_blocks)}, train_head=False)

    def train_body(self, model: AdaptedModel, train: Task, cfg: TrainConfig) -> str:
        """One pass over the pairs; returns a note for the run's record."""
        device = next(model.parameters()).device
        lr = cfg.lr or self.default_lr
        groups, _ = build_param_groups(model, self.plan(model.n_blocks), lr, lr, cfg.weight_decay)
        pairs = draw_pairs(train.labels, self.iterations, cfg.seed)
        steps = math.ceil(len(pairs) / cfg.batch_size)
        optimizer = torch.optim.AdamW(groups, lr=lr, weight_decay=cfg.weight_decay)
        schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, warmup_cosine(steps, cfg.warmup))
        params = [p for g in groups for p in g["params"]]
        backbone = model.backbone
        set_train_mode(model)
        tic, total = time.perf_counter(), 0.0
        for s in range(0, len(pairs), cfg.batch_size):
            chunk = pairs[s : s + cfg.batch_size]
            texts = [train.inputs[a] for a, _, _ in chunk] + [train.inputs[b] for _, b, _ in chunk]
            state = {k: v.to(device) for k, v in backbone.preprocess(texts).items()}
            feats = backbone.forward_features(state)
            left, right = feats[: len(chunk)], feats[len(chunk):]
            target = torch.tensor([t for _, _, t in chunk], device=device, dtype=feats.dtype)
            loss = nn.functional.mse_loss(nn.functional.cosine_similarity(left, right), target)
            if not torch.isfinite(loss):
                raise HeadstartError("contrastive: the pair loss became non-finite; lower the learning rate (lr=...).")
            optimizer_step(loss, optimizer, schedule, params, cfg.grad_clip)
            total += loss.item() * len(chunk)
        model.eval()
        return (f"{self.spec}: {len(pairs):,} pairs from {len(train)} examples ({self.iterations} rounds), "
                f"mean cosine loss {total / len(pairs):.4f}, {time.perf_counter() - tic:.0f}s")


@register_strategy
@dataclass
class Contrastive(Strategy):
    name = "contrastive"
    summary = "SetFit's recipe: the body learns from same/different-class pairs, then the closed-form probe"
    default_lr = _PairStage.default_lr
    iterations: int = 20

    def __post_init__(self) -> None:
        if self.iterations < 1:
            raise HeadstartError(
                f"The 'iterations' parameter of contrastive must be a positive integer. Got {self.iterations!r} "
                "instead.")

    def stages(self) -> list[Strategy]:
        return [_PairStage(iterations=self.iterations), Probe()]

    def plan(self, n_blocks: int) -> ParamPlan:  # what trains over the whole run: the body, then the head
        return ParamPlan({i: 1.0 for i in range(n_blocks)})
