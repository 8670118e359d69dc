"""What a report says about one strategy and about the race's setting: chance, stop reasons, the chosen
strategy's confusion matrix, per-class scores and misclassified examples, and how to reproduce the race."""

from __future__ import annotations

import math
import platform
import shlex
from collections import Counter
from typing import Any

import numpy as np

from ..race.analysis import CLEARLY, Row, budget_label

__all__ = ["chance", "class_report", "epoch_cap_warning", "loss_terms", "misclassified", "near_chance", "noise_rule",
           "reproduce_command", "stop_reasons", "versions"]


def chance(data: dict[str, Any]) -> float | None:
    """Test accuracy of always predicting the most frequent test class."""
    labels = data.get("test_labels")
    return float(np.bincount(labels).max() / len(labels)) if labels else None


def near_chance(row: Row, chance_acc: float | None) -> bool:
    """Not clearly above chance: within ``CLEARLY`` binomial errors of the majority-class rate."""
    if chance_acc is None:
        return False
    noise = math.sqrt(max(chance_acc * (1 - chance_acc), 1e-12) / max(1, row.n_test))
    return row.acc_mean - chance_acc <= CLEARLY * noise


def stop_reasons(records: list[dict[str, Any]], strategy: str, budget: int | None) -> str:
    counts = Counter(r["stop_reason"] for r in records if r["strategy"] == strategy and r["budget"] == budget)
    return ", ".join(f"{reason.replace('_', ' ')} ×{n}" for reason, n in sorted(counts.items()))


def loss_terms(records: list[dict[str, Any]], strategy: str, budget: int | None) -> str:
    """The parts of the loss at the last epoch (the data term and each term's weighted value), mean over seeds;
    empty for runs without terms."""
    last = [r["curve"][-1]["terms"] for r in records if r["strategy"] == strategy and r["budget"] == budget
            and r.get("curve") and r["curve"][-1].get("terms")]
    if not last:
        return ""
    names = list(dict.fromkeys(n for parts in last for n in parts))
    return "loss at the last epoch: " + ", ".join(
        f"{n} {np.mean([parts[n] for parts in last if n in parts]):.4g}" for n in names)


def diverging_runs(records: list[dict[str, Any]]) -> str | None:
    """Runs whose training loss ended well above where it began (a rate too high for them), in one sentence."""
    found = []
    for r in records:
        losses = [c["train_loss"] for c in r.get("curve") or [] if c.get("train_loss") is not None]
        if len(losses) >= 3 and losses[-1] > 1.5 * min(losses[:2]):
            found.append(f"{r['strategy']} at {budget_label(r['budget'])}/class seed {r['seed']}")
    if not found:
        return None
    return (f"{len(found)} run(s) diverged, their training loss ending well above where it began: "
            f"{', '.join(found[:8])}{' …' if len(found) > 8 else ''}. Lower the learning rate (--set NAME.lr=...).")


def timing_caveat(records: list[dict[str, Any]]) -> str | None:
    """A caveat when seeds of one cell took very different times: the machine was busy, the seconds are rough."""
    spreads = []
    cells: dict[tuple[str, Any], list[float]] = {}
    for r in records:
        if r.get("seconds"):
            cells.setdefault((r["strategy"], r["budget"]), []).append(r["seconds"])
    for (strategy, budget), seconds in cells.items():
        if len(seconds) > 1 and min(seconds) > 0.5 and max(seconds) > 2 * min(seconds):
            spreads.append((max(seconds) / min(seconds), strategy, budget))
    if not spreads:
        return None
    ratio, strategy, budget = max(spreads)
    return (f"Timings are noisy in this race: one cell's seeds took up to {ratio:.1f}× as long as each other "
            f"({strategy} at {budget_label(budget)}/class), as on a machine busy with other work; read seconds as "
            "rough, and compare costs side by side in one run.")


def epoch_cap_warning(records: list[dict[str, Any]]) -> str | None:
    capped = [r for r in records if r["stop_reason"] == "max_epochs"]
    if not capped:
        return None
    names = ", ".join(sorted({r["strategy"] for r in capped}))
    return (f"{len(capped)} of {len(records)} runs stopped at the epoch cap, not by early stopping ({names}): they "
            "may be under-trained. Raise --epochs (or --set epochs=N) and re-run; finished runs of other settings are "
            "kept.")


def _runs_of(records: list[dict[str, Any]], strategy: str, budget: int | None) -> list[dict[str, Any]]:
    return sorted((r for r in records if r["strategy"] == strategy and r["budget"] == budget and r.get("test_pred")),
                  key=lambda r: r["seed"])


def class_report(records: list[dict[str, Any]], data: dict[str, Any], strategy: str,
                 budget: int | None) -> dict[str, Any] | None:
    """Confusion matrix and per-class precision, recall and F1 on test, pooled over the seeds' runs."""
    from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

    runs = _runs_of(records, strategy, budget)
    if not runs or not data.get("test_labels"):
        return None
    k = len(data["classes"])
    truth = np.concatenate([data["test_labels"]] * len(runs))
    pred = np.concatenate([r["test_pred"] for r in runs])
    p, r, f, support = precision_recall_fscore_support(truth, pred, labels=list(range(k)), zero_division=0)
    return {"seeds": len(runs), "matrix": confusion_matrix(truth, pred, labels=list(range(k))).tolist(),
            "per_class": [{"class": c, "precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]),
                           "support": int(support[i] // len(runs))} for i, c in enumerate(data["classes"])]}


def misclassified(records: list[dict[str, Any]], data: dict[str, Any], strategy: str, budget: int | None,
                  limit: int = 8) -> list[dict[str, str]]:
    """A few test examples the first seed's run got wrong: preview, true and predicted class."""
    runs = _runs_of(records, strategy, budget)
    if not runs or not data.get("test_preview"):
        return []
    classes, truth = data["classes"], data["test_labels"]
    wrong = [i for i, (t, p) in enumerate(zip(truth, runs[0]["test_pred"])) if t != p]
    pred = runs[0]["test_pred"]
    return [{"preview": data["test_preview"][i], "true": classes[truth[i]], "predicted": classes[pred[i]]}
            for i in wrong[:limit]]


def noise_rule(rows: list[Row]) -> str:
    n = rows[0].n_test if rows else 0
    return (f"Noise is the larger of the binomial standard error of a difference of two accuracies on the {n:,} test "
            "examples and the spread of the paired (same draws, same seed) differences divided by √seeds; "
            f"\"clearly\" means more than {CLEARLY:g} noise units, and a strategy within that of the majority-class "
            "rate is marked as at chance.")


def gap_line(gap: dict[str, Any]) -> str:
    """The deployment gap (``race/domains.py``) in words a user reads."""
    a = gap["a_distance"]
    words = ("indistinguishable" if a < 0.2 else "close" if a < 0.8 else "clearly apart" if a < 1.6
             else "almost entirely separable")
    against = "the --target examples" if gap["against"] == "target" else "the --ood-test examples"
    return (f"Deployment gap between the labelled data and {against}: proxy A-distance {a:.2f} ({words}; 0 when a "
            f"domain classifier cannot tell them apart, 2 when it always can), MMD {gap['mmd']:.3f} (0: the same "
            f"distribution), on the pretrained features of {gap['n_labelled']:,} and {gap['n_deployment']:,} "
            "examples. The advisor's gap is another one: between the data and the backbone's pretraining.")


def versions() -> dict[str, str]:
    import sklearn
    import torch
    import transformers

    from .. import __version__

    return {"headstart": __version__, "python": platform.python_version(), "torch": torch.__version__,
            "transformers": transformers.__version__, "scikit-learn": sklearn.__version__,
            "machine": f"{platform.machine()}, {platform.system()}"}


def reproduce_command(spec: dict[str, Any], out: str) -> str:
    """The ``headstart compare`` command that rebuilds this grid (it resumes: finished runs are reused)."""
    picks = ["--backbones", ",".join(spec["backbones"])] if spec.get("backbones") else ["--backbone", spec["backbone"]]
    args = ["headstart", "compare", spec["data"], *picks,
            "--strategies", ",".join(spec["strategies"]),
            "--budgets", ",".join(budget_label(b) for b in spec["budgets"]), "--seeds", str(spec["seeds"]),
            "--split-seed", str(spec["split_seed"])]
    if spec.get("choose") == "cv":
        args += ["--choose", "cv", "--cv-folds", str(spec.get("cv_folds", 5))]
    if spec.get("test"):
        args += ["--test", spec["test"]]
    for key, flag in (("target", "--target"), ("ood_test", "--ood-test")):
        if spec.get(key):
            args += [flag, spec[key]]
    if spec.get("reference", "auto") != "auto":
        args += ["--reference", spec["reference"]]
    if spec.get("test_limit"):
        args += ["--test-limit", str(spec["test_limit"])]
    for key, value in (spec.get("backbone_options") or {}).items():
        args += [f"--{key.replace('_', '-')}", str(value)]
    for key, value in (spec.get("train_options") or {}).items():
        shown = ",".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)
        args += ["--set", f"{key}={'none' if value is None else shown}"]
    return shlex.join([*args, "--out", out])
