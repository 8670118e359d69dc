"""The adapted model (backbone + linear head) and the one place parameter groups are built."""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ..backbones import Backbone, State

__all__ = ["AdaptedModel", "ParamPlan", "build_param_groups", "copy_trainable_state", "count_trainable",
           "first_trainable", "module_groups", "set_train_mode", "trainable_blocks"]


class AdaptedModel(nn.Module):
    """``head(pool(blocks[boundary:](state)))``.

    The *boundary* is headstart's one name for where a forward pass starts: blocks below it are frozen
    and their output can be cached (0: raw inputs, every block runs; ``features_start``, ``n_blocks + 1``:
    the state holds pooled features and only the head runs). ``build_param_groups`` returns the stage's,
    ``FitResult.boundary`` keeps the run's, the lab's frozen-blocks slider sets it.
    """

    def __init__(self, backbone: Backbone, n_classes: int) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = nn.Linear(backbone.feature_dim, n_classes)
        #: the heads of earlier tasks (a model fitted again on other classes keeps them); ``head`` is the active one
        self.heads = nn.ModuleDict()
        #: it has learned a task already (a later fit continues it: a closed-form head fit keeps the rows of classes
        #: its examples lack, the earlier tasks' classes)
        self.fitted = False

    def grow_head(self, n_classes: int) -> None:
        """The active head widened to ``n_classes`` outputs (class-incremental learning): the rows it has keep their
        weights, the new ones start at zero."""
        old = self.head
        if n_classes < old.out_features:
            raise ValueError(f"a head grows; {n_classes} < {old.out_features}")
        head = nn.Linear(old.in_features, n_classes).to(old.weight.device)
        with torch.no_grad():
            head.weight.zero_()
            head.bias.zero_()
            head.weight[: old.out_features] = old.weight
            head.bias[: old.out_features] = old.bias
        self.head = head

    def new_head(self, n_classes: int, keep_as: str) -> None:
        """A new active head for ``n_classes``; the current one is kept under ``heads[keep_as]``."""
        if keep_as in self.heads:
            raise ValueError(f"a head named {keep_as!r} is kept already")
        self.heads[keep_as] = self.head
        self.head = nn.Linear(self.backbone.feature_dim, n_classes).to(self.head.weight.device)

    @property
    def n_blocks(self) -> int:
        return len(self.backbone.blocks)

    @property
    def features_start(self) -> int:
        """The pseudo-boundary after pooling: cached items are ``{"features": Tensor}``."""
        return self.n_blocks + 1

    def features(self, state: State, boundary: int = 0) -> Tensor:
        if boundary == self.features_start:
            return state["features"]
        return self.backbone.pool(self.backbone.run_blocks(state, boundary))

    def forward(self, state: State, boundary: int = 0) -> Tensor:
        return self.head(self.features(state, boundary))


@dataclass(frozen=True)
class ParamPlan:
    """What a strategy declares: learning-rate scale per trainable block, which of its tensors train, and
    parameters outside the blocks (a soft prompt, by name relative to the model)."""

    block_scales: dict[int, float]
    only: str | None = None  # train only parameters whose name contains this (e.g. "lora_", a tuner's prefix)
    train_head: bool = True
    #: names (``fnmatch`` patterns, relative to the model) of parameters outside the blocks that train at ``lr``
    params: tuple[str, ...] = ()


def _no_decay(name: str, p: nn.Parameter) -> bool:
    return p.ndim <= 1 or name.endswith(".bias")  # biases, norm weights, scalars


def build_param_groups(model: AdaptedModel, plan: ParamPlan, lr: float, head_lr: float,
                       weight_decay: float) -> tuple[list[dict], int]:
    """Set ``requires_grad`` from the plan and build AdamW groups. Returns (groups, first trainable block).

    Modules outside the model that train with it (a term's own, e.g. a domain discriminator) get their groups
    from ``module_groups``, beside these. The first trainable block is where a cache of the frozen
    bottom can stop; ``features_start`` when only the head trains (a parameter outside the blocks that
    trains, such as a soft prompt before block 0, sets it to 0).
    """
    for p in model.parameters():
        p.requires_grad_(False)
    buckets: dict[tuple[str, float, bool], list[nn.Parameter]] = {}
    for i, scale in sorted(plan.block_scales.items()):
        for name, p in model.backbone.blocks[i].named_parameters():
            if plan.only is not None and plan.only not in name:
                continue
            p.requires_grad_(True)
            buckets.setdefault((f"block{i}", lr * scale, _no_decay(name, p)), []).append(p)
    if plan.train_head:
        for name, p in model.head.named_parameters():
            p.requires_grad_(True)
            buckets.setdefault(("head", head_lr, _no_decay(name, p)), []).append(p)
    for name, p in _outside(model, plan):
        p.requires_grad_(True)
        buckets.setdefault(("params", lr, _no_decay(name, p)), []).append(p)
    groups = [{"params": ps, "lr": group_lr, "weight_decay": 0.0 if no_decay else weight_decay, "name": name}
              for (name, group_lr, no_decay), ps in buckets.items()]
    return groups, first_trainable(model, plan)


def module_groups(modules: dict[str, nn.Module], lr: float, weight_decay: float) -> list[dict]:
    """AdamW groups ``term.<name>`` for modules outside the model (a term's own), all of their parameters."""
    buckets: dict[tuple[str, bool], list[nn.Parameter]] = {}
    for term, module in modules.items():
        for name, p in module.named_parameters():
            p.requires_grad_(True)
            buckets.setdefault((f"term.{term}", _no_decay(name, p)), []).append(p)
    return [{"params": ps, "lr": lr, "weight_decay": 0.0 if no_decay else weight_decay, "name": name}
            for (name, no_decay), ps in buckets.items()]


def _outside(model: AdaptedModel, plan: ParamPlan) -> list[tuple[str, nn.Parameter]]:
    """The parameters outside the blocks and the head that ``plan.params`` names."""
    return [(name, p) for name, p in model.named_parameters() if plan.params
            and not name.startswith(("backbone.blocks.", "head."))
            and any(fnmatch.fnmatchcase(name, pattern) for pattern in plan.params)]


def first_trainable(model: AdaptedModel, plan: ParamPlan) -> int:
    """The first block ``plan`` trains: where a cache of the frozen bottom stops (``features_start`` when only
    the head trains; 0 when a parameter outside the blocks trains, e.g. a soft prompt before block 0)."""
    if _outside(model, plan):
        return 0
    return min((i for i in plan.block_scales for name, _ in model.backbone.blocks[i].named_parameters()
                if plan.only is None or plan.only in name), default=model.features_start)


def trainable_blocks(model: AdaptedModel) -> list[int]:
    return [i for i, b in enumerate(model.backbone.blocks) if any(p.requires_grad for p in b.parameters())]


def set_train_mode(model: AdaptedModel, batchnorm: str = "batch") -> None:
    """Train mode, except frozen parts: blocks with nothing to train and frozen BatchNorm stay in eval; with
    ``batchnorm="frozen"`` every BatchNorm does (its statistics kept, its scale and shift still trained)."""
    model.train()
    for block in model.backbone.blocks:
        if not any(p.requires_grad for p in block.parameters()):
            block.eval()
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and (batchnorm == "frozen" or not any(
                p.requires_grad for p in m.parameters(recurse=False))):
            m.eval()


def count_trainable(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


@torch.no_grad()
def copy_trainable_state(model: AdaptedModel) -> dict[str, Tensor]:
    """Head and every block that trains, parameters and buffers (BatchNorm statistics move too), and every
    other parameter that trains (a soft prompt)."""
    keep = {f"backbone.blocks.{i}." for i in trainable_blocks(model)} | {"head."}
    training = {n for n, p in model.named_parameters() if p.requires_grad}
    return {k: v.detach().clone() for k, v in model.state_dict().items()
            if k in training or any(k.startswith(p) for p in keep)}
