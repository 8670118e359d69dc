"""``probe``: frozen body, new linear head, trained on cached features.

``solver="lbfgs"`` (default) fits multinomial logistic regression with scikit-learn's L-BFGS for each
C in a small grid and keeps the C with the best validation score: closed-form quality in seconds.
``solver="sgd"`` trains the head with the loop (AdamW) on the same cached features.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import torch

from ..errors import HeadstartError
from ..train.model import AdaptedModel, ParamPlan
from .base import Strategy, register_strategy

log = logging.getLogger(__name__)


@register_strategy
@dataclass
class Probe(Strategy):
    name = "probe"
    summary = "frozen body, new linear head on cached features"
    default_lr = 1e-2
    default_head_lr = 1e-2
    default_epochs = 100
    solver: str = "lbfgs"
    C_grid: tuple[float, ...] = (0.01, 0.1, 1.0, 10.0, 100.0)

    def __post_init__(self) -> None:
        if self.solver not in ("lbfgs", "sgd"):
            raise HeadstartError(
                f"The 'solver' parameter of probe must be 'lbfgs' or 'sgd'. Got {self.solver!r} instead.")
        self.C_grid = tuple(float(c) for c in self.C_grid)
        if not self.C_grid or min(self.C_grid) <= 0:
            raise HeadstartError("The 'C_grid' parameter of probe must be non-empty positive numbers.")

    @property
    def closed_form(self) -> bool:  # type: ignore[override]
        return self.solver == "lbfgs"

    def plan(self, n_blocks: int) -> ParamPlan:
        return ParamPlan({})

    def solve(self, model: AdaptedModel, x_train: torch.Tensor, y_train: np.ndarray, x_val: torch.Tensor,
              y_val: np.ndarray, *, monitor: str = "val_loss", seed: int = 0) -> dict[str, float]:
        """Fit the head in closed form; returns the chosen C and its validation loss and accuracy."""
        from sklearn.linear_model import LogisticRegression
        from sklearn.metrics import log_loss

        n_classes = model.head.out_features
        xt, xv = x_train.double().numpy(), x_val.double().numpy()
        best = None
        for c in self.C_grid:
            clf = LogisticRegression(C=c, max_iter=3000, random_state=seed).fit(xt, y_train)
            proba = np.zeros((len(xv), n_classes))
            proba[:, clf.classes_] = clf.predict_proba(xv)
            loss = float(log_loss(y_val, np.clip(proba, 1e-12, 1), labels=list(range(n_classes))))
            acc = float((proba.argmax(1) == y_val).mean())
            score = loss if monitor == "val_loss" else -acc + 1e-6 * loss
            log.debug("probe C=%g: val loss %.4f, acc %.4f", c, loss, acc)
            if best is None or score < best[0]:
                best = (score, c, loss, acc, clf)
        assert best is not None
        _, c, loss, acc, clf = best
        weight = torch.zeros(n_classes, xt.shape[1], dtype=torch.float64)
        bias = torch.zeros(n_classes, dtype=torch.float64)
        coef, intercept = torch.from_numpy(clf.coef_), torch.from_numpy(clf.intercept_)
        if len(clf.classes_) == 2 and coef.shape[0] == 1:  # sigmoid(z) == softmax([0, z])
            weight[clf.classes_[1]], bias[clf.classes_[1]] = coef[0], intercept[0]
        else:
            weight[clf.classes_], bias[clf.classes_] = coef, intercept
        with torch.no_grad():
            model.head.weight.copy_(weight.to(model.head.weight))
            model.head.bias.copy_(bias.to(model.head.bias))
        return {"C": c, "val_loss": loss, "val_acc": acc}
