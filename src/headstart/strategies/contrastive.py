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

``synthetic=n`` is SetFit's zero-shot recipe (``get_templated_dataset``): ``n`` texts per class made from its
name in ``template`` ("This sentence is {}", SetFit's default), or its ``descriptions`` in turn, join the
labelled ones, so ``contrastive`` also runs at budget 0, on those texts alone. At 1 label per class (and no
synthetic texts) no two real texts share a class: the pair stage sees only different-class pairs, pushing
the classes apart without pulling any together; synthetic texts give each class its same-class pairs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from ..declare import option
from ..errors import HeadstartError
from ..train.config import TrainConfig
from ..train.model import AdaptedModel, ParamPlan
from ..train.objective import Batch, Objective
from .base import Strategy, register_strategy
from .probe import Probe
from .zeroshot import check_templates, clean_descriptions, prompts_for

__all__ = ["Contrastive", "PairObjective", "draw_pairs", "pair_loss"]


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
SETFIT_TEMPLATE = "This sentence is {}"  # setfit.get_templated_dataset's default


def templated_examples(classes: tuple[str, ...], per_class: int, template: str = SETFIT_TEMPLATE,
                       descriptions: dict[str, tuple[str, ...]] | None = None) -> tuple[list[str], list[int]]:
    """SetFit's templated dataset: ``per_class`` texts per class, its descriptions in turn when it has any, else
    ``template`` around its name; with their labels (indices into ``classes``). Codes for names are refused."""
    prompts = prompts_for(classes, (template,), descriptions, owner="contrastive's synthetic option")
    texts, labels = [], []
    for k, own in enumerate(prompts):
        texts += [own[i % len(own)] for i in range(per_class)]
        labels += [k] * per_class
    return texts, labels


def pair_loss(feats: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Cosine-similarity MSE over every pair in the batch; same- and different-class halves weigh equally."""
    unit = nn.functional.normalize(feats, dim=-1)
    cos = unit @ unit.T
    upper = torch.ones_like(cos, dtype=torch.bool).triu(1)
    same = labels[:, None] == labels[None, :]
    parts = [((cos[mask] - target) ** 2).mean() for mask, target in ((same & upper, 1.0), (~same & upper, 0.0))
             if mask.any()]
    return torch.stack(parts).mean()


class PairObjective(Objective):
    """The pair loss over the loop's batches: every pair within a step (in-batch), or SetFit's sampled pairs."""

    validates = False  # it trains on the validation labels too: nothing is held out to early-stop on

    def __init__(self, sampling: str, iterations: int, seed: int) -> None:
        self.sampling, self.iterations, self.seed = sampling, iterations, seed
        self.pairs: np.ndarray | None = None

    def prepare(self, model: AdaptedModel, train, boundary: int, device: torch.device) -> None:
        if self.sampling == "pairs":
            self.pairs = np.array(draw_pairs(train.labels, self.iterations, self.seed)).reshape(-1, 3).astype(int)

    def steps(self, n: int, batch_size: int, generator: torch.Generator) -> list[list[int]]:
        if self.pairs is not None:  # a step is ``batch_size`` pairs: its left halves, then its right halves
            order = torch.randperm(len(self.pairs), generator=generator).numpy()
            chunks = np.array_split(self.pairs[order], self.steps_per_epoch(n, batch_size))
            return [[*c[:, 0].tolist(), *c[:, 1].tolist()] for c in chunks]
        order = torch.randperm(n, generator=generator)
        return [c.tolist() for c in order.split(2 * batch_size) if len(c) > 1]

    def steps_per_epoch(self, n: int, batch_size: int) -> int:
        if self.pairs is not None:
            return max(1, -(-len(self.pairs) // batch_size))
        return n // (2 * batch_size) + (n % (2 * batch_size) > 1)

    def loss(self, model: AdaptedModel, batch: Batch, boundary: int) -> torch.Tensor:
        feats = model.features(batch.state, boundary).float()
        if self.pairs is None:
            return pair_loss(feats, batch.labels)
        half = len(batch.index) // 2  # row k of the left half pairs with row k of the right half
        target = (batch.labels[:half] == batch.labels[half:]).to(feats.dtype)
        return nn.functional.mse_loss(nn.functional.cosine_similarity(feats[:half], feats[half:]), target)

    def describe(self) -> str:
        return ("cosine-similarity MSE over SetFit's sampled pairs" if self.pairs is not None
                else "cosine-similarity MSE over every pair within a step")


@dataclass
class _PairStage(Strategy):
    name = "contrastive/pairs"
    default_lr = 5e-5
    trains_on_validation = True
    sampling: str = option("in-batch", "'in-batch' (every pair in a batch) or 'pairs' (SetFit's sampled pairs)",
                           choices=SAMPLINGS)
    iterations: int = option(20, "with sampling='pairs': at most this many pairs per text and side", low=1)

    @property
    def default_epochs(self) -> int:  # type: ignore[override]
        return 1 if self.sampling == "pairs" else 40  # one pass over the sampled pairs, as SetFit

    def lr_for(self, backbone) -> float:
        return SETFIT_LR if self.sampling == "pairs" else self.default_lr

    def plan(self, n_blocks: int) -> ParamPlan:
        return ParamPlan({i: 1.0 for i in range(n_blocks)}, train_head=False)

    def objective(self, model: AdaptedModel, cfg: TrainConfig) -> Objective:
        return PairObjective(self.sampling, self.iterations, cfg.seed)


@register_strategy
@dataclass
class Contrastive(Strategy):
    name = "contrastive"
    trains = "body"  # the pair stage trains the body; its last stage (the probe) the head
    order = 70
    summary = "SetFit's recipe: the body learns from same/different-class pairs, then the closed-form probe"
    shorthand = "sampling"
    default_lr = _PairStage.default_lr
    default_epochs = 40
    sampling: str = option("in-batch", "'in-batch' (every pair in a batch) or 'pairs' (SetFit's sampled pairs)",
                           choices=SAMPLINGS)
    iterations: int = option(20, "with sampling='pairs': at most this many pairs per text and side", low=1)
    synthetic: int = option(0, "texts per class made from its name (SetFit's zero-shot recipe), added to the "
                            "labelled ones; with them it runs at budget 0", low=0, neutral=0)
    template: str = option(SETFIT_TEMPLATE, "with synthetic: the text made from a class name ({} is the name)",
                           neutral=SETFIT_TEMPLATE)
    descriptions: dict[str, tuple[str, ...]] | None = option(
        None, "with synthetic: per class name, texts that describe it, made in turn instead of the template "
        "(--class-descriptions FILE)", neutral=None)

    def __post_init__(self) -> None:
        super().__post_init__()
        (self.template,) = check_templates((self.template,), self.name)
        self.descriptions = clean_descriptions(self.descriptions, self.name)
        if not self.synthetic and self.descriptions:
            raise HeadstartError("contrastive's descriptions are the texts its synthetic option makes; set "
                                 "synthetic (e.g. synthetic=8) to use them, or leave them out.")

    @property
    def uses_descriptions(self) -> bool:
        return self.synthetic > 0

    @property
    def makes_examples(self) -> bool:  # type: ignore[override]
        return self.synthetic > 0

    def made_examples(self, classes: tuple[str, ...], modality: str) -> tuple[list[Any], list[int]]:
        if not self.synthetic:
            return [], []
        if modality != "text":
            raise HeadstartError(f"contrastive's synthetic option makes texts from the class names, and these are "
                                 f"{modality} examples; leave synthetic at 0.")
        return templated_examples(classes, self.synthetic, self.template, self.descriptions)

    def stages(self) -> list[Strategy]:
        return [_PairStage(sampling=self.sampling, iterations=self.iterations), Probe()]

    def plan(self, n_blocks: int) -> ParamPlan:  # what trains over the whole run: the body, then the head
        return ParamPlan({i: 1.0 for i in range(n_blocks)})
