"""The term base class and registry.

A term is a small dataclass (its options declared with ``declare.option``) that adds ``weight · value``
to the loss of every step of a stage. Its hooks, each with a default:

- ``prepare(ctx)``: once before the first step (snapshot θpre, estimate a Fisher, a teacher's outputs);
- ``modules()``: modules of its own whose parameters join the optimiser as the group ``term.<name>``
  (a domain discriminator), built in ``prepare``;
- ``value(model, batch, ctx)``: the term's value on one step (the batch's features are computed once
  per step and shared with the data term: ``batch.features(model, ctx.boundary)``); draws from an extra
  source of the fit context through ``ctx.draw(self.source, n)``;
- class declarations: ``kind`` (``guard``: any strategy that moves the body takes it as
  ``guard=NAME``; ``adaptation``: a strategy ``NAME`` is its body recipe plus the term), ``source``
  (the extra source it needs, e.g. ``target``), ``default_weight``, ``behaviour_version``,
  ``modules_lr`` (the rate its modules train at; None: a new head's, ``RANDOM_HEAD_LR``, whatever the
  stage's rates: a discriminator born with the stage must learn faster than the fitted body it judges).

The loop records every term's mean weighted value per epoch (``EpochRecord.terms``), beside the data term.
"""

from __future__ import annotations

import importlib
import pkgutil
from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any, ClassVar

from torch import Tensor, nn

from ..declare import check_declared, identity_options, option
from ..errors import HeadstartError

if TYPE_CHECKING:
    from ..train.context import FitContext
    from ..train.model import AdaptedModel
    from ..train.objective import Batch

__all__ = ["TERMS", "Term", "create_term", "list_terms", "predicting_batchnorm", "register_term", "target_features"]

TERMS: dict[str, type[Term]] = {}
KINDS = ("guard", "adaptation")


def register_term(cls: type[Term]) -> type[Term]:
    if cls.name in TERMS:
        raise HeadstartError(f"A term named {cls.name!r} is already registered.")
    if cls.kind not in KINDS:
        raise HeadstartError(f"Term {cls.name!r} declares kind {cls.kind!r}; use one of {', '.join(KINDS)}.")
    TERMS[cls.name] = cls
    return cls


def list_terms(kind: str | None = None) -> list[str]:
    _ensure_builtin()
    return sorted(n for n, cls in TERMS.items() if kind is None or cls.kind == kind)


def create_term(name: str, **options: Any) -> Term:
    _ensure_builtin()
    cls = TERMS.get(name)
    if cls is None:
        raise HeadstartError(f"Unknown term {name!r}. Valid terms: {', '.join(list_terms()) or 'none'}.")
    allowed = {f.name for f in fields(cls)}
    unknown = sorted(set(options) - allowed)
    if unknown:
        raise HeadstartError(f"Term {name!r} has no option {unknown[0]!r}. Its options: {', '.join(sorted(allowed))}.")
    return cls(**options)


@dataclass
class Term(ABC):
    name: ClassVar[str] = ""
    kind: ClassVar[str] = "guard"
    summary: ClassVar[str] = ""
    default_weight: ClassVar[float] = 1.0
    source: ClassVar[str | None] = None
    behaviour_version: ClassVar[int] = 1
    modules_lr: ClassVar[float | None] = None
    weight: float | None = option(None, "multiplies the term's value (None: the term's measured default)",
                                  example=0.01, low=0.0, low_open=True, neutral=None)

    def __post_init__(self) -> None:
        check_declared(self, self.name)

    @property
    def resolved_weight(self) -> float:
        return self.default_weight if self.weight is None else float(self.weight)

    def prepare(self, ctx: FitContext) -> str | None:
        """Once, before the first step of the stage. May return one sentence on what it found (e.g. how spread its
        weights are; the sentence names what it describes), which joins the run's notes (``FitResult.notes``, the
        race's record and report)."""
        return None

    def modules(self) -> dict[str, nn.Module]:
        """Modules of the term's own whose parameters train with the stage (default: none)."""
        return {}

    @abstractmethod
    def value(self, model: AdaptedModel, batch: Batch, ctx: FitContext) -> Tensor:
        """The term's (unweighted) value on one step."""

    def identity(self) -> dict[str, Any]:
        return {"term": self.name, "options": identity_options(self),
                **({"version": self.behaviour_version} if self.behaviour_version != 1 else {})}

    def describe(self) -> str:
        return f"{self.name} × {self.resolved_weight:g}"


def _ensure_builtin() -> None:
    package = importlib.import_module(__package__)
    for info in pkgutil.iter_modules(package.__path__):
        importlib.import_module(f"{__package__}.{info.name}")


@contextmanager
def predicting_batchnorm(model: nn.Module) -> Iterator[None]:
    """Within: every BatchNorm layer that trains normalises with the statistics the model predicts with (its running
    ones, not the batch's) and leaves them as they are. An unlabelled target batch run through a training model on
    its own would otherwise be normalised by its own statistics, and move the running ones towards them, so that at
    prediction the target's features are not the ones the term aligned."""
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.training]
    for m in norms:
        m.eval()
    try:
        yield
    finally:
        for m in norms:
            m.train()


def target_features(model: AdaptedModel, ctx: FitContext, n: int) -> Tensor:
    """The pooled features of the next ``n`` target examples (the fit context's ``target`` source), as the model will
    compute them when it predicts (``predicting_batchnorm``); gradients flow through them."""
    state = ctx.draw("target", n)
    with predicting_batchnorm(model):
        return model.features(state, ctx.boundary).float()

