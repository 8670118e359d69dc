"""How much pretrained competence a run kept: measured after every run that moved a pretrained body.

Two numbers, both comparing the run's body with the pretrained one (θpre) on the same inputs:

- **kept**, on a scale a user reads as "keeps 97% of ...":
  - where the backbone ships its pretraining classifier (MobileNetV2, EfficientNet-Lite: ImageNet-1k),
    the share of held examples on which the run's body under that classifier still predicts what θpre
    predicts (top-1 agreement);
  - otherwise (text encoders, headless image encoders), a probe on *another* named task: the
    cross-validated accuracy of a logistic regression on the run's body's features of that task, divided
    by the same probe on θpre's features (same examples, same folds). The reference task is
    ``20newsgroups`` for text (``rotten-tomatoes`` when the race is on 20newsgroups) and ``digits`` for
    images (``mnist-5k`` when the race is on digits), 500 examples in its own class proportions;
    ``RaceSpec.reference`` (``compare --reference``) names another, or ``none``; the variables
    ``HEADSTART_REFERENCE_TEXT`` and ``HEADSTART_REFERENCE_IMAGE`` replace the default of a modality.
- **drift**: 1 − the mean cosine similarity between the run's and θpre's pooled features of the held
  examples: how far the embedding moved (0: not at all).

The held examples are the race's selection part (up to 500, in its class proportions; the test part
when there is no selection part). θpre's features come from the feature cache, so each costs one
forward pass of the run's body over at most 1,000 examples: seconds beside a fine-tune's minutes
(BENCHMARKS.md), so it stays on. It is measured, never used to choose; the report says which strategy
forgot least among those level on selection accuracy.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..backbones import resolve_backbone
from ..data import Task, load_task, stratified_subset
from ..errors import HeadstartError
from ..train import AdaptedModel, FeatureCache
from ..train.clock import compute_time

__all__ = ["HELD", "REFERENCE_SIZE", "measure_forgetting", "reference_name"]

log = logging.getLogger(__name__)

HELD = 500  # held examples the drift and the agreement are measured on
REFERENCE_SIZE = 500  # examples of the reference task the probe is cross-validated on
_DEFAULTS = {"text": ("20newsgroups", "rotten-tomatoes"), "image": ("digits", "mnist-5k")}
_references: dict[str, Task] = {}  # loaded reference tasks, by name (one load per process)


def reference_name(setting: str | None, modality: str, data: str) -> str | None:
    """The named example (or file) the probe measures on: ``setting``, or for ``auto`` the modality's default (unless
    the race is on it), which ``HEADSTART_REFERENCE_TEXT`` / ``HEADSTART_REFERENCE_IMAGE`` replace (a machine that
    cannot fetch the default, a test suite); ``none``: no probe."""
    setting = setting or "auto"
    if setting == "none":
        return None
    if setting != "auto":
        return setting
    given = os.environ.get(f"HEADSTART_REFERENCE_{modality.upper()}")
    if given:
        return None if given == "none" else given
    first, second = _DEFAULTS[modality]
    return second if data == first else first


def _reference(name: str, modality: str) -> Task:
    if name not in _references:
        task = load_task(name)
        if task.modality != modality:
            raise HeadstartError(f"The forgetting reference {name} holds {task.modality}s, but this race's backbone "
                                 f"reads {modality}s; name a {modality} reference (--reference), or none.")
        index = stratified_subset(task, np.arange(len(task)), REFERENCE_SIZE, seed=0)
        _references[name] = task.subset(index)
    return _references[name]


def _features(model: AdaptedModel, task: Task, cache: FeatureCache, device: torch.device) -> torch.Tensor:
    states = cache.states(model, model.features_start, task, range(len(task)), batch_size=64, device=device)
    return torch.stack([s["features"] for s in states]).float()


def _probe_accuracy(features: torch.Tensor, labels: np.ndarray) -> float:
    """Cross-validated accuracy of a logistic regression (fixed C, fixed folds): the same for both bodies."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from threadpoolctl import threadpool_limits

    counts = np.bincount(labels)
    folds = int(max(2, min(5, counts[counts > 0].min())))
    cv = StratifiedKFold(folds, shuffle=True, random_state=0)
    with threadpool_limits(limits=1):
        predicted = cross_val_predict(LogisticRegression(C=1.0, max_iter=2000), features.double().numpy(), labels,
                                      cv=cv)
    return float((predicted == labels).mean())


def measure_forgetting(model: AdaptedModel, backbone: Any, backbone_options: dict[str, Any], held: Task,
                       reference: str | None, cache: FeatureCache) -> dict[str, Any]:
    """``kept`` and ``drift`` of ``model``'s body against the pretrained one (built from ``backbone``), on ``held``
    (up to ``HELD`` of them) and, without a pretraining classifier, on the ``reference`` task."""
    tic = compute_time()
    device = next(model.parameters()).device
    pre = AdaptedModel(resolve_backbone(backbone, True, **backbone_options), 2).to(device).eval()
    was_training = model.training
    model.eval()
    mine = FeatureCache()  # this run's body: its features are never reused, so never written to disk
    held = held.subset(stratified_subset(held, np.arange(len(held)), HELD, seed=0))
    now, before = _features(model, held, mine, device), _features(pre, held, cache, device)
    out: dict[str, Any] = {"drift": float(1 - torch.nn.functional.cosine_similarity(now, before).mean()),
                           "n_held": len(held)}
    source = pre.backbone.source_head()
    if source is not None:
        with torch.no_grad():
            head = source.to(device)
            agree = (head(now.to(device)).argmax(1) == head(before.to(device)).argmax(1)).float().mean()
        out.update(kept=float(agree), measure="agreement",
                   what=f"of {pre.backbone.name}'s pretraining predictions ({source.out_features} classes) on "
                        f"{len(held)} held examples")
    elif reference is not None:
        task = _reference(reference, held.modality)
        acc_now = _probe_accuracy(_features(model, task, mine, device), task.labels)
        acc_before = _probe_accuracy(_features(pre, task, cache, device), task.labels)
        shown = Path(reference).name if os.sep in reference else reference
        out.update(kept=acc_now / acc_before if acc_before > 0 else None, measure="probe", reference=reference,
                   reference_acc=acc_now, reference_acc_pretrained=acc_before, n_reference=len(task),
                   what=f"of the pretrained features' accuracy on {shown} (a probe, {len(task)} examples)")
    model.train(was_training)
    out["seconds"] = compute_time() - tic
    return out
