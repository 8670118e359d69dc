"""Learning curves and training curves as PNG (matplotlib, headless)."""

from __future__ import annotations

import math
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib import colormaps
from matplotlib.figure import Figure  # figures drawn to files, without pyplot: no backend chosen for the process
from matplotlib.ticker import FixedFormatter, FixedLocator, NullFormatter

from ..race.analysis import Row
from .colors import CHANCE_COLOR, strategy_color

__all__ = ["cost_accuracy", "learning_curve", "training_curves"]


def _by_strategy(rows: list[Row]) -> dict[str, list[Row]]:
    """Each strategy's rows, smallest budget first."""
    by: dict[str, list[Row]] = defaultdict(list)
    for r in rows:
        by[r.strategy].append(r)
    return {s: sorted(rs, key=lambda r: r.per_class) for s, rs in by.items()}


def _measured(rows: list[Row]) -> tuple[str, str, str]:
    """Which accuracy the plots show: test, or (no test part) the cross-validated one, named as such."""
    if rows and all(math.isnan(r.acc_mean) for r in rows):
        return "sel_acc_mean", "sel_acc_std", "cross-validated accuracy (no test part; it chose, so optimistic)"
    return "acc_mean", "acc_std", "test accuracy"


def learning_curve(rows: list[Row], path: Path, title: str, chance: float | None = None) -> Path:
    """Test accuracy vs labelled examples per class (log x), one line per strategy, a band for ±1 std,
    and the chance (majority-class) rate as a dotted line."""
    fig = Figure(figsize=(9.5, 4.6), dpi=110)
    ax = fig.subplots()
    mean, std, what = _measured(rows)
    for strategy, rs in _by_strategy(rows).items():
        x = np.array([r.per_class for r in rs])
        y = np.array([getattr(r, mean) for r in rs])
        s = np.array([getattr(r, std) for r in rs])
        (line,) = ax.plot(x, y, marker="o", linestyle="--" if rs[0].from_scratch else "-", label=strategy,
                          color=strategy_color(strategy))
        ax.fill_between(x, y - s, y + s, color=line.get_color(), alpha=0.15)
    if chance is not None:
        ax.axhline(chance, color=CHANCE_COLOR, linestyle=(0, (4, 3)), linewidth=1.2,
                   label=f"chance (majority class) {chance:.3f}")
    xs = sorted({round(r.per_class) for r in rows})
    if xs and xs[0] == 0:  # a zero-label budget (zero-shot): linear from 0 to 1, log beyond
        ax.set_xscale("symlog", linthresh=1, linscale=0.5)
    else:
        ax.set_xscale("log")
    ax.xaxis.set_major_locator(FixedLocator(xs))
    ax.xaxis.set_major_formatter(FixedFormatter([str(v) for v in xs]))
    ax.xaxis.set_minor_formatter(NullFormatter())  # log axes label minor ticks too (2×10¹...): noise here
    ax.set_xlabel("labelled examples per class, validation included (log scale" + (", 0 at the left)" if xs and
                                                                                     xs[0] == 0 else ")"))
    ax.set_ylabel(f"{what} (mean ± std over seeds)", fontsize=9 if mean != "acc_mean" else None)
    ax.set_title(title, fontsize=10, wrap=True)
    ax.grid(True, alpha=0.3)
    ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0, fontsize=8)  # beside: never over a point
    fig.tight_layout()
    fig.savefig(path)
    return path


def training_curves(records: list[dict[str, Any]], strategy: str, path: Path) -> Path | None:
    """Validation loss and accuracy per epoch for every run of one strategy; a star at the restored epoch."""
    runs = [r for r in records if r["strategy"] == strategy and r["curve"]]
    if not runs:
        return None
    fig = Figure(figsize=(11.5, 3.9), dpi=100)
    ax_loss, ax_acc = fig.subplots(1, 2)
    cmap = colormaps["viridis"]
    budgets = sorted({r["per_class"] for r in runs})
    styles = ["-", "--", "-.", (0, (1, 1))]
    for r in sorted(runs, key=lambda r: (r["per_class"], r["seed"])):
        color = cmap(budgets.index(r["per_class"]) / max(1, len(budgets) - 1))
        style = styles[r["seed"] % len(styles)]
        epochs = np.array([c["epoch"] for c in r["curve"]]) if len({c["stage"] for c in r["curve"]}) == 1 else \
            np.arange(len(r["curve"]))  # several stages: count epochs across them
        budget = "all" if r["budget"] is None else r["budget"]
        label = f"{budget}/class, seed {r['seed']}"
        train_loss = [np.nan if c["train_loss"] is None else c["train_loss"] for c in r["curve"]]  # None: epoch 0
        ax_loss.plot(epochs, train_loss, color=color, alpha=0.35, linestyle=":")
        ax_loss.plot(epochs, [c["val_loss"] for c in r["curve"]], color=color, alpha=0.8, linestyle=style)
        ax_acc.plot(epochs, [c["val_acc"] for c in r["curve"]], color=color, alpha=0.8, linestyle=style, label=label)
        if r["best_epoch"] is not None:
            i = [k for k, c in enumerate(r["curve"]) if c["epoch"] == r["best_epoch"]][-1]
            ax_loss.plot(epochs[i], r["curve"][i]["val_loss"], marker="*", color=color, markersize=11)
            ax_acc.plot(epochs[i], r["curve"][i]["val_acc"], marker="*", color=color, markersize=11)
    ax_loss.set_title(f"{strategy}: loss\n(dotted: training; other lines: validation)", fontsize=9)
    kept = ("the epoch whose weights the run kept (early stopping's best)" if any(
        r["stop_reason"] in ("early_stopped", "max_epochs") for r in runs) else "the last epoch, whose weights it kept")
    ax_acc.set_title(f"{strategy}: validation accuracy\n★ = {kept}", fontsize=9)
    ax_loss.set_ylabel("cross-entropy")
    ax_acc.set_ylabel("validation accuracy")
    for ax in (ax_loss, ax_acc):
        ax.set_xlabel("epoch (an epoch 0 is the starting weights, scored before training)")
        ax.grid(True, alpha=0.3)
    ax_acc.legend(fontsize=7, ncol=2 if len(runs) > 6 else 1, loc="upper left", bbox_to_anchor=(1.02, 1.0),
                  borderaxespad=0)  # beside the axes: never over a curve
    fig.tight_layout()
    fig.savefig(path)
    return path


def cost_accuracy(rows: list[Row], path: Path) -> Path:
    """What each strategy costs against what it buys: seconds per run (log x) against test accuracy,
    one marker per strategy and budget, labelled with the budget."""
    fig = Figure(figsize=(9.5, 4.4), dpi=100)
    ax = fig.subplots()
    mean, _, what = _measured(rows)
    for strategy, rs in _by_strategy(rows).items():
        ax.plot([r.seconds for r in rs], [getattr(r, mean) for r in rs], marker="o", linestyle="-", alpha=0.8,
                label=strategy, color=strategy_color(strategy))
        for r in rs:
            ax.annotate("all" if r.budget is None else str(r.budget), (r.seconds, getattr(r, mean)), fontsize=7,
                        xytext=(3, 3), textcoords="offset points")
    ax.set_xscale("log")
    ax.set_xlabel("seconds per run (fit, log scale); labels: labelled examples per class")
    ax.set_ylabel(f"{what} (mean over seeds)", fontsize=9 if mean != "acc_mean" else None)
    ax.set_title("cost against accuracy")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0)
    fig.tight_layout()
    fig.savefig(path)
    return path
