"""Turn a race's records into a table, a negative-transfer verdict and a recommendation, with reasons.

Noise is estimated from the race itself: the spread of the paired (same split, same seed) accuracy
differences across seeds, and never less than the binomial standard error of a difference of two
accuracies on the shared test set. "Clearly better" means more than two noise units ahead.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

__all__ = ["Row", "TransferVerdict", "negative_transfer", "recommend", "summarize"]


@dataclass
class Row:
    strategy: str
    budget: int | None
    per_class: float
    seeds: int
    acc_mean: float
    acc_std: float
    f1_mean: float
    f1_std: float
    trainable_params: int
    seconds: float  # mean wall-clock of one run (fit)
    seconds_per_epoch: float | None
    epochs: float
    delta_l2: float
    delta_relative: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _std(values: list[float]) -> float:
    return float(np.std(values, ddof=1)) if len(values) > 1 else 0.0


def budget_label(budget: int | None) -> str:
    return "all" if budget is None else str(budget)


def _budget_order(budget: int | None) -> float:
    return math.inf if budget is None else float(budget)


def summarize(records: list[dict[str, Any]], strategies: list[str] | None = None) -> list[Row]:
    groups: dict[tuple[str, int | None], list[dict[str, Any]]] = defaultdict(list)
    for r in records:
        groups[(r["strategy"], r["budget"])].append(r)
    order = {s: i for i, s in enumerate(strategies or sorted({k[0] for k in groups}))}
    rows = []
    for (strategy, budget), rs in sorted(groups.items(), key=lambda kv: (_budget_order(kv[0][1]),
                                                                         order.get(kv[0][0], 99))):
        per_epoch = [r["seconds_per_epoch"] for r in rs if r.get("seconds_per_epoch")]
        rows.append(Row(
            strategy, budget, float(np.mean([r["per_class"] for r in rs])), len(rs),
            float(np.mean([r["test_acc"] for r in rs])), _std([r["test_acc"] for r in rs]),
            float(np.mean([r["test_macro_f1"] for r in rs])), _std([r["test_macro_f1"] for r in rs]),
            int(max(r["trainable_params"] for r in rs)), float(np.mean([r["seconds"] for r in rs])),
            float(np.mean(per_epoch)) if per_epoch else None, float(np.mean([r["epochs"] for r in rs])),
            float(np.mean([r["delta_l2"] or 0.0 for r in rs])),
            float(np.mean([r["delta_relative"] or 0.0 for r in rs])),
        ))
    return rows


@dataclass
class BudgetComparison:
    budget: int | None
    scratch_acc: float
    best_strategy: str
    best_acc: float
    difference: float  # best transfer minus scratch, mean over paired seeds
    noise: float
    helps: bool  # transfer clearly ahead (difference > 2 noise)


@dataclass
class TransferVerdict:
    comparisons: list[BudgetComparison] = field(default_factory=list)
    pretraining_helps: bool | None = None  # None: no scratch baseline in the race
    message: str = ""


def negative_transfer(records: list[dict[str, Any]]) -> TransferVerdict:
    """At each budget, the scratch baseline against the best transfer strategy, paired by seed."""
    by = defaultdict(dict)
    for r in records:
        by[(r["budget"], r["strategy"])][r["seed"]] = r
    budgets = sorted({r["budget"] for r in records}, key=_budget_order)
    transfer = sorted({r["strategy"] for r in records} - {"scratch"})
    if "scratch" not in {r["strategy"] for r in records} or not transfer:
        return TransferVerdict(message="No scratch baseline (or no transfer strategy) in this race: add 'scratch' "
                                       "to --strategies to check whether pretraining helps.")
    comps = []
    for b in budgets:
        scratch = by.get((b, "scratch"), {})
        if not scratch:
            continue
        means = {s: np.mean([r["test_acc"] for r in by[(b, s)].values()]) for s in transfer if by.get((b, s))}
        if not means:
            continue
        best = max(means, key=means.get)
        seeds = sorted(set(scratch) & set(by[(b, best)]))
        diffs = [by[(b, best)][s]["test_acc"] - scratch[s]["test_acc"] for s in seeds]
        n_test = scratch[seeds[0]]["n_test"]
        p = (means[best] + np.mean([r["test_acc"] for r in scratch.values()])) / 2
        binomial = math.sqrt(2 * p * (1 - p) / max(1, n_test))
        paired = _std(diffs) / math.sqrt(len(diffs)) if len(diffs) > 1 else 0.0
        noise = max(binomial, paired)
        diff = float(np.mean(diffs))
        comps.append(BudgetComparison(b, float(np.mean([r["test_acc"] for r in scratch.values()])), best,
                                      float(means[best]), diff, noise, diff > 2 * noise))
    helps_somewhere = any(c.helps for c in comps)
    lines = [f"at {budget_label(c.budget)}/class: best transfer ({c.best_strategy}) {c.best_acc:.3f} vs scratch "
             f"{c.scratch_acc:.3f}, difference {c.difference:+.3f} (noise ±{c.noise:.3f}): "
             + ("pretraining clearly helps" if c.helps else "within noise or worse") for c in comps]
    if not helps_somewhere:
        message = ("Pretraining is NOT helping on this data: at no label budget did any transfer strategy beat the "
                   "from-scratch baseline by more than the noise. The inherited features do not fit this task; "
                   "check the domain, or try another backbone.\n" + "\n".join(lines))
    elif all(c.helps for c in comps):
        message = "Pretraining helps at every budget.\n" + "\n".join(lines)
    else:
        weak = ", ".join(budget_label(c.budget) for c in comps if not c.helps)
        message = (f"Pretraining helps, but not at every budget (within noise at {weak} per class).\n"
                   + "\n".join(lines))
    return TransferVerdict(comps, helps_somewhere, message)


@dataclass
class Recommendation:
    strategy: str
    budget: int | None
    reasons: list[str]


def recommend(rows: list[Row], verdict: TransferVerdict) -> Recommendation | None:
    """At the largest budget raced: the most accurate strategy, or a cheaper one that is within noise of it."""
    if not rows:
        return None
    top_budget = max({r.budget for r in rows}, key=_budget_order)
    at = [r for r in rows if r.budget == top_budget]
    best = max(at, key=lambda r: r.acc_mean)
    noise = max([c.noise for c in verdict.comparisons if c.budget == top_budget] or [best.acc_std, 0.005])
    tied = [r for r in at if best.acc_mean - r.acc_mean <= noise]
    choice = min(tied, key=lambda r: (r.trainable_params, r.seconds))
    reasons = [f"at {budget_label(top_budget)} labels per class (the most this race tried), {best.strategy} scored "
               f"highest: {best.acc_mean:.3f} ± {best.acc_std:.3f} test accuracy over {best.seeds} seed(s)"]
    if choice is not best:
        reasons.append(f"{choice.strategy} is within noise of it ({choice.acc_mean:.3f}, noise ±{noise:.3f}) with "
                       f"{choice.trainable_params:,} trainable parameters instead of {best.trainable_params:,} and "
                       f"{choice.seconds:.0f}s per run instead of {best.seconds:.0f}s, so it is the better buy")
    if verdict.pretraining_helps is False:
        reasons.append("but pretraining is not helping here (see the negative-transfer check): treat this as a "
                       "from-scratch problem, or find a backbone closer to your data")
    return Recommendation(choice.strategy, top_budget, reasons)
