"""``RaceSpec``: strategies × label budgets × seeds on one dataset and backbone; the default grid."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from ..data import Task, make_splits
from ..errors import HeadstartError
from ..strategies import create_strategy

__all__ = ["DEFAULT_STRATEGIES", "RaceSpec", "RunSpec", "default_budgets"]

DEFAULT_STRATEGIES = ("scratch", "probe", "partial:2", "full", "lora")


@dataclass(frozen=True)
class RunSpec:
    strategy: str
    budget: int | None  # examples per class; None = the whole training pool
    seed: int

    @property
    def label(self) -> str:
        return f"{self.strategy} @ {'all' if self.budget is None else self.budget}/class, seed {self.seed}"


@dataclass
class RaceSpec:
    """Everything that determines a race's results (saved with them)."""

    data: str
    backbone: str
    strategies: list[str] = field(default_factory=lambda: list(DEFAULT_STRATEGIES))
    budgets: list[int | None] = field(default_factory=list)  # empty: sized to the data and the machine
    seeds: int = 3
    split_seed: int = 0
    test_limit: int | None = None  # score on a fixed stratified subset of the test split (None: all of it)
    train_options: dict[str, Any] = field(default_factory=dict)
    backbone_options: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.seeds < 1:
            raise HeadstartError(f"The 'seeds' parameter of a race must be at least 1. Got {self.seeds!r} instead.")
        if not self.strategies:
            raise HeadstartError("A race needs at least one strategy.")
        for s in self.strategies:
            create_strategy(s)  # unknown names fail here, before any training, listing the valid ones
        if len(set(self.strategies)) != len(self.strategies):
            raise HeadstartError(f"Each strategy once, please: {self.strategies}.")

    def runs(self) -> list[RunSpec]:
        """Budget-major order: every strategy gets the small budgets first, so an early stop is informative."""
        return [RunSpec(s, b, seed) for b in self.budgets for seed in range(self.seeds) for s in self.strategies]

    def run_key(self, run: RunSpec, data_fingerprint: str) -> str:
        payload = {"data": data_fingerprint, "backbone": self.backbone, "backbone_options": self.backbone_options,
                   "strategy": run.strategy, "budget": run.budget, "seed": run.seed, "split_seed": self.split_seed,
                   "test_limit": self.test_limit, "train_options": self.train_options}
        return hashlib.sha1(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:20]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def default_budgets(task: Task, *, split_seed: int = 0, gpu: bool = False) -> list[int | None]:
    """8, 32, 128, ... per class up to what the smallest class has for training; 'all' when it is affordable.

    On a CPU-only machine the largest budget stays at 256 per class and 'all' is added only for training
    pools of at most 2,000 examples, so a default race finishes in minutes to an hour, not a day.
    """
    pool = make_splits(task, seed=split_seed).train
    smallest = int(np.bincount(task.labels[pool], minlength=len(task.classes)).min())
    cap = smallest if gpu else min(smallest, 256)
    budgets: list[int | None] = [b for b in (8, 32, 128, 512) if b <= cap]
    if not budgets:
        budgets = [smallest]
    if gpu or len(pool) <= 2000:
        budgets.append(None)
    return budgets
