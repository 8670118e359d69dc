"""The strategy base class and registry.

A strategy is a small dataclass (its options, validated in ``__post_init__``) that *declares* how to
adapt a backbone; the runner and the loop do the work. Override points:

- ``plan(n_blocks) -> ParamPlan``: which blocks train, at what learning-rate scale, which tensors;
- ``configure(model)``: structural changes before training (LoRA injects its adapters here);
- ``stages()``: several strategies in sequence (LP-FT is a probe, then a full fine-tune);
- ``closed_form``/``solve(...)``: fit the head without the loop (the L-BFGS probe);
- class defaults: ``pretrained`` (False for a from-scratch baseline), ``default_lr``,
  ``default_head_lr`` (None: the head uses ``lr``), ``default_epochs``, ``starts_fitted`` (True when
  the stage starts from a fitted model, so its starting weights are an early-stopping candidate);
- ``save_filter``: which trained tensors a saved model keeps (LoRA keeps only its adapters).

Register a new strategy with ``@register_strategy`` on the class; it is then reachable by name
everywhere (``Adapter``, CLI, the race) and covered by the tests parametrised over the registry.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, fields
from typing import Any, ClassVar

from ..errors import HeadstartError
from ..train.model import AdaptedModel, ParamPlan

__all__ = ["STRATEGIES", "Strategy", "create_strategy", "list_strategies", "register_strategy"]

STRATEGIES: dict[str, type[Strategy]] = {}


def register_strategy(cls: type[Strategy]) -> type[Strategy]:
    if cls.name in STRATEGIES:
        raise HeadstartError(f"A strategy named {cls.name!r} is already registered.")
    STRATEGIES[cls.name] = cls
    return cls


def list_strategies() -> list[str]:
    _ensure_builtin()
    return list(STRATEGIES)


@dataclass
class Strategy(ABC):
    name: ClassVar[str] = ""
    summary: ClassVar[str] = ""
    #: the field that "name:value" sets, e.g. ``partial:2`` sets ``k``
    shorthand: ClassVar[str | None] = None
    pretrained: ClassVar[bool] = True
    default_lr: ClassVar[float] = 1e-4
    default_head_lr: ClassVar[float | None] = 1e-3
    default_epochs: ClassVar[int] = 20
    closed_form: ClassVar[bool] = False
    starts_fitted: ClassVar[bool] = False

    @abstractmethod
    def plan(self, n_blocks: int) -> ParamPlan:
        """Which blocks train and at what learning-rate scale (relative to ``lr``)."""

    def configure(self, model: AdaptedModel) -> None:  # noqa: B027 (an optional hook, empty by default)
        """Structural changes to the model before any training (default: none)."""

    def stages(self) -> list[Strategy]:
        return [self]

    def lr_for(self, backbone: Any) -> float:
        """The default learning rate on this backbone (``default_lr`` unless a strategy knows better)."""
        return self.default_lr

    def save_filter(self, key: str) -> bool:
        """Whether a tensor of a trained block is part of a saved model (default: all of them)."""
        return True

    @property
    def spec(self) -> str:
        """Its name as the user wrote it, e.g. ``partial:2``."""
        return f"{self.name}:{getattr(self, self.shorthand)}" if self.shorthand else self.name

    def options(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def from_scratch(self) -> bool:
        """A from-scratch baseline: it inherits nothing from pretraining."""
        return not self.pretrained

    def resolved(self) -> list[dict[str, Any]]:
        """Every stage with its options and class defaults: what a run's identity must cover."""
        return [{"stage": s.spec, "class": f"{type(s).__module__}.{type(s).__qualname__}", "options": s.options(),
                 "pretrained": s.pretrained, "default_lr": s.default_lr, "default_head_lr": s.default_head_lr,
                 "default_epochs": s.default_epochs, "closed_form": s.closed_form, "starts_fitted": s.starts_fitted}
                for s in self.stages()]

    def describe(self) -> str:
        opts = ", ".join(f"{k}={v}" for k, v in self.options().items())
        return f"{self.spec} ({opts})" if opts else self.spec


def create_strategy(spec: str | Strategy, **options: Any) -> Strategy:
    """``"probe"``, ``"partial:2"``, ``"lora"``... plus options (``rank=4``). Unknown names list the valid ones."""
    if isinstance(spec, Strategy):
        return spec
    _ensure_builtin()
    name, _, arg = spec.partition(":")
    cls = STRATEGIES.get(name)
    if cls is None:
        valid = ", ".join(n + (f":{c.shorthand.upper()}" if c.shorthand else "") for n, c in STRATEGIES.items())
        raise HeadstartError(f"Unknown strategy {spec!r}. Valid strategies: {valid}.")
    allowed = {f.name: f for f in fields(cls)}
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise HeadstartError(
            f"Strategy {name!r} has no option {unknown[0]!r}. Its options: {', '.join(allowed) or 'none'}; "
            "training options: see TrainConfig."
        )
    if arg:
        if cls.shorthand is None:
            raise HeadstartError(f"Strategy {name!r} takes no ':' argument; write just {name!r}.")
        try:  # convert with the type of the field's default (int for partial's k, ...)
            options[cls.shorthand] = type(allowed[cls.shorthand].default)(arg)
        except ValueError:
            raise HeadstartError(f"In {spec!r}, {arg!r} is not a valid {cls.shorthand}.") from None
    return cls(**options)


def _ensure_builtin() -> None:
    import importlib

    for module in ("scratch", "probe", "finetune", "lora", "lpft", "contrastive"):
        importlib.import_module(f"{__package__}.{module}")
