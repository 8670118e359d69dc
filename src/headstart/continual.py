"""Tasks learned one after another, and what each way of learning them keeps: ``headstart continual``.

Every *setting* (no guard, a guard against forgetting, a rehearsal buffer, or a guard with one) learns
the same tasks in the same order with one model (``Adapter(warm_start=True)``; a new class grows the
head: class-incremental; the same classes again carry it on: domain-incremental), for every seed. After
each step the model is scored on the test part of every task it has learned so far, which gives the
accuracy matrix ``R[i][j]`` (after learning task i, on task j), its final row's mean (average
accuracy) and backward transfer, ``BWT = mean_j<T (R[T][j] − R[j][j])`` (Lopez-Paz & Ranzato, 2017:
negative is forgetting).

The splits are the race's: each task is split once (``split_seed``) into a pool, a selection part and a
test part; a step learns from ``budget`` labels per class of its task's pool (validation included,
drawn per seed), and the test parts are only scored. Each finished (setting, seed) sequence is a row
of ``results.jsonl`` in the output folder, written as it ends: an interrupted run resumes with the
rows it has, and the same command gives the same numbers.
"""

from __future__ import annotations

import json
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .data import Task, draw, make_splits, parse_budget
from .data.splits import check_budgets, stratified_subset
from .errors import HeadstartError

__all__ = ["ContinualSpec", "Setting", "continual_table", "parse_settings", "run_continual", "summarize_continual"]

RESULTS = "results.jsonl"
SPEC = "continual.json"


@dataclass(frozen=True)
class Setting:
    """One way of learning the sequence: a guard against forgetting (or none) and a rehearsal buffer (or none)."""

    guard: str | None = None
    replay: int = 0

    @property
    def label(self) -> str:
        parts = ([self.guard] if self.guard else []) + ([f"replay={self.replay}"] if self.replay else [])
        return "+".join(parts) or "none"


def parse_settings(text: str) -> list[Setting]:
    """``none,ewc,lwf,l2sp,replay=5,ewc+replay=5`` -> settings (each guard a registered one)."""
    from .terms import list_terms

    guards = list_terms("guard")
    out: list[Setting] = []
    for entry in (e.strip() for e in text.split(",")):
        if not entry:
            continue
        guard, replay = None, 0
        for part in (p.strip() for p in entry.split("+")):
            if part == "none":
                continue
            if part.startswith("replay="):
                value = part[len("replay="):]
                if not value.isdigit() or int(value) < 1:
                    raise HeadstartError(f"--settings: {part!r} keeps a number of examples per class: replay=N with "
                                         "N at least 1, e.g. replay=5.")
                replay = int(value)
            elif part in guards and guard is None:
                guard = part
            else:
                raise HeadstartError(f"--settings: {part!r} is not a setting; use none, a guard ({', '.join(guards)}), "
                                     "replay=N, or a guard with replay (ewc+replay=5).")
        setting = Setting(guard, replay)
        if setting in out:
            raise HeadstartError(f"--settings names {setting.label} twice; name each setting once.")
        out.append(setting)
    if not out:
        raise HeadstartError("--settings is empty; name at least one, e.g. --settings none,ewc,replay=5.")
    return out


@dataclass
class ContinualSpec:
    """What ``headstart continual`` runs: the tasks in order (named as given), and how each step learns."""

    tasks: list[str]
    backbone: str
    strategy: str = "full"
    settings: list[Setting] = field(default_factory=lambda: [Setting()])
    budget: str | int = "all"
    seeds: int = 1
    split_seed: int = 0
    test_limit: int | None = None
    backbone_options: dict[str, Any] = field(default_factory=dict)
    train_options: dict[str, Any] = field(default_factory=dict)

    def identity(self) -> dict[str, Any]:
        """Everything a sequence's numbers depend on, except which settings and seeds are run."""
        return {"tasks": self.tasks, "backbone": self.backbone, "strategy": self.strategy, "budget": str(self.budget),
                "split_seed": self.split_seed, "test_limit": self.test_limit,
                "backbone_options": self.backbone_options, "train_options": self.train_options}


def _check(spec: ContinualSpec, tasks: Sequence[Task], splits: Sequence[Any]) -> None:
    """Everything that can be refused before any training."""
    from .strategies import create_strategy

    modalities = {t.modality for t in tasks}
    if len(modalities) > 1:
        raise HeadstartError(f"continual needs tasks of one modality; these mix {' and '.join(sorted(modalities))}.")
    for setting in spec.settings:
        if setting.guard:
            create_strategy(spec.strategy, guard=setting.guard)  # a strategy without guards says so, by name
    budget = parse_budget(spec.budget)
    for task, split in zip(tasks, splits):
        check_budgets(task, split, [budget])


def _key(setting: Setting, seed: int) -> str:
    return f"{setting.label}|{seed}"


def read_rows(out: Path) -> list[dict[str, Any]]:
    path = out / RESULTS
    if not path.is_file():
        return []
    rows = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            raise HeadstartError(f"{path} line {n} is damaged (not JSON); delete that line to run its sequence "
                                 "again.") from None
    return rows


def _open(out: Path, spec: ContinualSpec) -> None:
    """The folder holds this run's rows or none: another run's are refused, not mixed in."""
    out.mkdir(parents=True, exist_ok=True)
    ident = spec.identity()
    path = out / SPEC
    if path.is_file():
        saved = json.loads(path.read_text(encoding="utf-8"))
        if saved != json.loads(json.dumps(ident)):
            differs = sorted(k for k in ident if json.loads(json.dumps(ident[k])) != saved.get(k))
            raise HeadstartError(f"{out} holds a continual run with other settings ({', '.join(differs)} differ); "
                                 "give another --out, or delete the folder to start again.")
    else:
        path.write_text(json.dumps(ident, indent=2) + "\n", encoding="utf-8")


def run_continual(spec: ContinualSpec, tasks: Sequence[Task], out: str | Path, *,
                  progress: Callable[[str], None] | None = None,
                  only_seeds: Sequence[int] | None = None) -> list[dict[str, Any]]:
    """Every setting × seed over ``tasks`` in order (``only_seeds``: those seeds alone); the rows of this spec (resumed
    ones included)."""
    from .adapter import Adapter

    out = Path(out)
    if len(tasks) < 2:
        raise HeadstartError("continual learns tasks one after another; give at least two (A.csv B.csv), in the order "
                             "they arrive.")
    splits = [make_splits(t, seed=spec.split_seed) for t in tasks]
    _check(spec, tasks, splits)
    _open(out, spec)
    budget = parse_budget(spec.budget)
    tests = []
    for task, split in zip(tasks, splits):
        index = split.test if spec.test_limit is None else stratified_subset(task, split.test, spec.test_limit,
                                                                              seed=spec.split_seed)
        tests.append(task.subset(index))
    done = {r["key"]: r for r in read_rows(out)}
    rows = []
    for setting in spec.settings:
        for seed in (range(spec.seeds) if only_seeds is None else only_seeds):
            key = _key(setting, seed)
            if key in done:
                rows.append(done[key])
                continue
            options = {**spec.train_options, **({"guard": setting.guard} if setting.guard else {})}
            adapter = Adapter(spec.backbone, spec.strategy, warm_start=True, replay=setting.replay, seed=seed,
                              backbone_options=dict(spec.backbone_options), **options)
            matrix: list[list[float]] = []
            seconds = []
            for i, (task, split) in enumerate(zip(tasks, splits)):
                if progress:
                    progress(f"{setting.label}, seed {seed}: learning {spec.tasks[i]} ({i + 1} of {len(tasks)})")
                train, val = draw(task, split, budget, seed=seed)
                tic = time.perf_counter()
                adapter.fit(task.subset(train), val=task.subset(val) if len(val) else None)
                seconds.append(time.perf_counter() - tic)
                matrix.append([_accuracy(adapter, tests[j]) for j in range(i + 1)])
            with tempfile.TemporaryDirectory() as tmp:
                folder = adapter.save(Path(tmp) / "model")
                size = sum(f.stat().st_size for f in folder.iterdir())
                memory = sum(f.stat().st_size for f in folder.iterdir() if f.name.startswith("memory."))
            row = {"key": key, "setting": setting.label, "guard": setting.guard, "replay": setting.replay,
                   "seed": seed, "matrix": matrix, "seconds": seconds, "saved_bytes": size, "memory_bytes": memory,
                   "n_test": [len(t) for t in tests], "classes": [str(c) for c in adapter.classes_],
                   **_measures(matrix)}
            with (out / RESULTS).open("a", encoding="utf-8") as f:
                f.write(json.dumps(row) + "\n")
            rows.append(row)
    return rows


def _accuracy(adapter: Any, test: Task) -> float:
    predicted = [str(p) for p in adapter.predict(test)]
    truth = [test.classes[int(y)] for y in test.labels]
    return float(np.mean([p == t for p, t in zip(predicted, truth)]))


def _measures(matrix: list[list[float]]) -> dict[str, float]:
    last = matrix[-1]
    return {"avg_acc": float(np.mean(last)),
            "bwt": float(np.mean([last[j] - matrix[j][j] for j in range(len(matrix) - 1)])),
            "learned_acc": float(np.mean([matrix[j][j] for j in range(len(matrix))]))}


def summarize_continual(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per setting (in the order run): mean and spread over seeds of every measure, and the mean matrix."""
    by: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        by.setdefault(r["setting"], []).append(r)

    def spread(values: list[float]) -> tuple[float, float]:
        return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0

    out = []
    for setting, rs in by.items():
        matrix = [[statistics.fmean(r["matrix"][i][j] for r in rs) for j in range(i + 1)]
                  for i in range(len(rs[0]["matrix"]))]
        out.append({"setting": setting, "seeds": len(rs), "avg_acc": spread([r["avg_acc"] for r in rs]),
                    "bwt": spread([r["bwt"] for r in rs]), "learned_acc": spread([r["learned_acc"] for r in rs]),
                    "seconds": statistics.fmean(sum(r["seconds"]) for r in rs),
                    "saved_bytes": statistics.fmean(r["saved_bytes"] for r in rs),
                    "memory_bytes": statistics.fmean(r["memory_bytes"] for r in rs), "matrix": matrix})
    return out


def task_label(task: str) -> str:
    """A task as a table names it: a named example as it is, a file or folder by its last part."""
    return Path(task).name or task


def continual_table(summary: list[dict[str, Any]], tasks: list[str]) -> str:
    """The settings side by side, then each one's mean accuracy matrix."""
    tasks = [task_label(t) for t in tasks]
    lines = [f"{'setting':<18} {'avg acc':>15} {'backward transfer':>19} {'just learned':>15} {'s/sequence':>11} "
             f"{'saved MB':>9} {'buffer KB':>10}"]
    for s in summary:
        lines.append(f"{s['setting']:<18} {s['avg_acc'][0]:>7.3f} ± {s['avg_acc'][1]:.3f} "
                     f"{s['bwt'][0]:>+11.3f} ± {s['bwt'][1]:.3f} "
                     f"{s['learned_acc'][0]:>7.3f} ± {s['learned_acc'][1]:.3f} "
                     f"{s['seconds']:>11.1f} {s['saved_bytes'] / 1e6:>9.2f} {s['memory_bytes'] / 1e3:>10.1f}")
    lines.append("\navg acc: mean accuracy over every task after the last one; backward transfer: how much each "
                 "earlier task's accuracy changed from just after it was learned to the end (negative: forgotten); "
                 "just learned: each task's accuracy right after it was learned.")
    width = max(len(t) for t in tasks)
    for s in summary:
        lines.append(f"\n{s['setting']}: accuracy on each task (columns) after learning each (rows), mean of "
                     f"{s['seeds']} seed(s)")
        lines.append(" " * (width + 8) + " ".join(f"{t[-12:]:>12}" for t in tasks))
        for i, row in enumerate(s["matrix"]):
            cells = [f"{v:>12.3f}" for v in row] + [f"{'':>12}"] * (len(tasks) - len(row))
            lines.append(f"after {tasks[i]:<{width}}  " + " ".join(cells))
    return "\n".join(lines)

