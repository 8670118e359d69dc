"""``RaceSpec``: strategies × label budgets × seeds on one dataset and backbone; run identity; the default grid.

A run's key covers everything that determines its result: the data (and the user's test file), the
split, the backbone and its options, the budget and seed, and the *fully resolved* strategy and
training configuration: every stage's options and class defaults, every ``TrainConfig`` field after
defaults, the device and what ``precision="auto"`` resolved to, and ``RESULTS_FORMAT``, which changes
whenever the scoring or a default outside those changes. A changed default therefore never reuses an
old result.

It changes when behaviour does, and only then: options at their declared neutral value are left out
(a new option keeps every key), classes are named by stable ids, a strategy or term declares a behaviour
version that is bumped when its algorithm changes, and the package version is not part of it (the
``headstart`` field is frozen at ``KEYED_SINCE``, the release whose keys every later one keeps).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import numpy as np

from ..backbones.hf_load import pin
from ..backbones.options import candidate_label, parse_candidate
from ..data import VALIDATED_FROM, Task, make_splits, parse_budget
from ..declare import check_declared, identity_options, option
from ..errors import HeadstartError
from ..options import check_options, options_for
from ..strategies import ALIASES, Strategy, create_strategy
from ..train import TrainConfig
from .store import RESULTS_FORMAT

__all__ = ["DEFAULT_STRATEGIES", "RaceSpec", "RunSpec", "default_budgets", "entry_label", "race_entries"]

KEYED_SINCE = "0.2.0"  # see the module docstring: kept so that every earlier key stays valid
DEFAULT_STRATEGIES = ("scratch", "scratch-small", "probe", "partial:2", "full", "lora")


def entry_label(strategy: str, backbone: str | None) -> str:
    """What a race's tables, report and store call one entry: the strategy, and in a race over several backbones
    the candidate it runs on (``probe on efficientnet-lite0``)."""
    return strategy if backbone is None else f"{strategy} on {backbone}"


def race_entries(spec: dict[str, Any]) -> list[str]:
    """``RaceSpec.entries`` of a saved spec (the store's ``spec`` meta)."""
    return [entry_label(s, b) for s in spec["strategies"] for b in (spec.get("backbones") or [None])]


@dataclass(frozen=True)
class RunSpec:
    strategy: str
    budget: int | None  # labelled examples per class, validation included; None = the whole pool
    seed: int
    backbone: str | None = None  # in a race over several backbones, the candidate's label; None: the race's one

    @property
    def entry(self) -> str:
        return entry_label(self.strategy, self.backbone)

    @property
    def label(self) -> str:
        return f"{self.entry} @ {'all' if self.budget is None else self.budget}/class, seed {self.seed}"


@dataclass
class RaceSpec:
    """Everything that determines a race's results (saved with them)."""

    data: str
    backbone: str
    strategies: list[str] = field(default_factory=lambda: list(DEFAULT_STRATEGIES))
    budgets: list[int | None] = field(default_factory=list)  # empty: sized to the data and the machine
    seeds: int = option(3, "seeds per strategy and budget", low=1)
    split_seed: int = option(0, "seed of the pool/selection/test split", low=0)
    test_limit: int | None = option(None, "score on at most this many selection and test examples each (natural "
                                    "class proportions)", low=1, example=1000)
    choose: str = option("auto", "how the race chooses: on a held-out selection part, or by repeated k-fold "
                         "cross-validation within each run's labels (auto: cross-validation when the selection part "
                         "would hold fewer than 10 examples of some class); resolved when the data are prepared",
                         choices=("auto", "selection", "cv"))
    cv_folds: int = option(5, "folds of the cross-validation that chooses (at most the smallest class's labels in a "
                           "run)", low=2)
    reference: str = option("auto", "the named example (or file) a probe measures how much pretrained competence a run "
                            "kept on (race/forgetting.py): auto (20newsgroups for text, digits for images, unless the "
                            "race is on it), another, or none; never part of a run's key")
    test: str | None = None  # the user's own test file (None: a test part held out of ``data``)
    #: unlabelled examples of the deployment domain, for strategies whose terms draw from them (``coral``)
    target: str | None = None
    #: a labelled test set from the deployment domain: every run is also scored there, and it never chooses
    ood_test: str | None = None
    train_options: dict[str, Any] = field(default_factory=dict)
    backbone_options: dict[str, Any] = field(default_factory=dict)  # every candidate's, below its own
    #: two or more candidates raced side by side (``compare --backbones``), each ``name`` or ``name[key=value]``;
    #: every strategy runs on each, in one store and one report. Empty: ``backbone`` alone.
    backbones: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        check_declared(self, "a race")
        self.budgets = [parse_budget(b) for b in self.budgets]
        if self.backbones:
            self.backbones = self._check_backbones(self.backbones)
            self.backbone = parse_candidate(self.backbones[0])[0]
        if not self.strategies:
            raise HeadstartError("A race needs at least one strategy.")
        for s in self.strategies:
            create_strategy(s)  # unknown names fail here, before any training, listing the valid ones
        self.strategies = [ALIASES[s][0] if s in ALIASES else s for s in self.strategies]  # lp-ft is full
        same = [s for i, s in enumerate(self.strategies)
                if any(create_strategy(s).resolved() == create_strategy(t).resolved() for t in self.strategies[:i])]
        if same:  # full and full[head_init=probe] are one strategy
            raise HeadstartError(f"Each strategy once, please (aliases, and entries whose options are the defaults, "
                                 f"count as what they mean): {same[0]!r} repeats an earlier entry of "
                                 f"{self.strategies}.")
        check_options(self.train_options, self.strategies)  # bad options fail before any work
        for b in self.budgets:
            if not any(self.runs_at(s, b) for s in self.strategies):
                raise HeadstartError(f"No strategy of {', '.join(self.strategies)} runs at {b} labels per class: "
                                     f"{self._why_not(b)}; add one that does, or drop the budget {b}.")
        needs = [s for s in self.strategies if "target" in self.strategy(s).sources()]
        if needs and self.target is None:
            verb = "trains" if len(needs) == 1 else "train"
            raise HeadstartError(f"{', '.join(needs)} {verb} on unlabelled examples of the deployment domain; give "
                                 "them with --target FILE (RaceSpec(target=...)).")

    def _check_backbones(self, given: list[str]) -> list[str]:
        """Each candidate once, as its canonical label; one sentence for fewer than two or a modality mix."""
        from ..backbones.registry import get_spec

        parsed = [parse_candidate(b) for b in given]  # an unknown name or option fails here
        labels = [candidate_label(*p) for p in parsed]
        if len(labels) < 2:
            raise HeadstartError("Racing backbones side by side needs two or more (--backbones a,b); for one, "
                                 "give it as --backbone.")
        twice = [b for i, b in enumerate(labels) if b in labels[:i]]
        if twice:
            raise HeadstartError(f"The backbone {twice[0]} is listed twice; give each candidate once.")
        kinds = {b: get_spec(name)[0].modality for b, (name, _) in zip(labels, parsed)}
        if len({m for m in kinds.values() if m in ("text", "image")}) > 1:  # an hf: id's is read at load
            raise HeadstartError("The backbones raced side by side must read the same data: "
                                 + ", ".join(f"{b} is {m}" for b, m in kinds.items()) + ".")
        return labels

    def backbone_of(self, candidate: str | None) -> tuple[str, dict[str, Any]]:
        """The backbone name (a hub id pinned to its commit) and options of one candidate (``RunSpec.backbone``;
        None: the race's one backbone)."""
        if candidate is None:
            return self.backbone, self.backbone_options
        name, options = parse_candidate(candidate)
        pins = self.__dict__.setdefault("_pins", {})  # not a field: neither saved nor compared
        if name not in pins:
            pins[name] = pin(name)
        return pins[name], {**self.backbone_options, **options}

    def entries(self) -> list[str]:
        """Every entry's label in table order: the strategies, or each strategy on each candidate."""
        return [entry_label(s, b) for s in self.strategies for b in (self.backbones or [None])]

    def strategy(self, name: str) -> Strategy:
        """The strategy of entry ``name``'s runs, with the options this race gives it: parsed once per entry and
        set of options, then carried as an object (to the run's identity, to ``Adapter``)."""
        _, strategy_options = TrainConfig.from_options(self.options_for(name))
        cache = self.__dict__.setdefault("_parsed", {})  # not a field: neither saved nor compared
        key = (name, json.dumps(strategy_options, sort_keys=True, default=str))
        if key not in cache:
            cache[key] = create_strategy(name, **strategy_options)
        return cache[key]

    def train_options_for(self, name: str) -> dict[str, Any]:
        """The training options (``TrainConfig``'s) of entry ``name``'s runs."""
        names = {f.name for f in fields(TrainConfig)}
        return {k: v for k, v in self.options_for(name).items() if k in names}

    def runs_at(self, name: str, budget: int | None) -> bool:
        """Entry ``name`` runs at ``budget``: at 0 labels only a strategy that needs none (zero-shot, or one that
        makes its own examples); below ``VALIDATED_FROM`` per class nothing is held out, so only a strategy that
        chooses nothing on validation examples (``needs_validation``) runs there."""
        strategy = self.strategy(name)
        if budget == 0:
            return strategy.runs_without_labels
        if budget == 1 and self.choose == "cv":  # one label of a class cannot both train and score
            return False
        if budget is not None and budget < VALIDATED_FROM:
            return not strategy.needs_validation(self.train_options_for(name).get("monitor"))
        return True

    def _why_not(self, budget: int | None) -> str:
        if budget == 1 and self.choose == "cv":
            return "this race chooses by cross-validation within each run's labels, and one label of a class cannot " \
                   "both train and score (choose='selection' races it)"
        if budget == 0:
            return "at 0 labels only a strategy that learns nothing from labels (zero-shot, prototype with " \
                   "prior=names) or makes its own examples (contrastive with synthetic) runs"
        return f"below {VALIDATED_FROM} labels per class nothing is held out, and each keeps its best epoch by " \
               "validation examples"

    def runs(self) -> list[RunSpec]:
        """Budget-major order: every strategy gets the small budgets first, so an early stop is informative. An
        entry runs only at the budgets it can (``runs_at``; ``skipped`` names the others)."""
        return [RunSpec(s, b, seed, backbone) for b in self.budgets for seed in range(self.seeds)
                for s in self.strategies for backbone in (self.backbones or [None]) if self.runs_at(s, b)]

    def skipped(self) -> str | None:
        """One sentence naming the entries that do not run at some budget, and why (None: every entry runs)."""
        parts = []
        if 0 in self.budgets:
            need = [s for s in self.strategies if not self.runs_at(s, 0)]
            run = [s for s in self.strategies if self.runs_at(s, 0)]
            if need:
                one = len(need) == 1
                parts.append(f"at 0 labels per class only {', '.join(run)} run{'s' if len(run) == 1 else ''}: "
                             f"{', '.join(need)} learn{'s' if one else ''} from labels and start{'s' if one else ''} "
                             "at the next budget")
        if 1 in self.budgets and self.choose == "cv":
            parts.append("at 1 label per class nothing is raced: this race chooses by cross-validation within each "
                         "run's labels, and one label of a class cannot both train and score (a race with a "
                         "selection part, choose='selection', races it)")
        small = sorted(b for b in self.budgets if b is not None and (1 if self.choose == "cv" else 0) < b
                       < VALIDATED_FROM)
        if small:
            validating = [s for s in self.strategies if not self.runs_at(s, small[0])]
            if validating:
                one = len(validating) == 1
                at = ", ".join(map(str, small))
                parts.append(f"at {at} label{'' if small == [1] else 's'} per class nothing is held out for "
                             f"validation: {', '.join(validating)} keep{'s' if one else ''} "
                             f"{'its' if one else 'their'} "
                             f"best epoch by it and start{'s' if one else ''} at {VALIDATED_FROM} or more")
        return "; ".join(parts) + "." if parts else None

    def run_identity(self, run: RunSpec, data_fingerprint: str, test_fingerprint: str | None = None,
                     target_fingerprint: str | None = None, ood_fingerprint: str | None = None) -> dict[str, Any]:
        """Everything that determines ``run``'s result, after every default is resolved (the target examples'
        fingerprint only for a strategy that trains on them, so no other run's key depends on them)."""
        cfg = TrainConfig(**{**self.train_options_for(run.strategy), "seed": run.seed})
        strategy = self.strategy(run.strategy)
        device = cfg.resolve_device()
        backbone, backbone_options = self.backbone_of(run.backbone)
        train = {**identity_options(cfg.resolve_monitor(strategy.default_monitor)), "device": str(device),
                 "precision": str(cfg.resolve_precision(device) or "fp32")}
        if strategy.pretrained and _may_have_batchnorm(backbone):  # a pretrained body's BatchNorm used to train
            train["batchnorm"] = cfg.resolve_batchnorm(True)  # on batch statistics; text encoders have none
        return {"format": RESULTS_FORMAT, "headstart": KEYED_SINCE, "data": data_fingerprint,
                "test": test_fingerprint, "split_seed": self.split_seed, "test_limit": self.test_limit,
                "backbone": backbone, "backbone_options": backbone_options, "budget": run.budget,
                "seed": run.seed, "strategy": strategy.resolved(), "train": train,
                # below VALIDATED_FROM per class the draw holds nothing out (it used to hold one per class out)
                **({"draw": "unvalidated"} if run.budget is not None and 0 < run.budget < VALIDATED_FROM else {}),
                # chosen by cross-validation: no selection part (another pool), and the score is out-of-fold
                **({"choose": "cv", "cv_folds": self.cv_folds} if self.choose == "cv" else {}),
                **({"target": target_fingerprint} if "target" in strategy.sources() else {}),
                # scored on a deployment test set too: a run without those scores is not this run
                **({"ood_test": ood_fingerprint} if ood_fingerprint else {})}

    def options_for(self, strategy: str) -> dict[str, Any]:
        """The training and strategy options of one strategy's runs (``--set lora.rank=4`` reaches lora only)."""
        return options_for(self.train_options, strategy)

    def run_key(self, run: RunSpec, data_fingerprint: str, test_fingerprint: str | None = None,
                target_fingerprint: str | None = None, ood_fingerprint: str | None = None) -> str:
        payload = self.run_identity(run, data_fingerprint, test_fingerprint, target_fingerprint, ood_fingerprint)
        return hashlib.sha1(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:20]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def expected_cells(spec: RaceSpec | dict[str, Any]) -> dict[tuple[str, int | None], int] | None:
    """(entry, budget) -> how many runs the race's grid holds there (its seeds; entries that do not run at a budget
    are not cells), from a ``RaceSpec`` or a stored one; None when a stored spec cannot be read back."""
    try:
        race = spec if isinstance(spec, RaceSpec) else RaceSpec(**spec)
    except (HeadstartError, TypeError):
        return None
    cells: dict[tuple[str, int | None], int] = {}
    for run in race.runs():
        cells[(run.entry, run.budget)] = cells.get((run.entry, run.budget), 0) + 1
    return cells


def _may_have_batchnorm(backbone: Any) -> bool:
    """Every registered text encoder is a transformer (LayerNorm only); image models and hub ids may have BatchNorm."""
    if not isinstance(backbone, str):
        return True
    from ..backbones.registry import get_spec

    try:
        return get_spec(backbone)[0].modality != "text"
    except HeadstartError:
        return True


def default_budgets(task: Task, *, split_seed: int = 0, gpu: bool = False,
                    pool: np.ndarray | None = None) -> list[int | None]:
    """8, 32, 128, ... labels per class up to what the smallest class has in the pool; 'all' when affordable.

    On a CPU-only machine the largest budget stays at 256 per class and 'all' is added only for training
    pools of at most 2,000 examples, so a default race finishes in minutes to an hour, not a day.
    """
    pool = make_splits(task, seed=split_seed).pool if pool is None else np.asarray(pool)
    smallest = int(np.bincount(task.labels[pool], minlength=len(task.classes)).min())
    cap = smallest if gpu else min(smallest, 256)
    budgets: list[int | None] = [b for b in (8, 32, 128, 512) if b <= cap]
    if not budgets:
        budgets = [smallest]
    if gpu or len(pool) <= 2000:
        budgets.append(None)
    return budgets
