"""``advise``: which recipe to start with, from frozen features only, in about a minute.

It measures how many labels per class there are, and how far the data are from the backbone's
pretraining, with two signals computed on a stratified subset:

- LogME (You et al., ICML 2021): the evidence that a linear model on the frozen features explains
  the labels, for the pretrained backbone and for its random-init twin;
- a quick probe-vs-scratch: cross-validated logistic regression on the pretrained features against
  the same on the random-init twin's features (a from-scratch model's starting point).

The data size × domain gap table then gives the recipe. Its lines and recipes are the ones that agreed
with most races of ``probe``, ``partial:2`` and ``full`` on the named examples (``benchmarks/advisor.py``,
BENCHMARKS.md "The advisor, calibrated against the race"): with fewer than 32 labels per class and
features that already remove at least 40% of the random twin's errors, a linear probe; otherwise a
full fine-tune at a small learning rate, early-stopped on validation. ``partial:2``, the textbook answer
for few labels far from pretraining, was the race's pick once in fifteen (as the cheaper entry within
``full``'s noise), and behind ``full`` on selection accuracy in all fifteen.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from ..backbones import create_backbone
from ..data import Task, budget_indices, make_splits
from ..train import AdaptedModel, FeatureCache

__all__ = ["Advice", "advise", "decide", "logme"]

# Both lines are fitted to races (BENCHMARKS.md, "The advisor, calibrated against the race": 12 of 15 example ×
# budget points agree, 9 of 15 when each example is left out of its own fit); the race afterwards says whether
# the advice held on the user's data.
SMALL_PER_CLASS = 32  # below this many labels per class (the recipe's, or the pool's median), the data count as small
# A pretrained probe that removes >= 40% of the errors of a probe on the random-init twin's features counts as
# "close". Random transformer features are already a bag-of-words random projection (0.58 on movie reviews),
# so even 40% is a modest bar: movie reviews and handwritten digits stay below it, topics and tweets pass it.
CLOSE_ERROR_REDUCTION = 0.40


def logme(features: np.ndarray, labels: np.ndarray) -> float:
    """Log maximum evidence per example, averaged over one-vs-rest targets (fixed-point iteration)."""
    f = features.astype(np.float64)
    n, d = f.shape
    u, s, _ = np.linalg.svd(f, full_matrices=False)
    sigma = s**2
    evidences = []
    for c in np.unique(labels):
        y = (labels == c).astype(np.float64)
        x = u.T @ y
        x2 = x**2
        rest = float(y @ y - x2.sum())  # the part of y outside the features' span
        alpha, beta = 1.0, 1.0
        for _ in range(100):
            t = alpha / beta
            gamma = float((sigma / (sigma + t)).sum())
            m2 = float((sigma * x2 / (t + sigma) ** 2).sum())
            res2 = float((x2 / (1 + sigma / t) ** 2).sum()) + rest
            alpha, beta = gamma / (m2 + 1e-5), (n - gamma) / (res2 + 1e-5)
            if abs(alpha / beta - t) / t <= 1e-3:
                break
        evidence = (d / 2 * np.log(alpha) + n / 2 * np.log(beta) - 0.5 * np.sum(np.log(alpha + beta * sigma))
                    - beta / 2 * res2 - alpha / 2 * m2 - n / 2 * np.log(2 * np.pi))
        evidences.append(evidence / n)
    return float(np.mean(evidences))


def _cv_probe(x: np.ndarray, y: np.ndarray, seed: int) -> float:
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    folds = int(min(5, np.bincount(y).min()))
    clf = make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=2000, random_state=seed))
    return float(cross_val_score(clf, x, y, cv=max(2, folds)).mean())


@dataclass
class Advice:
    backbone: str
    examples: int
    classes: int
    labels_per_class_median: float
    labels_per_class_min: int
    subset: int
    logme_pretrained: float
    logme_random: float
    probe_acc_pretrained: float
    probe_acc_random: float
    error_reduction: float
    size: str  # "small" / "large"
    gap: str  # "close" / "far"
    strategy: str
    reasons: list[str] = field(default_factory=list)
    seconds: float = 0.0
    budget: int | None = None  # the labels per class the size was judged at (None: the whole pool)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


RECIPES = {("small", "close"): ("probe", "few labels and features that already fit: a linear probe is cheap, "
                                         "stable and hard to beat"),
           ("small", "far"): ("full", "few labels and features that fit poorly: the frozen features leave too "
                                     "much behind; a full fine-tune at a small learning rate, early-stopped on "
                                     "validation, beat freezing most of the body in the calibration races"),
           ("large", "close"): ("full", "enough labels and features that fit: a full fine-tune at a small "
                                        "learning rate adds the last points"),
           ("large", "far"): ("full", "enough labels but features that fit poorly: fine-tune everything; the "
                                      "pretrained weights are still a better start than random")}


def decide(per_class: float, error_reduction: float, logme_pretrained: float, logme_random: float, *,
           small_per_class: float = SMALL_PER_CLASS, close_error_reduction: float = CLOSE_ERROR_REDUCTION,
           recipes: dict[tuple[str, str], str] | None = None) -> tuple[str, str, str]:
    """(size, gap, strategy) from the two signals and the labels per class the recipe will learn from
    (``recipes``: size × gap → strategy, default ``RECIPES``)."""
    size = "small" if per_class < small_per_class else "large"
    gap = "close" if error_reduction >= close_error_reduction and logme_pretrained > logme_random else "far"
    return size, gap, (recipes or {k: v[0] for k, v in RECIPES.items()})[(size, gap)]


def advise(task: Task, backbone: str, *, subset: int = 1000, seed: int = 0,
           backbone_options: dict[str, Any] | None = None, cache: FeatureCache | None = None,
           pool: np.ndarray | None = None, budget: int | None = None) -> Advice:
    """Advice from the pool only (``pool``, or the pool of the split with ``seed``, the race's split seed):
    the selection and test parts are never looked at, not even their labels.

    ``budget``: the labels per class the recipe will learn from (a race's largest budget, where its
    recommendation is made); None: every label of the pool."""
    tic = time.perf_counter()
    options = backbone_options or {}
    pool = make_splits(task, seed=seed).pool if pool is None else np.asarray(pool)
    counts = np.bincount(task.labels[pool], minlength=len(task.classes))
    per_class = max(2, min(int(counts.min()), subset // len(task.classes)))
    index = budget_indices(task, pool, per_class, seed=seed)
    sample = task.subset(index)
    cache = cache or FeatureCache()
    feats = {}
    for pretrained in (True, False):
        import torch

        with torch.random.fork_rng(devices=[]):  # the random twin's init, without touching the caller's RNG
            torch.manual_seed(seed)
            model = AdaptedModel(create_backbone(backbone, pretrained=pretrained, **options), len(task.classes))
        states = cache.states(model, model.features_start, sample, range(len(sample)))
        feats[pretrained] = np.stack([s["features"].numpy() for s in states])
    y = sample.labels
    acc_pre, acc_rand = _cv_probe(feats[True], y, seed), _cv_probe(feats[False], y, seed)
    lm_pre, lm_rand = logme(feats[True], y), logme(feats[False], y)
    reduction = (acc_pre - acc_rand) / max(1e-9, 1 - acc_rand)
    median = float(np.median(counts))
    per_class_used = median if budget is None else float(min(budget, median))
    size, gap, strategy = decide(per_class_used, reduction, lm_pre, lm_rand)
    why = RECIPES[(size, gap)][1]
    learns = (f"{median:g} labelled examples per class to learn from (median; {int(counts.min())} in the smallest "
              "class)" if budget is None or budget >= median else
              f"{budget} labelled examples per class to learn from (the race's largest budget; the pool holds "
              f"{median:g} per class)")
    reasons = [
        f"{learns}: {size} (the line is {SMALL_PER_CLASS} per class)",
        f"on {len(sample)} examples, a probe on the pretrained features reaches {acc_pre:.3f} (5-fold CV) against "
        f"{acc_rand:.3f} on the random-init twin's: {100 * reduction:.0f}% of the errors removed; LogME "
        f"{lm_pre:.3f} vs {lm_rand:.3f}: the domain looks {gap} (close means >= {100 * CLOSE_ERROR_REDUCTION:.0f}% "
        "of errors removed and higher LogME)",
        f"{size} and {gap}: {why}",
    ]
    return Advice(backbone, len(pool), len(task.classes), median, int(counts.min()), len(sample), lm_pre, lm_rand,
                  acc_pre, acc_rand, reduction, size, gap, strategy, reasons, time.perf_counter() - tic, budget)
