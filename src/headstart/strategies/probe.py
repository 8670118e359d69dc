"""``probe``: frozen body, new linear head, trained on cached features.

``solver="lbfgs"`` (default) fits multinomial logistic regression with scikit-learn's L-BFGS for each
C in a small grid: closed-form quality in seconds. How C is chosen:

- ``selection="cv"`` (default): stratified k-fold cross-validation over training + validation
  examples, then a refit on all of them (scikit-learn's ``LogisticRegressionCV``). With 8 labels per
  class, holding a third of them out only to pick C costs more than it gains: measured in
  BENCHMARKS.md (peers section).
- ``selection="val"``: fit on training, pick C on the validation split, keep that fit.
- ``selection="train"``: cross-validation over the training examples only, refit on them; the
  validation split stays untouched for a later stage to early-stop on (LP-FT's first stage).

``solver="sgd"`` trains the head with the loop (AdamW) on the same cached features.

With fewer examples than feature dimensions (a few labels per class on a 384- or 1,280-dimensional
body: the usual case) every fit runs in the examples' own row space, which is exact: the L2-penalised
solution is a combination of the examples (the representer theorem; the intercept is not penalised),
so fitting on the coordinates ``x @ Vᵀ`` in an orthonormal basis ``V`` of the rows and mapping the
coefficients back (``w = u @ V``) gives the same head, the same predictions and the same chosen C,
with L-BFGS taking the same steps in ``r ≤ n`` dimensions instead of ``d`` (the dropped directions
have zero gradient from the zero start). ``_RowSpace`` does it; ``tests/test_probe_rowspace.py``
checks it against the plain fit.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from ..declare import check_declared, option
from ..errors import HeadstartError
from ..train.model import AdaptedModel, ParamPlan
from .base import Strategy, register_strategy

log = logging.getLogger(__name__)

SMALL = 4_000_000  # feature values (rows × dims) up to which the probe's fits run BLAS on one thread


class _RowSpace:
    """An orthonormal basis ``V`` (r × d) of the rows of ``x``, or none where ``x`` has no fewer rows than columns.
    ``reduce`` maps features to their coordinates in it; ``expand`` maps a fitted classifier's coefficients back to
    the full feature space. Exact for any features whose fit's solution lies in the row space of ``x``: those of
    an L2-penalised linear model fitted on ``x`` or on any subset of its rows (cross-validation's folds)."""

    def __init__(self, x: np.ndarray) -> None:
        self.basis: np.ndarray | None = None
        if x.shape[0] < x.shape[1]:
            _, s, vt = np.linalg.svd(x, full_matrices=False)
            keep = s > s.max(initial=0.0) * max(x.shape) * np.finfo(x.dtype).eps  # numpy's matrix_rank rule
            if keep.any():  # all-zero features have no row space to fit in: left as they are
                self.basis = vt[keep]

    def reduce(self, x: np.ndarray) -> np.ndarray:
        return x if self.basis is None else x @ self.basis.T

    def expand(self, clf):
        if self.basis is not None:
            clf.coef_ = clf.coef_ @ self.basis
            clf.n_features_in_ = self.basis.shape[1]
        return clf


@register_strategy
@dataclass
class Probe(Strategy):
    name = "probe"
    trains = "head"
    order = 20
    summary = "frozen body, new linear head on cached features"
    default_lr = 1e-2
    default_head_lr = 1e-2
    default_epochs = 100
    solver: str = option("lbfgs", "'lbfgs' (closed form) or 'sgd' (the training loop)", choices=("lbfgs", "sgd"))
    C_grid: tuple[float, ...] = field(default=(0.01, 0.1, 1.0, 10.0, 100.0),
                                      metadata={"help": "inverse regularisation strengths to choose from"})
    selection: str = option("cv", "how C is chosen: 'cv' (training + validation), 'val', 'train' (training only)",
                            choices=("cv", "val", "train"))

    def __post_init__(self) -> None:
        check_declared(self, self.name)
        self.C_grid = tuple(float(c) for c in self.C_grid)
        if not self.C_grid or min(self.C_grid) <= 0:
            raise HeadstartError("The 'C_grid' parameter of probe must be non-empty positive numbers.")

    @property
    def closed_form(self) -> bool:  # type: ignore[override]
        return self.solver == "lbfgs"

    def plan(self, n_blocks: int) -> ParamPlan:
        return ParamPlan({})

    def stage_validates(self, monitor: str | None = None) -> bool:
        return self.selection == "val" if self.closed_form else super().stage_validates(monitor)

    def solve(self, model: AdaptedModel, x_train: torch.Tensor, y_train: np.ndarray, x_val: torch.Tensor,
              y_val: np.ndarray, *, seed: int = 0, classes: tuple[str, ...] = ()) -> dict[str, Any]:
        """Fit the head in closed form; returns the chosen C and its held-out loss and accuracy.

        C is chosen by held-out log-loss (a proper scoring rule: on a few examples accuracy ties often).
        BLAS runs single-threaded for a small problem: on a few hundred rows, OpenBLAS's thread start-up and
        spin-waiting cost more than the arithmetic (a 30 × 1280 fit took 0.66 s on two threads, 0.03 s on one,
        BENCHMARKS.md).
        """
        from threadpoolctl import threadpool_limits

        with threadpool_limits(limits=1 if x_train.numel() + x_val.numel() <= SMALL else None):
            chosen = self._solve(model, x_train, y_train, x_val, y_val, seed=seed)
        if chosen.get("folds") == 0:
            how = f"default (too few examples per class to cross-validate on {chosen['on']})"
        elif "folds" in chosen:
            how = f"{chosen['folds']}-fold cross-validation on {chosen['on']}, then refit on the same"
        else:
            how = "on the validation split"
        return {**chosen, "note": f"L-BFGS logistic regression, C={chosen['C']:g} chosen by {how}"}

    def _solve(self, model: AdaptedModel, x_train: torch.Tensor, y_train: np.ndarray, x_val: torch.Tensor,
               y_val: np.ndarray, *, seed: int = 0) -> dict[str, float]:
        n_classes = model.head.out_features
        xt, xv = x_train.double().numpy(), x_val.double().numpy()
        if self.selection == "cv":
            clf, chosen = self._fit_cv(np.concatenate([xt, xv]), np.concatenate([y_train, y_val]), seed)
            chosen["on"] = "training + validation"
        elif self.selection == "train":
            clf, chosen = self._fit_cv(xt, y_train, seed)
            chosen["on"] = "training only"
        else:
            clf, chosen = self._fit_val(xt, y_train, xv, y_val, n_classes, seed)
        self._set_head(model, clf, n_classes, xt.shape[1])
        return chosen

    def _fit_cv(self, x: np.ndarray, y: np.ndarray, seed: int):
        """Held-out (cross-validated) predictions for every C; the best C is refit on everything. Every fit runs in
        the row space of ``x`` (which holds each fold's), exactly as in the full feature space."""
        from sklearn.linear_model import LogisticRegression
        from sklearn.metrics import log_loss
        from sklearn.model_selection import StratifiedKFold

        rows = _RowSpace(x)
        x = rows.reduce(x)
        counts = np.bincount(y)
        if counts[counts > 0].min() < 2:  # one example of some class: nothing to cross-validate, keep C = 1
            clf = LogisticRegression(C=1.0, max_iter=3000, random_state=seed).fit(x, y)
            return rows.expand(clf), {"C": 1.0, "val_loss": None, "val_acc": None, "folds": 0}
        folds = int(max(2, min(5, counts[counts > 0].min())))
        labels = np.unique(y)
        held_out = self._held_out(x, y, labels, StratifiedKFold(folds, shuffle=True, random_state=seed), seed)
        best = None
        for c in self.C_grid:
            loss = float(log_loss(y, held_out[c], labels=labels))
            acc = float((labels[held_out[c].argmax(1)] == y).mean())
            score = loss - 1e-9 * acc
            if best is None or score < best[0]:
                best = (score, c, loss, acc)
        assert best is not None
        _, c, loss, acc = best
        clf = LogisticRegression(C=c, max_iter=3000, random_state=seed).fit(x, y)
        return rows.expand(clf), {"C": c, "val_loss": loss, "val_acc": acc, "folds": folds}

    def _held_out(self, x: np.ndarray, y: np.ndarray, labels: np.ndarray, cv, seed: int) -> dict[float, np.ndarray]:
        """Every example's held-out class probabilities under each C (what ``cross_val_predict`` gives, C by C).
        Within a fold the fits run along the grid from the strongest penalty, each starting from the last one's
        solution (scikit-learn's regularisation path does the same): the same optima in about a quarter less time
        on a probe's features (mobilenetv2 on 80 digits: 0.93 s to 0.69 s for the 25 fits)."""
        from sklearn.linear_model import LogisticRegression

        out = {c: np.zeros((len(y), len(labels))) for c in self.C_grid}
        for train_idx, test_idx in cv.split(x, y):
            clf = LogisticRegression(max_iter=3000, random_state=seed, warm_start=True)
            for c in sorted(set(self.C_grid)):
                clf.set_params(C=c).fit(x[train_idx], y[train_idx])
                out[c][np.ix_(test_idx, np.searchsorted(labels, clf.classes_))] = clf.predict_proba(x[test_idx])
        return out

    def _fit_val(self, xt, y_train, xv, y_val, n_classes: int, seed: int):
        from sklearn.linear_model import LogisticRegression
        from sklearn.metrics import log_loss

        rows = _RowSpace(xt)
        xt, xv = rows.reduce(xt), rows.reduce(xv)
        best = None
        for c in self.C_grid:
            clf = LogisticRegression(C=c, max_iter=3000, random_state=seed).fit(xt, y_train)
            proba = np.zeros((len(xv), n_classes))
            proba[:, clf.classes_] = clf.predict_proba(xv)
            loss = float(log_loss(y_val, np.clip(proba, 1e-12, 1), labels=list(range(n_classes))))
            acc = float((proba.argmax(1) == y_val).mean())
            score = loss - 1e-9 * acc
            log.debug("probe C=%g: val loss %.4f, acc %.4f", c, loss, acc)
            if best is None or score < best[0]:
                best = (score, c, loss, acc, clf)
        assert best is not None
        _, c, loss, acc, clf = best
        return rows.expand(clf), {"C": c, "val_loss": loss, "val_acc": acc}

    @staticmethod
    def _set_head(model: AdaptedModel, clf, n_classes: int, dim: int) -> None:
        """The fitted rows into the head; a class without examples gets a zero row, or, in a model that continues
        from an earlier fit (``model.fitted``), keeps the row it learned then."""
        if model.fitted:
            weight = model.head.weight.detach().double().cpu().clone()
            bias = model.head.bias.detach().double().cpu().clone()
        else:
            weight = torch.zeros(n_classes, dim, dtype=torch.float64)
            bias = torch.zeros(n_classes, dtype=torch.float64)
        coef, intercept = torch.from_numpy(clf.coef_), torch.from_numpy(clf.intercept_)
        if len(clf.classes_) == 2 and coef.shape[0] == 1:  # sigmoid(z) == softmax([0, z])
            weight[clf.classes_[0]], bias[clf.classes_[0]] = 0.0, 0.0
            weight[clf.classes_[1]], bias[clf.classes_[1]] = coef[0], intercept[0]
        else:
            weight[clf.classes_], bias[clf.classes_] = coef, intercept
        with torch.no_grad():
            model.head.weight.copy_(weight.to(model.head.weight))
            model.head.bias.copy_(bias.to(model.head.bias))
