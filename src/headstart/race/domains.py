"""The deployment domain: how far it is from the labelled data, and scores that need none of its labels.

- **The deployment gap**, on the pretrained backbone's frozen features of up to 1,000 labelled
  examples of the pool and as many deployment examples (``--target`` or ``--ood-test``, labels never
  read): the **proxy A-distance** (Ben-David et al., 2007/2010), ``2 (1 − 2ε)`` with ε the
  cross-validated error of a balanced logistic-regression domain classifier: 0 when it cannot tell the
  two apart (same domain), 2 when it always can (disjoint domains), about 1 halfway; and the **MMD**
  (Gretton et al., 2012), the unbiased squared maximum mean discrepancy under a Gaussian kernel at the
  median distance: 0 for the same distribution, larger the more they differ (on unit-normalised
  features it is at most 2). This is a different gap from the advisor's, which measures how well the
  backbone's pretraining fits the labelled data.
- **Choosing without target labels**: importance-weighted validation (IWV, Sugiyama et al., 2007): each
  run's selection accuracy with every selection example weighted by the density ratio of the deployment
  domain to the labelled one (a domain classifier's odds on the pretrained features, as ``iw`` trains
  with): an estimate of the accuracy on the deployment domain that no target label enters. Beside it,
  the mean prediction entropy on target examples (lower: more confident there).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ..backbones import resolve_backbone
from ..data import Task, stratified_subset
from ..train import AdaptedModel, FeatureCache

__all__ = ["GAP_EXAMPLES", "deployment_gap", "flat_weights_note", "importance_weighted_accuracy", "mmd",
           "prediction_entropy", "proxy_a_distance", "selection_weights"]

GAP_EXAMPLES = 1000


def pretrained_features(backbone: Any, options: dict[str, Any], task: Task, cache: FeatureCache) -> np.ndarray:
    """The pretrained backbone's pooled features of ``task`` (through the feature cache)."""
    model = AdaptedModel(resolve_backbone(backbone, True, **options), 2).eval()
    states = cache.states(model, model.features_start, task, range(len(task)), batch_size=64)
    return torch.stack([s["features"] for s in states]).double().numpy()


def _sample(n: int, size: int, seed: int) -> np.ndarray:
    return np.sort(np.random.default_rng(seed).permutation(n)[:size])


def proxy_a_distance(source: np.ndarray, target: np.ndarray, *, seed: int = 0) -> float:
    """``2 (1 − 2ε)``, ε the 5-fold cross-validated error of a balanced logistic-regression domain classifier."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from threadpoolctl import threadpool_limits

    n = min(len(source), len(target))
    x = np.concatenate([source[_sample(len(source), n, seed)], target[_sample(len(target), n, seed + 1)]])
    y = np.concatenate([np.zeros(n), np.ones(n)])
    folds = StratifiedKFold(max(2, min(5, n)), shuffle=True, random_state=seed)
    with threadpool_limits(limits=1):
        predicted = cross_val_predict(LogisticRegression(C=1.0, max_iter=2000), x, y, cv=folds)
    error = float((predicted != y).mean())
    return float(np.clip(2 * (1 - 2 * error), 0.0, 2.0))


def mmd(source: np.ndarray, target: np.ndarray) -> float:
    """Unbiased squared MMD under a Gaussian kernel whose bandwidth is the median pairwise distance."""
    x, y = torch.as_tensor(source, dtype=torch.float64), torch.as_tensor(target, dtype=torch.float64)
    joint = torch.cat([x, y])
    distances = torch.cdist(joint, joint) ** 2
    bandwidth = float(distances[distances > 0].median()) if (distances > 0).any() else 1.0
    k = torch.exp(-distances / bandwidth)
    n, m = len(x), len(y)
    kxx, kyy, kxy = k[:n, :n], k[n:, n:], k[:n, n:]
    value = ((kxx.sum() - kxx.diagonal().sum()) / (n * (n - 1)) + (kyy.sum() - kyy.diagonal().sum()) / (m * (m - 1))
             - 2 * kxy.mean())
    return max(0.0, float(value))


def deployment_gap(backbone: Any, options: dict[str, Any], labelled: Task, deployment: Task, cache: FeatureCache,
                   *, against: str, seed: int = 0) -> dict[str, Any]:
    """The proxy A-distance and MMD between up to ``GAP_EXAMPLES`` labelled and deployment examples."""
    source = labelled.subset(stratified_subset(labelled, np.arange(len(labelled)), GAP_EXAMPLES, seed=seed))
    target = deployment.subset(_sample(len(deployment), GAP_EXAMPLES, seed))
    fs, ft = (pretrained_features(backbone, options, t, cache) for t in (source, target))
    return {"against": against, "a_distance": proxy_a_distance(fs, ft, seed=seed), "mmd": mmd(fs, ft),
            "n_labelled": len(source), "n_deployment": len(target)}


def selection_weights(backbone: Any, options: dict[str, Any], selection: Task, target: Task, cache: FeatureCache,
                      *, seed: int = 0) -> list[float]:
    """Per selection example, the density ratio of the deployment domain to the labelled one (mean 1)."""
    from ..terms.importance import density_ratio

    target = target.subset(_sample(len(target), GAP_EXAMPLES, seed))
    return density_ratio(pretrained_features(backbone, options, selection, cache),
                         pretrained_features(backbone, options, target, cache), seed=seed).tolist()


def flat_weights_note(weights: list[float]) -> str | None:
    """One sentence for the race's notes when every selection weight is the same: importance-weighted validation is
    then the plain selection accuracy, and its pick says nothing of the deployment domain."""
    if len(weights) and np.ptp(np.asarray(weights, dtype=float)) < 1e-9:
        return ("importance-weighted validation: every selection weight is the same (a domain classifier tells every "
                "selection example from the --target ones), so its score is the plain selection accuracy and its "
                "pick says nothing of the deployment domain; read the target's prediction entropy beside it")
    return None


def importance_weighted_accuracy(predicted: list[int], labels: np.ndarray, weights: list[float]) -> float:
    w = np.asarray(weights, dtype=float)
    return float((w * (np.asarray(predicted) == labels)).sum() / w.sum())


def prediction_entropy(proba: np.ndarray) -> float:
    p = np.clip(proba, 1e-12, 1.0)
    return float(-(p * np.log(p)).sum(1).mean())
