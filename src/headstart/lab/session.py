"""One lab: a dataset and a backbone, the race store of a folder, and the settings a user can train.

A setting is (strategy, labels per class, learning rate of the fine-tune). Its result is an ordinary
race run (seed 0) keyed exactly as ``compare`` keys it, so a setting trained before (by the lab or by a
race in the same folder) is looked up, never retrained, and the lab's runs are the race's runs.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import fields
from pathlib import Path
from typing import Any

import numpy as np

from ..backbones import Backbone
from ..backbones.options import check_backbone_options
from ..errors import HeadstartError
from ..race import RaceSpec, ResultStore, prepare_race, run_race
from ..race.analysis import best_per_budget, budget_label, choice_line, negative_transfer, recommend, summarize
from ..race.executors import Executor
from ..race.grid import RunSpec
from ..report.colors import strategy_color
from ..report.details import chance, near_chance
from ..strategies import create_strategy
from ..train import Callback
from .architecture import finetune_for, strip

__all__ = ["LR_CHOICES", "PATIENCE_CHOICES", "LabSession", "public_record"]

#: learning rates the fine-tuning control offers (None: the strategy's default); 1e-2 is where a fine-tune of a
#: pretrained body visibly forgets or diverges
LR_CHOICES: tuple[float, ...] = (1e-5, 3e-5, 5e-5, 1e-4, 3e-4, 1e-3, 3e-3, 1e-2)
#: a lab on a named dataset scores every run on at most this many selection and test examples each
LAB_TEST_LIMIT = 500
SCRATCH_OPTIONS = ("scratch", "scratch-small")
#: the lab's own defaults on data it opens (a race folder keeps the race's settings), chosen for interaction and
#: shown on the page: a fine-tune plans 30 optimiser steps rather than 100 (as the demo does), texts are read to 64
#: tokens and images at 64 px (a conv net at its native 224 px scores about 30 images a second here: the 1,000
#: examples a run is scored on would take half a minute), and the from-scratch entrant is the small model (the
#: random-init twin of the backbone, the same architecture as the fine-tune, is one click away: --scratch scratch)
LAB_TRAIN_OPTIONS = {"min_steps": 30}
LAB_BACKBONE_OPTIONS = {"text": {"max_length": 64}, "image": {"image_size": 64}}
LAB_SCRATCH = "scratch-small"
#: early stopping the page can turn on for the fine-tune: patience choices (epochs without a better validation score)
PATIENCE_CHOICES = (3, 5, 10, 20)
_SPEC_FIELDS = {f.name for f in fields(RaceSpec)} - {"strategies", "budgets", "seeds"}
_PUBLIC = ("key", "strategy", "budget", "seed", "per_class", "from_scratch", "n_train", "n_val", "n_selection",
           "n_test", "sel_acc", "test_acc", "test_macro_f1", "trainable_params", "seconds", "seconds_per_epoch",
           "epochs", "best_epoch", "stop_reason", "best_val_acc", "delta_l2", "delta_relative", "curve", "stages",
           "notes", "finished", "forgetting", "ood_acc", "iwv_acc", "target_entropy")


def public_record(record: dict[str, Any]) -> dict[str, Any]:
    """What the browser needs of a stored run (no per-example predictions, no full configuration)."""
    out = {k: record.get(k) for k in _PUBLIC}
    out["lr"] = (record.get("config") or {}).get("lr")
    return out


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", Path(text).stem if Path(text).suffix else Path(text).name).strip("-")


def _whole(value: Any) -> int | None:
    """A whole number as a browser sends one (``8``, ``"8"``, ``8.0``); None for anything else (``8.7``, ``True``,
    ``"8 "``... are not quietly rounded or read as 1)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value) if value.is_integer() else None
    if isinstance(value, str) and value.isascii() and value.lstrip("-").isdigit() and len(value) < 12:
        return int(value)
    return None


class LabSession:
    """The lab's view of one folder: its base race settings, its prepared data, and lookups of runs."""

    def __init__(self, folder: Path, spec: RaceSpec, scratch: str, *,
                 backbone: str | Callable[[bool], Backbone] | None = None,
                 load_options: dict[str, Any] | None = None, executor: Executor | None = None) -> None:
        if scratch not in SCRATCH_OPTIONS:
            raise HeadstartError(f"The lab's from-scratch entrant must be one of {', '.join(SCRATCH_OPTIONS)}; "
                                 f"got {scratch!r}.")
        self.folder, self.spec, self.scratch = Path(folder), spec, scratch
        self.backbone = backbone or spec.backbone
        self.executor = executor  # None: train here; a RayExecutor sends each run to Ray (epochs shown when it ends)
        self.data = prepare_race(spec, load_options=load_options)
        self.task = self.data.task
        counts = np.bincount(self.task.labels[self.data.splits.pool], minlength=len(self.task.classes))
        self.largest_budget = int(counts[counts > 0].min())
        self.budgets = [b for b in (4, 8, 16, 32, 64, 128, 256, 512, 1024) if b <= self.largest_budget] or [
            self.largest_budget]
        self.folder.mkdir(parents=True, exist_ok=True)
        with ResultStore(self.folder / "results.sqlite") as store:
            store.set_meta("lab", {**{k: v for k, v in spec.to_dict().items() if k in _SPEC_FIELDS},
                                   "scratch": scratch})
            if store.get_meta("data") is None:
                store.set_meta("data", self.data.describe())
        self._strips: dict[str, dict[str, Any]] = {}

    # -- opening -------------------------------------------------------------------------------
    @classmethod
    def open(cls, target: str, *, out: str | None = None, backbone: str | None = None, scratch: str | None = None,
             test_limit: int | None = None, train_options: dict[str, Any] | None = None,
             backbone_options: dict[str, Any] | None = None, load_options: dict[str, Any] | None = None,
             backbone_factory: Callable[[bool], Backbone] | None = None,
             executor: Executor | None = None) -> LabSession:
        """``target`` is a race folder (its store and settings are used) or data (a named example or a file:
        the lab keeps its runs in ``out``, by default ``runs/lab-<data>-<backbone>``, reused next time)."""
        path = Path(target)
        if path.is_dir() and (path / "results.sqlite").is_file():
            with ResultStore(path / "results.sqlite") as store:
                saved = store.get_meta("lab") or store.get_meta("spec")
                raced = (store.get_meta("spec") or {}).get("strategies", [])
            if not saved:
                raise HeadstartError(f"{path} holds no race settings; open the data instead (`headstart lab DATA`).")
            if saved.get("backbones"):
                raise HeadstartError(f"{path} races {' and '.join(saved['backbones'])} side by side, and the lab "
                                     f"shows one backbone; open the data with one of them (`headstart lab "
                                     f"{saved['data']} --backbone {saved['backbone']}`), or read the race's report.")
            base = {k: v for k, v in saved.items() if k in _SPEC_FIELDS}
            scratch = scratch or saved.get("scratch") or next((s for s in SCRATCH_OPTIONS if s in raced), "scratch")
            spec = RaceSpec(**base, strategies=["probe"], budgets=[None], seeds=1)
            return cls(path, spec, scratch, backbone=backbone_factory, load_options=load_options, executor=executor)
        from ..cli_train import DEFAULT_BACKBONE
        from ..data import load_task

        task = load_task(target, **(load_options or {}))
        name = backbone or DEFAULT_BACKBONE[task.modality]
        folder = Path(out) if out else Path("runs") / f"lab-{_slug(target)}-{_slug(name)}"
        defaults = LAB_BACKBONE_OPTIONS[task.modality]
        try:  # only where the backbone takes them (a backbone of one's own may not)
            check_backbone_options(name, defaults)
        except HeadstartError:
            defaults = {}
        shown = {**defaults, **(backbone_options or {})}
        spec = RaceSpec(target, name, strategies=["probe"], budgets=[None], seeds=1,
                        test_limit=test_limit if test_limit is not None else LAB_TEST_LIMIT,
                        train_options={**LAB_TRAIN_OPTIONS, **(train_options or {})}, backbone_options=shown)
        return cls(folder, spec, scratch or LAB_SCRATCH, backbone=backbone_factory, load_options=load_options,
                   executor=executor)

    # -- settings --------------------------------------------------------------------------------
    @property
    def n_blocks(self) -> int:
        return len(self.strip("probe")["blocks"])

    def strip(self, strategy: str) -> dict[str, Any]:
        """The architecture strip of ``strategy`` (built once per strategy)."""
        if strategy not in self._strips:
            self._strips[strategy] = strip(self.backbone, strategy, len(self.task.classes), self.spec.backbone_options)
        return self._strips[strategy]

    def check_patience(self, patience: Any) -> int | None:
        """Early stopping for the fine-tune as a browser sends it: off (None) or one of ``PATIENCE_CHOICES``."""
        if patience in (None, "", "off"):
            return None
        p = _whole(patience)
        if p is None or p not in PATIENCE_CHOICES:
            raise ValueError(f"early-stopping patience must be 'off' or one of {list(PATIENCE_CHOICES)}; got "
                             f"{patience!r}")
        return p

    def check_setting(self, budget: Any, lr: Any = None, frozen: Any = None) -> tuple[int, float | None, int | None]:
        """Validate what a browser sends; a bad value is a ``ValueError`` with the fix in its message."""
        b = _whole(budget)
        if b is None or b not in self.budgets:
            raise ValueError(f"labels per class must be one of {self.budgets}; got {budget!r}")
        rate = None
        if lr not in (None, "", "default"):
            try:
                rate = None if isinstance(lr, bool) else float(lr)
            except (TypeError, ValueError, OverflowError):
                rate = None
            if rate not in LR_CHOICES:
                raise ValueError(f"learning rate must be 'default' or one of {list(LR_CHOICES)}; got {lr!r}")
        f = None
        if frozen not in (None, ""):
            f = _whole(frozen)
            if f is None or not 0 <= f <= self.n_blocks:
                raise ValueError(f"frozen blocks must be a whole number from 0 to {self.n_blocks}; got {frozen!r}")
        return b, rate, f

    def entrants(self, frozen: int) -> list[tuple[str, str]]:
        """(role, strategy) of "Train all three": scratch, frozen (the probe) and the fine-tune the slider sets."""
        tune = finetune_for(frozen, self.n_blocks)
        return [("scratch", self.scratch), ("frozen", "probe")] + ([("finetune", tune)] if tune != "probe" else [])

    def job_spec(self, strategy: str, budget: int | None, lr: float | None = None,
                 patience: int | None = None) -> RaceSpec:
        """The one-run race a setting is: the base settings, ``lr`` and early stopping (``patience``: on validation
        accuracy, the best epoch restored) reaching the fine-tune only."""
        options = dict(self.spec.train_options)
        tunes = not create_strategy(strategy).from_scratch and strategy != "probe"
        if lr is not None and tunes:
            options[f"{strategy}.lr"] = lr
        if patience is not None and tunes:
            options[f"{strategy}.monitor"], options[f"{strategy}.patience"] = "val_acc", patience
        base = {k: v for k, v in self.spec.to_dict().items() if k in _SPEC_FIELDS}
        return RaceSpec(**{**base, "train_options": options}, strategies=[strategy], budgets=[budget], seeds=1)

    def key(self, strategy: str, budget: int | None, lr: float | None = None, seed: int = 0,
            patience: int | None = None) -> str:
        d = self.data
        return self.job_spec(strategy, budget, lr, patience).run_key(
            RunSpec(strategy, budget, seed), d.fingerprint, d.test_fingerprint, d.target_fingerprint, d.ood_fingerprint)

    # -- results ---------------------------------------------------------------------------------
    def records(self, keys: set[str] | None = None) -> list[dict[str, Any]]:
        with ResultStore(self.folder / "results.sqlite") as store:
            return store.records(keys)

    def record(self, key: str) -> dict[str, Any] | None:
        found = self.records({key})
        return found[0] if found else None

    def store_state(self) -> tuple[int, float]:
        """(runs, newest finish time): what changes when any process adds a run to the store."""
        with ResultStore(self.folder / "results.sqlite") as store:
            return store.version()

    def train(self, strategy: str, budget: int, lr: float | None, callbacks: Sequence[Callback], *,
              patience: int | None = None, lock: Callable[[Path], Any] | None = None) -> dict[str, Any]:
        """Train one setting into the store (nothing if it is there already); returns its record. ``lock``: the
        folder lock the lab's runs share (several train side by side)."""
        records = run_race(self.job_spec(strategy, budget, lr, patience), self.folder, data=self.data,
                           backbone=self.backbone, progress=False, run_callbacks=lambda run: callbacks,
                           record_grid=False, executor=self.executor, lock=lock)
        return records[0]

    def base_records(self) -> list[dict[str, Any]]:
        """Every stored run of the base settings (any strategy, budget and seed; the default learning rates):
        the race's runs in this folder and the lab's."""
        out = []
        for r in self.records():
            try:
                if r["key"] == self.key(r["strategy"], r["budget"], None, r["seed"]):
                    out.append(r)
            except HeadstartError:  # a strategy this headstart no longer knows
                continue
        return out

    def curves(self) -> dict[str, Any]:
        """Learning curves, the negative-transfer verdict and the recommendation over the base runs."""
        records = self.base_records()
        with ResultStore(self.folder / "results.sqlite") as store:
            data, raced = store.get_meta("data") or {}, (store.get_meta("spec") or {}).get("strategies") or []
        order = list(dict.fromkeys([*raced, self.scratch, "scratch", "scratch-small", "probe"]))
        strategies = order + sorted({r["strategy"] for r in records} - set(order))
        rows = summarize(records, strategies)
        verdict = negative_transfer(records)
        rec = recommend(rows, verdict)
        chance_acc = chance(data) if data else None
        return {"rows": [{**r.to_dict(), "near_chance": near_chance(r, chance_acc)} for r in rows],
                "best": {budget_label(b): s for b, s in best_per_budget(rows).items()},
                "chance": chance_acc, "verdict": verdict.message,
                "pretraining_helps": verdict.pretraining_helps,
                "recommendation": None if rec is None else rec.to_dict(),
                "chosen_on": choice_line(len(self.data.selection), len(self.data.test),
                                         self.data.test.source if self.data.test_fingerprint else None,
                                         self.data.cv_folds if self.data.choose == "cv" else None),
                "runs": len(records), "colors": {r.strategy: strategy_color(r.strategy) for r in rows}}

    def describe(self) -> dict[str, Any]:
        """What the page needs to draw its controls."""
        probe = self.strip("probe")
        with ResultStore(self.folder / "results.sqlite") as store:
            data = store.get_meta("data") or {}
        return {"data": self.task.name, "modality": self.task.modality, "classes": list(self.task.classes),
                "backbone": self.spec.backbone, "folder": str(self.folder), "scratch": self.scratch,
                "budgets": self.budgets, "largest_budget": self.largest_budget, "lr_choices": list(LR_CHOICES),
                "default_lrs": {s: create_strategy(s).default_lr for s in ("full", "partial:1")},
                "patience_choices": list(PATIENCE_CHOICES), "chance": chance(data) if data else None,
                "colors": {s: strategy_color(s) for s in
                           {self.scratch, "probe", "full", *(f"partial:{k}" for k in range(1, self.n_blocks))}},
                "settings": {"train": self.spec.train_options, "backbone": self.spec.backbone_options,
                             "test_limit": self.spec.test_limit, "scratch": self.scratch},
                "blocks": [{"name": b["name"], "params": b["params"]} for b in probe["blocks"]],
                "head": probe["head"], "n_selection": len(self.data.selection), "n_test": len(self.data.test),
                "strips": {s: self.strip(s) for s in (self.scratch, "probe", "full")}}
