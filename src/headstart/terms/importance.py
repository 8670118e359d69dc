"""``iw``: importance weighting (Shimodaira, 2000; Sugiyama et al., 2007): train as if the labelled examples came from
the deployment domain, by weighting each by how much more likely it is there.

Before the first step, a logistic-regression domain classifier is fitted on the pooled features of
the training examples (source) against the unlabelled target examples (the fit context's ``target``
source), both from the model as the stage starts; its odds, ``w(x) = p(target | x) / p(source | x)``
with the classes balanced, estimate the density ratio ``p_t(x) / p_s(x)``. Weights are clipped to
[0.1, 10] (a handful of source examples that look exactly like the target would otherwise carry the
whole loss) and scaled to mean 1 over the training examples. The term is the correction that turns the
data term into the weighted one: ``mean((w − 1) · CE)`` over the batch, so cross-entropy plus the term
is ``mean(w · CE)``. It is a term like the others (weight 1 gives exactly the importance-weighted loss;
its value per epoch is in the run's record). The strategy ``iw`` registered here is ``full`` plus the
term; its source-only baseline is ``full``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from ..declare import option
from ..strategies.finetune import adaptation_strategy
from .base import Term, register_term

CLIP = (0.1, 10.0)


def density_ratio(source: np.ndarray, target: np.ndarray, *, seed: int = 0) -> np.ndarray:
    """``p_t(x) / p_s(x)`` at each source row from a balanced logistic-regression domain classifier, clipped to
    ``CLIP`` and scaled to mean 1 (``describe_weights`` says what they came to)."""
    from sklearn.linear_model import LogisticRegression
    from threadpoolctl import threadpool_limits

    x = np.concatenate([source, target])
    y = np.concatenate([np.zeros(len(source)), np.ones(len(target))])
    with threadpool_limits(limits=1):
        clf = LogisticRegression(C=1.0, max_iter=2000, class_weight="balanced", random_state=seed).fit(x, y)
    p = np.clip(clf.predict_proba(source)[:, 1], 1e-6, 1 - 1e-6)
    w = np.clip(p / (1 - p), *CLIP)
    return w / w.mean()


def describe_weights(weights: np.ndarray) -> str:
    """One sentence: the weights' spread and effective sample size (Kish: ``(Σw)² / Σw²``); flat weights (every
    ratio at one clip: the domain classifier told every example apart) mean the term changes nothing."""
    w = np.asarray(weights, dtype=np.float64)
    ess = float(w.sum() ** 2 / np.square(w).sum())
    if np.ptp(w) < 1e-9:
        return (f"every importance weight is the same ({len(w)} examples): the domain classifier tells every "
                "labelled example from the target, so no labelled example looks like the target and this trained "
                "as its source-only recipe; the domains are too far apart for reweighting")
    return (f"importance weights from {w.min():.2f} to {w.max():.2f} (mean 1): the weighted loss counts as "
            f"{ess:.0f} of the {len(w)} labelled examples")


@torch.no_grad()
def _features(model, source, boundary: int, device, batch_size: int) -> np.ndarray:
    out = []
    for start in range(0, len(source), batch_size):
        state, _ = source.batch(range(start, min(start + batch_size, len(source))))
        out.append(model.features({k: v.to(device) for k, v in state.items()}, boundary).float().cpu())
    return torch.cat(out).double().numpy()


@register_term
@dataclass
class ImportanceWeighting(Term):
    name = "iw"
    kind = "adaptation"
    source = "target"
    summary = "source examples weighted by a domain classifier's odds of the target (importance weighting)"
    default_weight = 1.0
    limit: int = option(2000, "target examples the domain classifier sees at most", low=2)

    def prepare(self, ctx) -> str:
        model, target = ctx.model, ctx.source("target")
        training = model.training
        model.eval()
        size = max(1, ctx.cfg.eval_batch_size)
        source_features = _features(model, ctx.train, ctx.boundary, ctx.device, size)
        picked = np.random.default_rng(ctx.cfg.seed).permutation(len(target))[: self.limit]
        subset = type(target)([target.items[i] for i in picked], target.labels[picked], target.to_state)
        target_features = _features(model, subset, ctx.boundary, ctx.device, size)
        model.train(training)
        ratio = density_ratio(source_features, target_features, seed=ctx.cfg.seed)
        self.weights = torch.as_tensor(ratio, dtype=torch.float32, device=ctx.device)
        return describe_weights(ratio)

    def value(self, model, batch, ctx) -> Tensor:
        logits = model.head(batch.features(model, ctx.boundary)).float()
        losses = torch.nn.functional.cross_entropy(logits, batch.labels, reduction="none")
        w = self.weights[torch.as_tensor(batch.index, device=self.weights.device)]
        return ((w - 1.0) * losses).mean()


adaptation_strategy("iw", order=72, summary="full fine-tune on source examples weighted towards the target domain "
                                           "(importance weighting)")
