"""What the benchmarks that race a fine-tune under other options share (``early_stopping.py``, ``settings.py``).

Both race variants of the peers grid on its draws and held-out examples, train only the runs no results
file holds, and export every finished run of a variant by key: from ``peers.jsonl`` (a variant that is,
or was, a strategy's default is the peers grid's run, same key) and from the variant's own store.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

import numpy as np
from _report import read_jsonl
from _targets import FINE_TUNES
from peers import MAX_LENGTH, RESULTS, TEST_LIMIT, race_missing

from headstart.options import options_for
from headstart.race import RaceSpec, ResultStore
from headstart.strategies import create_strategy
from headstart.train import TrainConfig


def spec(data: str, strategies: list[str], budgets: list[int], seeds: int, options: dict[str, object]) -> RaceSpec:
    """The peers grid's race (backbone, test examples, token limit) over ``strategies`` under ``options``."""
    return RaceSpec(data, "minilm-l6", strategies=strategies, budgets=budgets, seeds=seeds, test_limit=TEST_LIMIT,
                    backbone_options={"max_length": MAX_LENGTH}, train_options=options)


def label(options: dict[str, object]) -> str:
    """``lldr.decay=0.9, epochs=40``: the options as a row and a table show them."""
    return ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in sorted(options.items()))


def default_label(strategy: str, names: list[str], n_train: int) -> str:
    """What the options ``names`` (as the settings rows name them, ``lldr.decay``, ``epochs``) are under
    ``strategy``'s defaults on ``n_train`` training examples, as :func:`label` shows them
    (``epochs=20, lldr.decay=0.9``): the line a setting is measured against says what it measures against."""
    s = create_strategy(strategy)
    cfg = TrainConfig(monitor=s.default_monitor)
    values: dict[str, object] = {}
    for name in names:
        key = name.rpartition(".")[2]
        if key == "epochs":  # planned: the strategy's epochs, raised to its minimum number of optimiser steps
            values[name] = cfg.plan_epochs(s.default_epochs, s.default_min_steps, -(-n_train // cfg.batch_size))
        elif key == "lr":
            values[name] = lr_of(strategy, {})
        elif key == "head_lr":
            values[name] = s.default_head_lr
        else:
            values[name] = getattr(s, key) if hasattr(s, key) else getattr(cfg, key)
    return label(values)


def store_for(out: Path, data: str, options: dict[str, object]) -> Path:
    """The run store of one dataset and set of options under ``out``."""
    return out / data / (label(options).replace(" ", "").replace(",", "_") or "defaults")


def lr_of(strategy: str, options: dict[str, object]) -> float:
    """The learning rate ``strategy`` trains at under ``options`` (its default unless one is set)."""
    return options_for(options, strategy).get("lr") or create_strategy(strategy).default_lr


def race_and_export(spec: RaceSpec, prepared, task, store: Path, committed: set[str],
                    export: Callable[[list[dict]], None]) -> None:
    """Race the runs of ``spec`` whose keys are not in ``committed`` into ``store``; after each run, and once at the
    end (for runs found in peers.jsonl, or finished by a killed earlier process), hand ``export`` every finished run
    of ``spec``."""
    keys = {spec.run_key(run, prepared.fingerprint, prepared.test_fingerprint) for run in spec.runs()}

    def export_runs(*_) -> None:
        records = [r for r in read_jsonl(RESULTS) if r.get("key") in keys]
        if (store / "results.sqlite").exists():
            with ResultStore(store / "results.sqlite") as s:
                records += [r for r in s.records() if r["key"] in keys]
        export(records)

    race_missing(spec, prepared, task, store, committed, on_run_end=export_runs)
    export_runs()


def mean(values, digits: int = 3) -> str:
    """The mean of ``values`` for a table cell ('–' for none)."""
    values = list(values)
    return f"{np.mean(values):.{digits}f}" if values else "–"


def parser(description: str, out: str, budgets: str, set_help: str) -> argparse.ArgumentParser:
    """The command line both benchmarks take."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--data", default="rotten-tomatoes,vader-tweets")
    p.add_argument("--strategies", default=",".join(FINE_TUNES))
    p.add_argument("--budgets", default=budgets)
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help=set_help)
    p.add_argument("--out", default=out)
    p.add_argument("--report", action="store_true", help="only rebuild the section from what is stored")
    p.add_argument("--no-tables", action="store_true", help="run and export only, leave BENCHMARKS.md alone")
    return p
