"""Turn a race's records into a table, a negative-transfer verdict and a recommendation, with reasons.

Every run is scored on two held-out parts. Everything that *chooses* uses the selection scores only:
the best strategy per budget, the recommendation, and which transfer strategy and which from-scratch
option the negative-transfer check puts against each other. Everything that is *reported* uses the
test scores: every cell of the table, the chosen strategy's accuracy, and the verdict itself (the
chosen transfer strategy against the chosen from-scratch option, paired by seed, on test). Choosing
on the numbers one reports would bias them upwards (the maximum of noisy estimates).

Noise is estimated from the race itself: the spread of the paired (same draws, same seed) accuracy
differences across seeds, and never less than the binomial standard error of a difference of two
accuracies on the shared examples. "Clearly better" means more than two noise units ahead.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from functools import cmp_to_key
from typing import Any

import numpy as np

__all__ = ["CHOICE_LINE", "Recommendation", "Row", "TransferVerdict", "accuracy_text", "best_per_budget",
           "budget_label", "choice_line", "complete_budgets", "missing_cells",
           "negative_transfer", "recommend", "summarize"]

CLEARLY = 2.0  # "clearly better": more than this many noise units ahead


@dataclass
class Row:
    strategy: str
    budget: int | None
    per_class: float
    seeds: int
    from_scratch: bool
    sel_acc_mean: float  # selection accuracy: what chooses
    sel_acc_std: float
    acc_mean: float  # test accuracy: only reported
    acc_std: float
    f1_mean: float  # test macro-F1
    f1_std: float
    n_selection: int
    n_test: int
    trainable_params: int
    seconds: float  # mean wall-clock of one run (fit)
    seconds_per_epoch: float | None
    epochs: float
    delta_l2: float
    delta_relative: float
    predict_ms: float | None = None  # milliseconds to predict one test example
    cross_validated: bool = False  # the selection accuracy is out-of-fold within the runs' labels (tiny data)
    #: pretrained competence kept (``race/forgetting.py``): mean and spread over seeds, None where not measured (a
    #: body that did not move, a baseline from scratch); drift: 1 − cosine of its features to the pretrained ones
    kept_mean: float | None = None
    kept_std: float | None = None
    drift_mean: float | None = None
    kept_what: str | None = None
    #: the deployment domain (``--ood-test``: its labelled test set, only reported; ``--target``: importance-weighted
    #: validation and the prediction entropy on its examples, which need none of its labels)
    ood_mean: float | None = None
    ood_std: float | None = None
    iwv_mean: float | None = None
    target_entropy: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return _no_nan(asdict(self))


def _kept(rs: list[dict[str, Any]]) -> tuple[float | None, float | None, float | None, str | None]:
    """Mean and spread of ``kept``, mean drift and what ``kept`` measures, over the runs that measured it."""
    measured = [r["forgetting"] for r in rs if (r.get("forgetting") or {}).get("kept") is not None]
    drifts = [r["forgetting"]["drift"] for r in rs if "drift" in (r.get("forgetting") or {})]
    if not measured and not drifts:
        return None, None, None, None
    kept = [m["kept"] for m in measured]
    return (float(np.mean(kept)) if kept else None, _std(kept) if kept else None,
            float(np.mean(drifts)) if drifts else None, measured[0]["what"] if measured else None)


def _measured(rs: list[dict[str, Any]], key: str, spread: bool = False) -> tuple[float | None, ...]:
    """Mean (and spread) of a score only some races measure; None where none of the runs did."""
    values = [r[key] for r in rs if r.get(key) is not None]
    mean = float(np.mean(values)) if values else None
    return (mean, _std(values) if values else None) if spread else (mean,)


def _no_nan(d: dict[str, Any]) -> dict[str, Any]:
    """A score that was not measured (NaN) as None, which JSON can carry."""
    return {k: None if isinstance(v, float) and math.isnan(v) else v for k, v in d.items()}


def _std(values: list[float | None]) -> float:
    """Sample spread (0 for one value; NaN when there are no scores: a race without a test part)."""
    values = [v for v in values if v is not None]
    if not values:
        return math.nan
    return float(np.std(values, ddof=1)) if len(values) > 1 else 0.0


def accuracy_text(mean: float, std: float | None = None) -> str:
    """``0.812 ± 0.010``, or a dash for a score that was not measured (no test part)."""
    if math.isnan(mean):
        return "—"
    return f"{mean:.3f}" if std is None else f"{mean:.3f} ± {std:.3f}"


def budget_label(budget: int | None) -> str:
    return "all" if budget is None else str(budget)


def _budget_order(budget: int | None) -> float:
    return math.inf if budget is None else float(budget)


def _mean(rs: list[dict[str, Any]], key: str) -> float:
    values = [r[key] for r in rs if r[key] is not None]
    return float(np.mean(values)) if values else math.nan


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
            strategy, budget, _mean(rs, "per_class"), len(rs), bool(rs[0].get("from_scratch")),
            _mean(rs, "sel_acc"), _std([r["sel_acc"] for r in rs]),
            _mean(rs, "test_acc"), _std([r["test_acc"] for r in rs]),
            _mean(rs, "test_macro_f1"), _std([r["test_macro_f1"] for r in rs]),
            int(rs[0]["n_selection"]), int(rs[0]["n_test"]),
            int(max(r["trainable_params"] for r in rs)), _mean(rs, "seconds"),
            float(np.mean(per_epoch)) if per_epoch else None, _mean(rs, "epochs"),
            float(np.mean([r["delta_l2"] or 0.0 for r in rs])),
            float(np.mean([r["delta_relative"] or 0.0 for r in rs])),
            _mean(rs, "predict_ms_per_example") if all(r.get("predict_ms_per_example") is not None for r in rs)
            else None,
            "cv" in rs[0],
            *_kept(rs),
            *_measured(rs, "ood_acc", spread=True), *_measured(rs, "iwv_acc"), *_measured(rs, "target_entropy"),
        ))
    return rows


def best_per_budget(rows: list[Row]) -> dict[int | None, str]:
    """The strategy with the highest mean *selection* accuracy at each budget."""
    return {b: max((r for r in rows if r.budget == b), key=lambda r: r.sel_acc_mean).strategy
            for b in {r.budget for r in rows}}


CHOICE_LINE = ("Chosen on {sel:,} selection examples; test accuracy on {test:,} other held-out examples{source} is "
               "only reported, never used to choose.")
CV_LINE = ("Chosen by {folds}-fold cross-validation within each run's labels (the data are too small for a selection "
           "part: every label trains in some fits and scores in another, and the seeds repeat it with other folds); ")


def choice_line(n_selection: int, n_test: int, test_source: str | None = None, cv_folds: int | None = None) -> str:
    """The one line that says which examples chose and which were only measured."""
    source = f" (from {test_source})" if test_source else ""
    if not cv_folds:
        return CHOICE_LINE.format(sel=n_selection, test=n_test, source=source)
    if not n_test:
        return CV_LINE.format(folds=cv_folds) + ("there is no test part, so the accuracies shown are the "
                                                 "cross-validated ones that chose, and optimistic.")
    return CV_LINE.format(folds=cv_folds) + f"test accuracy on {n_test:,} held-out examples{source} is only " \
        "reported, never used to choose."


def _noise(a: list[float], b: list[float], n: int) -> float:
    """Paired noise of mean(a - b): the spread of the differences, at least the binomial error on ``n`` examples."""
    p = (float(np.mean(a)) + float(np.mean(b))) / 2
    binomial = math.sqrt(2 * p * (1 - p) / max(1, n))
    diffs = [x - y for x, y in zip(a, b)]
    paired = _std(diffs) / math.sqrt(len(diffs)) if len(diffs) > 1 else 0.0
    return max(binomial, paired)


@dataclass
class BudgetComparison:
    budget: int | None
    scratch_strategy: str  # the from-scratch option chosen on selection data
    scratch_acc: float  # its test accuracy
    best_strategy: str  # the transfer strategy chosen on selection data
    best_acc: float  # its test accuracy
    difference: float  # transfer minus scratch, test accuracy, mean over paired seeds
    noise: float
    helps: bool  # transfer clearly ahead on test (difference > CLEARLY × noise)


@dataclass
class TransferVerdict:
    comparisons: list[BudgetComparison] = field(default_factory=list)
    pretraining_helps: bool | None = None  # None: no from-scratch baseline in the race
    message: str = ""


def _chosen(by: dict, budget: int | None, names: set[str]) -> str | None:
    means = {s: np.mean([r["sel_acc"] for r in by[(budget, s)].values()]) for s in names if by.get((budget, s))}
    return max(sorted(means), key=means.get) if means else None


def negative_transfer(records: list[dict[str, Any]]) -> TransferVerdict:
    """At each budget, the best from-scratch option against the best transfer strategy (both chosen on
    selection data), compared on test data, paired by seed."""
    by: dict[tuple[int | None, str], dict[int, dict[str, Any]]] = defaultdict(dict)
    for r in records:
        by[(r["budget"], r["strategy"])][r["seed"]] = r
    budgets = sorted({r["budget"] for r in records}, key=_budget_order)
    scratch = {r["strategy"] for r in records if r.get("from_scratch")}
    transfer = {r["strategy"] for r in records} - scratch
    if all(r["test_acc"] is None for r in records):
        return TransferVerdict(message="No test part in this race (the data are too small to hold one out), so "
                                       "whether pretraining helps cannot be measured here; give a test file (--test).")
    if not scratch or not transfer:
        return TransferVerdict(message="No from-scratch baseline (or no transfer strategy) in this race: add "
                                       "'scratch' or 'scratch-small' to --strategies to check whether pretraining "
                                       "helps.")
    comps = []
    for b in budgets:
        s_name, t_name = _chosen(by, b, scratch), _chosen(by, b, transfer)
        if s_name is None or t_name is None:
            continue
        seeds = sorted(set(by[(b, s_name)]) & set(by[(b, t_name)]))
        if not seeds:
            continue
        t_acc = [by[(b, t_name)][s]["test_acc"] for s in seeds]
        s_acc = [by[(b, s_name)][s]["test_acc"] for s in seeds]
        noise = _noise(t_acc, s_acc, by[(b, s_name)][seeds[0]]["n_test"])
        diff = float(np.mean(t_acc) - np.mean(s_acc))
        comps.append(BudgetComparison(b, s_name, float(np.mean(s_acc)), t_name, float(np.mean(t_acc)), diff, noise,
                                      diff > CLEARLY * noise))
    helps_somewhere = any(c.helps for c in comps)
    lines = [f"at {budget_label(c.budget)}/class: {c.best_strategy} {c.best_acc:.3f} vs {c.scratch_strategy} "
             f"{c.scratch_acc:.3f} on test, difference {c.difference:+.3f} (noise ±{c.noise:.3f}): "
             + ("pretraining clearly helps" if c.helps else
                "from scratch is clearly better: negative transfer" if c.difference < -CLEARLY * c.noise else
                "within noise") for c in comps]
    rule = (f"(each side chosen on selection data; compared on test; \"clearly\" means more than {CLEARLY:g} noise "
            "units ahead)")
    if not comps:
        message = "No budget has both a from-scratch and a transfer run yet."
    elif not helps_somewhere:
        message = ("Pretraining is NOT helping on this data: at no label budget did the best transfer strategy beat "
                   "the best from-scratch option by more than the noise. The inherited features do not fit this task; "
                   "check the domain, or try another backbone.")
    elif all(c.helps for c in comps):
        message = "Pretraining helps at every budget."
    else:
        weak = ", ".join(budget_label(c.budget) for c in comps if not c.helps)
        message = f"Pretraining helps, but not at every budget (within noise at {weak} per class)."
    return TransferVerdict(comps, helps_somewhere if comps else None, "\n".join([f"{message} {rule}", *lines]))


def _selection_noise(best: Row) -> float:
    """The noise of the best row's selection accuracy: the binomial error on its examples, or its seeds' spread."""
    p = best.sel_acc_mean
    return max(math.sqrt(2 * p * (1 - p) / max(1, best.n_selection)),
               best.sel_acc_std / math.sqrt(best.seeds) if best.seeds > 1 else 0.0)


@dataclass
class Recommendation:
    strategy: str
    budget: int | None
    reasons: list[str]
    selection_acc: float = 0.0
    test_acc: float = 0.0
    test_std: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return _no_nan(asdict(self))


#: when entries are level on selection, the tie-break: what a user pays to train (seconds per run), then to use
#: (milliseconds per prediction), then to store (trainable parameters); a cost within 10% of another's counts as
#: the same, so the next one decides
TIE_BREAK = "the least seconds per run, then milliseconds per prediction, then trainable parameters (10% apart)"


def _cheaper(a: Row, b: Row) -> int:
    """``TIE_BREAK`` as a comparison: negative when ``a`` costs less than ``b``."""
    for x, y in ((a.seconds, b.seconds), (a.predict_ms, b.predict_ms)):
        if x is None or y is None or max(x, y) <= 1.1 * min(x, y):
            continue  # within 10%: the same cost; the next one decides
        return -1 if x < y else 1
    return (a.trainable_params > b.trainable_params) - (a.trainable_params < b.trainable_params)


def complete_budgets(rows: list[Row], expected: dict[tuple[str, int | None], int] | None) -> list[int | None]:
    """The budgets at which every expected entry has all its seeds (``expected``: (entry, budget) -> seeds; None:
    every budget with a row counts as complete)."""
    budgets = sorted({r.budget for r in rows}, key=_budget_order)
    if expected is None:
        return budgets
    have = {(r.strategy, r.budget): r.seeds for r in rows}
    return [b for b in budgets if all(have.get(cell, 0) >= seeds for cell, seeds in expected.items() if cell[1] == b)]


def missing_cells(rows: list[Row], expected: dict[tuple[str, int | None], int] | None) -> list[str]:
    """The expected (entry, budget) cells without all their seeds, as ``full at 32/class (1 of 3 seeds)``."""
    if expected is None:
        return []
    have = {(r.strategy, r.budget): r.seeds for r in rows}
    return [f"{entry} at {budget_label(budget)}/class ({have.get((entry, budget), 0)} of {seeds} seeds)"
            for (entry, budget), seeds in expected.items() if have.get((entry, budget), 0) < seeds]


def recommend(rows: list[Row], verdict: TransferVerdict,
              expected: dict[tuple[str, int | None], int] | None = None) -> Recommendation | None:
    """At the largest budget every entry has finished (``expected``: the grid's cells; without it, the largest
    raced): the strategy with the best selection accuracy, or one within selection noise of it that costs less
    (``TIE_BREAK``). Its test accuracy is reported, never used."""
    if not rows:
        return None
    complete = complete_budgets(rows, expected)
    if not complete:
        return None
    top_budget = complete[-1]
    at = [r for r in rows if r.budget == top_budget]
    best = max(at, key=lambda r: r.sel_acc_mean)
    # n_selection: the held-out examples, or under cross-validation the run's labels (each scored once)
    noise = _selection_noise(best)
    tied = [r for r in at if best.sel_acc_mean - r.sel_acc_mean <= noise]
    choice = min(tied, key=cmp_to_key(_cheaper))
    on = "in cross-validation within its labels" if best.cross_validated else "on the selection examples"
    raced = max({r.budget for r in rows}, key=_budget_order)
    where = ("the most this race tried" if top_budget == raced else
             f"the largest budget every entry has finished; {budget_label(raced)} is incomplete")
    reasons = [f"at {budget_label(top_budget)} labels per class ({where}), {best.strategy} scored "
               f"highest {on}: {best.sel_acc_mean:.3f} over {best.seeds} seed(s)"]
    if choice is not best:
        how = "cross-validated" if best.cross_validated else "on selection"
        costs = [f"{choice.seconds:.0f}s per run instead of {best.seconds:.0f}s"]
        if choice.predict_ms is not None and best.predict_ms is not None:
            costs.append(f"{choice.predict_ms:.2f} ms per prediction instead of {best.predict_ms:.2f}")
        costs.append(f"{choice.trainable_params:,} trainable parameters instead of {best.trainable_params:,}")
        reasons.append(f"{choice.strategy} is within noise of it {how} ({choice.sel_acc_mean:.3f}, noise "
                       f"±{noise:.3f}) and costs less by the tie-break ({TIE_BREAK}): {', '.join(costs)}")
    if math.isnan(choice.acc_mean):
        reasons.append(f"{choice.strategy}'s accuracy on unseen examples is not measured: there is no test part "
                       "(give a test file, --test)")
    else:
        reasons.append(f"{choice.strategy}'s test accuracy, measured after the choice: {choice.acc_mean:.3f} ± "
                       f"{choice.acc_std:.3f}")
    if verdict.pretraining_helps is False:
        reasons.append("but pretraining is not helping here (see the negative-transfer check): treat this as a "
                       "from-scratch problem, or find a backbone closer to your data")
    return Recommendation(choice.strategy, top_budget, reasons, choice.sel_acc_mean, choice.acc_mean, choice.acc_std)
