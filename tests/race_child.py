"""A race in a child process (for the SIGKILL test): tiny backbone, each run stretched a little."""

from __future__ import annotations

import sys
import time

import numpy as np

from headstart.data import Task
from headstart.race import RaceSpec, run_race

from .conftest import tiny_backbone


def toy_task(n: int = 160) -> Task:
    rng = np.random.default_rng(0)
    pos, neg = ["good movie", "great fun", "love it"], ["bad movie", "awful film", "hate it"]
    texts = [f"{rng.choice(pos if i % 2 == 0 else neg)} {i}" for i in range(n)]
    return Task(texts, np.array([i % 2 for i in range(n)]), ("pos", "neg"), "text", "toy")


def toy_spec(budgets=(4, 8), seeds=2, strategies=("scratch", "scratch-small", "probe", "lora")) -> RaceSpec:
    return RaceSpec("toy", "minilm-l6", strategies=list(strategies), budgets=list(budgets), seeds=seeds,
                    train_options={"epochs": 2, "precision": "fp32"})


def run(out: str, pause: float = 0.0, **spec) -> list[dict]:
    return run_race(toy_spec(**spec), out, task=toy_task(), backbone=lambda p: tiny_backbone("minilm-l6", p),
                    progress=False, on_run_end=lambda *_: time.sleep(pause))


if __name__ == "__main__":
    run(sys.argv[1], pause=float(sys.argv[2]))
