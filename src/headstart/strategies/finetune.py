"""End-to-end fine-tunes that differ in which blocks train and at what rate: partial, full, lldr (lora: lora.py).

Every one starts its head from the closed-form probe fitted on the training labels only (C by
cross-validation within them), the LP-FT idea (Kumar et al., 2022) applied to every fine-tune: a
random head on a pretrained body sends large, uninformative gradients into the body for the first
steps, and with a few dozen labels there are only a few dozen steps. The probe's solution is
epoch 0 of the fine-tune; under early stopping (``monitor="val_acc"``) it is a candidate, so such a
fine-tune never ends worse on validation than the probe it started from. The validation labels never
train. ``head_init="random"`` gives the classic recipe (a new head at its own, higher rate).

``lp-ft`` is therefore ``full`` (an alias, kept so that existing scripts and races keep working).

Which weights are kept: every fine-tune trains its planned schedule and keeps the last weights
(``monitor="none"``), as the usual transformers recipe does. At their rates (5e-5..1e-4 for the body,
5e-4 for LoRA's adapters) they do not drift over a few hundred steps, while the "best" epoch on a
validation split of 4 to 64 examples per class is mostly the noise of that split: restoring it cost
``full`` 5 points of selection accuracy at 128 labels per class on rotten-tomatoes and never helped
(BENCHMARKS.md, "Early stopping on a small validation split"). ``monitor="val_acc"`` brings early
stopping back; validation is measured either way.
"""

from __future__ import annotations

from dataclasses import dataclass, make_dataclass

from ..declare import check_declared, option
from ..errors import HeadstartError
from ..terms import Term, create_term, list_terms
from ..train.model import ParamPlan
from .base import Strategy, register_alias, register_strategy
from .probe import Probe

HEAD_INITS = ("probe", "random")
RANDOM_HEAD_LR = 1e-3  # a new random head learns faster than the pretrained body it sits on


@dataclass
class FineTune(Strategy):
    """Base of the fine-tunes: the probe's head first (``head_init="probe"``), then the loop."""

    default_min_steps = 100
    default_monitor = "none"
    head_init: str = option("probe", "'probe' (start from the closed-form probe fitted on the training labels) or "
                            "'random' (a new head)", choices=HEAD_INITS)
    guard: str | None = option(None, "a guard against forgetting added to the loss (`headstart options` lists them)",
                               choices=lambda: list_terms("guard"), neutral=None)
    guard_weight: float | None = option(None, "the guard's weight (None: its measured default)", example=0.01, low=0.0,
                                        low_open=True, neutral=None)
    adapt: str | None = option(None, "a domain-adaptation term on unlabelled target examples (--target FILE)",
                               choices=lambda: list_terms("adaptation"), neutral=None)
    adapt_weight: float | None = option(None, "the adaptation term's weight (None: its measured default)",
                                        example=1.0, low=0.0, low_open=True, neutral=None)

    def __post_init__(self) -> None:
        check_declared(self, self.name)
        for term, weight in (("guard", "guard_weight"), ("adapt", "adapt_weight")):
            if getattr(self, weight) is not None and getattr(self, term) is None:
                raise HeadstartError(f"{self.name}: {weight} is set but {term} is not; set {term}=NAME "
                                     f"({', '.join(list_terms('guard' if term == 'guard' else 'adaptation'))}).")

    def terms(self) -> list[Term]:
        """The guard and the adaptation term this fine-tune was given, each at its weight."""
        return [create_term(name, weight=weight) for name, weight in ((self.guard, self.guard_weight),
                                                                        (self.adapt, self.adapt_weight)) if name]

    @property
    def starts_fitted(self) -> bool:  # type: ignore[override]
        return self.head_init == "probe"

    @property
    def default_head_lr(self) -> float | None:  # type: ignore[override]
        return None if self.head_init == "probe" else RANDOM_HEAD_LR  # a fitted head moves with the body

    def stages(self) -> list[Strategy]:
        return [Probe(selection="train"), self] if self.head_init == "probe" else [self]


@register_strategy
@dataclass
class Partial(FineTune):
    """Only the top ``k`` blocks and the head train; the frozen bottom is cached when not augmenting."""

    name = "partial"
    trains = "top-k"
    order = 30
    summary = "top-k blocks and the head train; the frozen bottom runs once"
    shorthand = "k"
    default_lr = 1e-4
    k: int = option(2, "how many of the top blocks train", low=1)

    def plan(self, n_blocks: int) -> ParamPlan:
        if self.k > n_blocks:
            raise HeadstartError(f"partial:{self.k} asks for more blocks than the backbone has ({n_blocks}); "
                                 f"use k <= {n_blocks}, or 'full'.")
        return ParamPlan({i: 1.0 for i in range(n_blocks - self.k, n_blocks)})


@register_strategy
@dataclass
class Full(FineTune):
    """Everything trains at a small learning rate after a warm-up, from the probe's head."""

    name = "full"
    order = 40
    summary = "every block trains at a small LR with warm-up, from the probe's head (LP-FT)"
    default_lr = 5e-5

    def plan(self, n_blocks: int) -> ParamPlan:
        return ParamPlan({i: 1.0 for i in range(n_blocks)})


@register_strategy
@dataclass
class LLDR(FineTune):
    """Layer-wise LR decay: the top block (and the head) at ``lr``, the block below at ``lr·decay``..."""

    name = "lldr"
    order = 50
    summary = "layer-wise (discriminative) LR decay from the top block down"
    default_lr = 1e-4
    # 0.9, not ELECTRA-Base's 0.8 (12 layers): on MiniLM's six layers and embeddings 0.8 leaves the bottom block at a
    # quarter of the top rate, and on vader-tweets at 128 labels per class that held lldr level with the probe;
    # 0.9 is level with 0.8 in every other cell measured (BENCHMARKS.md, "Other settings of the fine-tunes")
    decay: float = option(0.9, "each block's rate is the one above times this", low=0.0, low_open=True, high=1.0)

    def plan(self, n_blocks: int) -> ParamPlan:
        return ParamPlan({i: self.decay ** (n_blocks - 1 - i) for i in range(n_blocks)})


register_alias("lp-ft", "full", "every fine-tune starts from the probe's head (LP-FT), so lp-ft is full")


def adaptation_strategy(term: str, *, order: int, summary: str) -> type[Full]:
    """Register the strategy ``term``: ``full`` plus the domain-adaptation term of that name on unlabelled target
    examples (``--target FILE``), so its source-only baseline is ``full`` on the same draws (``terms/coral.py``,
    ``dann.py``, ``importance.py`` each register theirs beside the term)."""
    help_text = f"the domain-adaptation term ({term}; another one: any fine-tune's adapt=)"
    cls = make_dataclass(
        f"{term.title()}FineTune",
        [("adapt", str | None, option(term, help_text, choices=lambda: list_terms("adaptation"), neutral=None))],
        bases=(Full,),
        namespace={"name": term, "order": order, "summary": summary,
                   "__doc__": f"``full`` plus the {term} term on unlabelled target examples (``--target FILE``)."})
    cls.__module__ = __name__
    return register_strategy(cls)
