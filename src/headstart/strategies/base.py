"""The strategy base class and registry.

A strategy is a small dataclass (its options, validated in ``__post_init__``) that *declares* how to
adapt a backbone; the runner and the loop do the work. Every hook is declared here, with its default:

- ``plan(n_blocks) -> ParamPlan``: which blocks train, at what learning-rate scale, which tensors;
- ``configure(model)``: structural changes before training (LoRA injects its adapters here);
- ``stages()``: several strategies in sequence (a fine-tune is the probe, then the fine-tune);
- ``objective(model, cfg)``: what the loop minimises and over which batches (``train/objective.py``:
  cross-entropy by default; contrastive pairs; penalties on the weights, a teacher's outputs or a
  second batch stream plug in the same way);
- ``trains_on_validation``: the stage trains on training + validation examples and does not
  validate (contrastive pairs: nothing is held out, nothing early-stops);
- ``closed_form`` with ``solve(...)``: fit the head without the loop (the L-BFGS probe; zero-shot's class
  embeddings), given the pooled features, the labels and the class names;
- class defaults: ``pretrained`` (False for a from-scratch baseline), ``default_lr`` (or ``lr_for``;
  ``default_image_lr`` where image backbones were measured to need another rate than text encoders),
  ``default_head_lr`` (None: the head uses ``lr``), ``default_epochs``, ``default_min_steps`` (the
  planned epochs grow until the run makes this many updates), ``default_monitor`` (what decides which
  epoch's weights are kept when ``TrainConfig.monitor`` is unset: ``val_acc`` early-stops and restores
  the best epoch, ``none`` keeps the last), ``starts_fitted`` (the stage starts from a fitted model, so
  its starting weights are an early-stopping candidate), ``uses_labels`` (False: nothing is learned from the
  labels, as in zero-shot);
- ``stage_validates(monitor)``: the stage chooses on validation examples (by default a loop stage that keeps its
  best epoch; the probe with ``selection='val'``); ``needs_validation`` asks every stage, and a strategy that
  needs validation does not run where a budget is too small to hold any out;
- ``made_examples(classes)``: labelled examples a strategy makes itself from the class names, added to the
  training examples (contrastive's ``synthetic``: SetFit's templated examples); with ``makes_examples`` it also
  runs with no labelled examples at all;
- ``uses_descriptions``: as configured, it reads per-class descriptions (zero-shot; prototype's prior; contrastive's
  synthetic texts), so the CLI's ``--class-descriptions`` reaches it;
- ``test_time`` with ``adapt(...)``: a stage that adjusts the fitted model on unlabelled target examples only
  (``bn-adapt``, ``tent``: ``strategies/test_time.py``), after the recipe's stages or on any fitted model;
- ``terms()``: loss terms added to the stage's data term (a guard such as ``l2sp``, a domain-adaptation
  term such as ``coral``: ``headstart/terms/``); each may prepare once, draw batches from an extra source
  of the fit context, own parameters and report its value per epoch;
- ``save_filter``: which trained tensors a saved model keeps (LoRA keeps only its adapters);
- ``adds``: the name of a module ``configure`` adds to blocks (prompt, prefix, bottleneck adapters), so that a bank
  of models on one body can attach and detach each member's (``tuner.hook_once`` registers its forward hook);
- ``behaviour_version``: bumped when the algorithm changes, so runs of the old one are not reused.

A run's identity (``resolved``) holds every stage's options, less those at their declared neutral value
(``declare.option(neutral=...)``), so a new option at its neutral default keeps every existing key.

A new strategy is one module in this package with ``@register_strategy`` on its class: the package's
modules are discovered, so it is then reachable by name everywhere (``Adapter``, CLI, the race, help
texts) and covered by the tests parametrised over the registry.
"""

from __future__ import annotations

import typing
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, fields
from typing import TYPE_CHECKING, Any, ClassVar

from ..declare import check_declared, convert_option, identity_options
from ..errors import HeadstartError
from ..terms.base import Term
from ..train.model import AdaptedModel, ParamPlan
from ..train.objective import Objective

if TYPE_CHECKING:
    import numpy as np
    import torch

    from ..train.config import TrainConfig

__all__ = ["ALIASES", "STRATEGIES", "Strategy", "base_name", "create_strategy", "list_strategies", "register_alias",
           "register_strategy", "split_entries", "split_entry", "strategy_help"]

STRATEGIES: dict[str, type[Strategy]] = {}
#: old or alternative names: name -> (the spec it means, why)
ALIASES: dict[str, tuple[str, str]] = {}


def register_strategy(cls: type[Strategy]) -> type[Strategy]:
    if cls.name in STRATEGIES:
        raise HeadstartError(f"A strategy named {cls.name!r} is already registered.")
    STRATEGIES[cls.name] = cls
    return cls


def register_alias(name: str, spec: str, why: str) -> None:
    """``name`` means ``spec`` (kept so that existing scripts and races keep working)."""
    ALIASES[name] = (spec, why)


def list_strategies() -> list[str]:
    _ensure_builtin()
    return sorted(STRATEGIES, key=lambda n: (STRATEGIES[n].order, n))


def strategy_help() -> str:
    """One line naming every registered strategy, for help texts."""
    _ensure_builtin()
    return ", ".join(n + (f":{STRATEGIES[n].shorthand.upper()}" if STRATEGIES[n].shorthand else "")
                     for n in list_strategies())


@dataclass
class Strategy(ABC):
    name: ClassVar[str] = ""
    summary: ClassVar[str] = ""
    #: the field that "name:value" sets, e.g. ``partial:2`` sets ``k``
    shorthand: ClassVar[str | None] = None
    #: where it is listed (help texts, ``list_strategies``): baselines first, then by how much trains
    order: ClassVar[int] = 100
    pretrained: ClassVar[bool] = True
    default_lr: ClassVar[float] = 1e-4
    #: the default rate on image backbones, where it was measured apart from text's (None: ``default_lr``)
    default_image_lr: ClassVar[float | None] = None
    default_head_lr: ClassVar[float | None] = 1e-3
    default_epochs: ClassVar[int] = 20
    default_min_steps: ClassVar[int] = 0
    default_monitor: ClassVar[str] = "val_acc"
    closed_form: ClassVar[bool] = False
    starts_fitted: ClassVar[bool] = False
    trains_on_validation: ClassVar[bool] = False
    #: False for a strategy that learns nothing from the labels (zero-shot: class names only)
    uses_labels: ClassVar[bool] = True
    behaviour_version: ClassVar[int] = 1
    #: what a run trains besides the head (so what a saved model keeps), declared for the registry-wide contract
    #: tests: ``"head"`` (nothing else), ``"top-k"`` (the top ``k`` blocks), ``"body"`` (every block),
    #: ``"injected"`` (only the tensors a parameter-efficient method injected, under its ``prefix``), ``"named"``
    #: (only the body's own tensors whose name holds its ``prefix``: BitFit's biases); each stage
    #: declares its own (contrastive: ``body``, its last stage the probe: ``head``)
    trains: ClassVar[str] = "body"
    #: the modalities it applies to (prompt tuning: text only); elsewhere it is refused in one sentence, before work
    modalities: ClassVar[tuple[str, ...]] = ("text", "image")
    #: a stage that learns from unlabelled target examples only, after the recipe's stages (test-time adaptation:
    #: ``adapt(model, target, device, batch_size, seed)``, ``strategies/test_time.py``)
    test_time: ClassVar[bool] = False
    #: the name of a module its ``configure`` adds to blocks (a bottleneck adapter, a soft prompt, a layer's prefix),
    #: whose forward hooks do nothing where a block lacks it: a bank of models on one body attaches each member's
    #: modules while it is active (``bank.py``)
    adds: ClassVar[str | None] = None

    def __post_init__(self) -> None:
        """Every declared option (``declare.option``) holds a value of its type and range; a subclass with its own
        ``__post_init__`` calls ``check_declared`` itself."""
        check_declared(self, self.name)

    @abstractmethod
    def plan(self, n_blocks: int) -> ParamPlan:
        """Which blocks train and at what learning-rate scale (relative to ``lr``)."""

    def configure(self, model: AdaptedModel) -> None:  # noqa: B027 (an optional hook, empty by default)
        """Structural changes to the model before any training (default: none)."""

    def stages(self) -> list[Strategy]:
        return [self]

    def objective(self, model: AdaptedModel, cfg: TrainConfig) -> Objective:
        """What the loop minimises for this stage (default: cross-entropy of the head's logits)."""
        return Objective()

    def terms(self) -> list[Term]:
        """Loss terms added to this stage's data term (default: none)."""
        return []

    def needs_validation(self, monitor: str | None = None) -> bool:
        """Some stage chooses on validation examples (``stage_validates``; ``monitor``: the training option, None for
        each stage's own): such a strategy cannot run where a budget is too small to hold any out."""
        return any(s.stage_validates(monitor) for s in self.stages())

    def stage_validates(self, monitor: str | None = None) -> bool:
        """This stage chooses on validation examples: by default a loop stage that does not train on them and keeps
        its best epoch (a monitor other than ``none``); a closed-form stage that chooses on them says so."""
        return not self.closed_form and not self.trains_on_validation and (monitor or self.default_monitor) != "none"

    @property
    def makes_examples(self) -> bool:
        """It makes labelled examples of its own from the class names (``made_examples``)."""
        return False

    def made_examples(self, classes: tuple[str, ...], modality: str) -> tuple[list[Any], list[int]]:
        """Inputs and labels (indices into ``classes``) this strategy adds to the training examples (default none)."""
        return [], []

    @property
    def uses_descriptions(self) -> bool:
        """As configured, it would read the classes' ``descriptions`` (``--class-descriptions`` reaches it)."""
        return False

    @property
    def runs_without_labels(self) -> bool:
        """It can be built with no labelled example: it learns nothing from labels, or makes its own examples."""
        return not self.uses_labels or self.makes_examples

    def sources(self) -> set[str]:
        """The extra sources (``target``, ...) that some stage's terms, or a test-time stage, draw from: a fit must be
        given them."""
        return ({t.source for s in self.stages() for t in s.terms() if t.source is not None}
                | {"target" for s in self.stages() if s.test_time})

    def solve(self, model: AdaptedModel, x_train: torch.Tensor, y_train: np.ndarray, x_val: torch.Tensor,
              y_val: np.ndarray, *, seed: int = 0, classes: tuple[str, ...] = ()) -> dict[str, Any]:
        """A ``closed_form`` stage fits the head here: pooled features and labels in (``classes``: the class names,
        in label order), chosen settings and held-out estimates out (``val_loss``, ``val_acc``, ...; ``note``:
        one line for the run's record saying what was chosen and how)."""
        raise NotImplementedError(f"{self.spec} declares closed_form but does not implement solve()")

    def lr_for(self, backbone: Any) -> float:
        """The default learning rate on this backbone (``default_lr``, or ``default_image_lr`` on an image backbone
        where one is declared, unless a strategy knows better)."""
        if self.default_image_lr is not None and getattr(backbone, "modality", None) == "image":
            return self.default_image_lr
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
        """Every stage with its options and class defaults: what a run's identity must cover.

        Options at their neutral value, a behaviour version of 1 and an empty list of terms are left out,
        and a stage's class is named by a stable id (``_class_id``), so neither a new option at its
        neutral default nor a moved class changes a key; a changed value, default or version does.
        """
        out = []
        for s in self.stages():
            terms = s.terms()
            out.append({"stage": s.spec, "class": _class_id(type(s)), "options": identity_options(s),
                        "pretrained": s.pretrained, "default_lr": s.default_lr, "default_head_lr": s.default_head_lr,
                        "default_epochs": s.default_epochs, "default_min_steps": s.default_min_steps,
                        "closed_form": s.closed_form, "starts_fitted": s.starts_fitted,
                        "trains_on_validation": s.trains_on_validation,
                        **({"version": s.behaviour_version} if s.behaviour_version != 1 else {}),
                        **({"default_image_lr": s.default_image_lr} if s.default_image_lr is not None else {}),
                        **({"terms": [t.identity() for t in terms]} if terms else {})})
        return out

    def describe(self) -> str:
        opts = ", ".join(f"{k}={v}" for k, v in self.options().items())
        return f"{self.spec} ({opts})" if opts else self.spec


#: the class ids runs were keyed by when keys became stable (the module path of that day); a class may move
#: without changing them. Strategies registered later are keyed by their name.
_FROZEN_CLASS_IDS = {
    "scratch": "headstart.strategies.scratch.Scratch", "scratch-small": "headstart.strategies.scratch.ScratchSmall",
    "probe": "headstart.strategies.probe.Probe", "partial": "headstart.strategies.finetune.Partial",
    "full": "headstart.strategies.finetune.Full", "lldr": "headstart.strategies.finetune.LLDR",
    "lora": "headstart.strategies.lora.LoRA", "contrastive": "headstart.strategies.contrastive.Contrastive",
    "contrastive/pairs": "headstart.strategies.contrastive._PairStage",
}


def _class_id(cls: type[Strategy]) -> str:
    return _FROZEN_CLASS_IDS.get(cls.name, f"strategy:{cls.name}")


def split_entry(entry: str) -> tuple[str, dict[str, str]]:
    """``"full[head_init=random,guard=l2sp]"`` -> ``("full", {"head_init": "random", "guard": "l2sp"})``: a race
    entry is a strategy spec with options of its own, so one race can hold variants of one strategy."""
    spec, bracket, rest = entry.partition("[")
    if not bracket:
        return entry, {}
    if not rest.endswith("]") or "[" in rest[:-1] or "]" in rest[:-1]:
        raise HeadstartError(f"{entry!r}: write a strategy's own options in one pair of brackets, e.g. "
                             "full[head_init=random,guard=l2sp].")
    options: dict[str, str] = {}
    for pair in filter(None, (p.strip() for p in rest[:-1].split(","))):
        key, eq, value = pair.partition("=")
        if not eq or not key.strip():
            raise HeadstartError(f"{entry!r}: {pair!r} is not NAME=VALUE.")
        options[key.strip().replace("-", "_")] = value.strip()
    return spec.strip(), options


def split_entries(text: str) -> list[str]:
    """Comma-separated race entries, commas inside brackets kept: ``probe,full[head_init=random,guard=l2sp]``."""
    out, depth, current = [], 0, ""
    for ch in text:
        depth += {"[": 1, "]": -1}.get(ch, 0)
        if ch == "," and depth == 0:
            out.append(current.strip())
            current = ""
        else:
            current += ch
    return [e for e in [*out, current.strip()] if e]


def base_name(entry: str) -> str:
    """The registered name of an entry: ``partial`` for ``partial:2[guard=l2sp]``."""
    return split_entry(entry)[0].partition(":")[0]


def create_strategy(spec: str | Strategy, **options: Any) -> Strategy:
    """``"probe"``, ``"partial:2"``, ``"lora"``, ``"full[head_init=random]"``... plus options (``rank=4``; an entry's
    bracketed options win). Unknown names list the valid ones."""
    if isinstance(spec, Strategy):
        return spec
    _ensure_builtin()
    spec, own = split_entry(spec)
    if spec in ALIASES:
        spec = ALIASES[spec][0]
    name, _, arg = spec.partition(":")
    cls = STRATEGIES.get(name)
    if cls is None:
        raise HeadstartError(f"Unknown strategy {spec!r}. Valid strategies: {strategy_help()}.")
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
    hints = typing.get_type_hints(cls)
    for key, text in own.items():
        if key not in allowed:
            raise HeadstartError(f"In {spec}[...], {key!r} is not an option of {name} (its options: "
                                 f"{', '.join(allowed)}); a training option is set per strategy with "
                                 f"--set {name}.{key}=VALUE.")
        options[key] = convert_option(key, text, hints[key], context=f"In {spec}[{key}={text}]")
    return cls(**options)


def _ensure_builtin() -> None:
    """Import every module of this package and of ``headstart.terms`` once: each registers its strategies
    (a domain-adaptation term's module registers its strategy, ``coral``, beside the term)."""
    import importlib
    import pkgutil

    from ..terms import list_terms

    package = importlib.import_module(__package__)
    for info in pkgutil.iter_modules(package.__path__):
        importlib.import_module(f"{__package__}.{info.name}")
    list_terms()
